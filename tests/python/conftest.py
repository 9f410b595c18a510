"""Fixtures for the Gridiron end-to-end suite.

* `grid`       one grid per test module (options from the module's GRID_OPTIONS)
* `make_grid`  dedicated grids for config-specific tests, stopped after the test
* `make_cluster` dedicated Redis + hubs + nodes, stopped after the test
* `pages`      local HTTP server with the test pages
* `drivers`    tracks selenium drivers and quits them after the test

After every test each live grid must have no session processes left (only an
optional spare chromedriver), and every stopped grid must have no process at
all. At the end of the run no new chromium temp dir may remain in /tmp.
"""

import contextlib
import glob
import os
import shutil
import signal
import tempfile
import time

import pytest

import harness
from harness import GRIDS, Cluster, Grid
from pages import PageServer

DEFAULT_CALL_DEADLINE = 120  # seconds per test body, override with @pytest.mark.deadline(N)
FIXTURE_DEADLINE = 90  # seconds for setup / teardown of one test
CHROMIUM_TMP_PATTERNS = ("/tmp/org.chromium.Chromium.*", "/tmp/.org.chromium.Chromium.*")
DEFAULT_GRID_OPTIONS = {"max_sessions": 2, "queue_timeout": 60}


class DeadlineExceeded(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): upper bound for the test body (SIGALRM based)")


@contextlib.contextmanager
def _alarm(seconds, label):
    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"{label} took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _alarm(FIXTURE_DEADLINE, f"setup of {item.nodeid}"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("deadline")
    seconds = marker.args[0] if marker else DEFAULT_CALL_DEADLINE
    with _alarm(seconds, item.nodeid):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with _alarm(FIXTURE_DEADLINE, f"teardown of {item.nodeid}"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the grid logs written during a failed test to its report."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    marks = getattr(item, "_grid_log_marks", {})
    for g in list(GRIDS):
        start = marks.get(id(g), 0)
        if g.log_size() <= start and id(g) in marks:
            continue
        text = g.log_text(offset=start)
        header = f"grid {g.url} data dir {g.data_dir}\n"
        rep.sections.append((f"grid stderr ({rep.when}) {g.url}", header + text))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    for g in list(GRIDS):
        if g.proc is not None and g.proc.poll() is None:
            g.proc.kill()
            g.proc.wait(timeout=10)
            harness.kill_pids([p.pid for p in g.processes()])
    if exitstatus == 0:
        for g in GRIDS:
            g.cleanup_files()
    elif GRIDS:
        print("\ngrid data dirs kept for inspection:")
        for g in GRIDS:
            print(f"  {g.data_dir}")


# --------------------------------------------------------------------------
# Session-wide fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def grid_binary():
    path = harness.find_binary()
    if path is None:
        pytest.fail(
            "gridiron binary not found: set GRIDIRON_BIN or build it "
            f"({harness.DEFAULT_BIN} or $CARGO_TARGET_DIR/debug/gridiron)",
            pytrace=False,
        )
    # Run a private copy so a rebuild during the run cannot swap the binary
    # between (or under) tests.
    workdir = tempfile.mkdtemp(prefix="gridiron-bin-")
    copy = os.path.join(workdir, "gridiron")
    shutil.copy2(path, copy)
    yield copy
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pages():
    server = PageServer().start()
    yield server
    server.stop()


def _chromium_tmp_dirs():
    found = set()
    for pattern in CHROMIUM_TMP_PATTERNS:
        found.update(glob.glob(pattern))
    return found


@pytest.fixture(scope="session", autouse=True)
def chromium_tmp_guard():
    """Chromium/chromedriver temp dirs must live under the session dirs, not in /tmp."""
    before = _chromium_tmp_dirs()
    yield
    deadline = time.monotonic() + 3
    new = _chromium_tmp_dirs() - before
    while new and time.monotonic() < deadline:
        time.sleep(0.2)
        new = _chromium_tmp_dirs() - before
    assert not new, f"new chromium temp dirs appeared in /tmp during the suite: {sorted(new)}"


# --------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid(request, grid_binary):
    options = getattr(request.module, "GRID_OPTIONS", DEFAULT_GRID_OPTIONS)
    g = Grid(grid_binary, **options).start()
    yield g
    g.stop()


@pytest.fixture
def make_grid(grid_binary):
    started = []

    def factory(**options):
        g = Grid(grid_binary, **options)
        started.append(g)
        return g.start()

    yield factory
    errors = []
    for g in started:
        if g.proc is None:
            continue
        try:
            g.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def make_cluster(grid_binary):
    """Factory of `Cluster`s (keyword arguments as for Cluster); all are stopped after the test."""
    made = []

    def factory(**kwargs):
        c = Cluster(grid_binary, **kwargs)
        made.append(c)
        return c

    yield factory
    errors = []
    for c in made:
        try:
            c.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def drivers():
    """List to register selenium drivers in; all are quit after the test."""
    created = []
    yield created
    for d in created:
        with contextlib.suppress(Exception):
            d.quit()


@pytest.fixture(autouse=True)
def grid_hygiene(request):
    """After each test: no session processes and no dirs of ended sessions."""
    request.node._grid_log_marks = {id(g): g.log_size() for g in GRIDS}
    yield
    problems = []
    for g in list(GRIDS):
        if g.stopped or g.proc is None:
            continue  # stop() checks a stopped grid
        if not g.running():
            problems.append(f"grid {g.url} exited unexpectedly with code {g.proc.poll()}")
            g.stopped = True
            continue
        deadline = time.monotonic() + harness.LEAK_TIMEOUT
        while True:
            busy, spares = g.split_processes()
            stale_dirs = _dirs_of_ended_sessions(g)
            spare_kinds = [p.comm for p in spares]
            doubled = sorted({k for k in spare_kinds if spare_kinds.count(k) > 1})
            clean = not busy and not doubled and not stale_dirs
            if clean or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if busy:
            problems.append(f"grid {g.url}: session processes still alive after the test: {busy}")
        if doubled:
            problems.append(f"grid {g.url}: more than one spare driver of a kind: {spares}")
        if stale_dirs:
            problems.append(f"grid {g.url}: files of ended sessions not removed: {stale_dirs}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _dirs_of_ended_sessions(g):
    dirs = g.session_dirs()
    if not dirs:
        return []
    try:
        ended = {r["id"] for r in g.db_rows("state = 'ended'")}
    except Exception:
        return []
    return [d for d in dirs if d in ended]
