"""Pages are hostile: what a session's driver and browser can see of the grid.

- Their environment holds none of the grid's secrets.
- As root, each session runs under a user id of its own: a page cannot read
  the store, the data dir or another session's files through file://.
- The grid's process marker is a private name: an unrelated process that
  carries the grid's documented settings (GRIDIRON_DATA_DIR, ...) survives the
  grid's start, stop, and restart after SIGKILL.
"""

import os
import signal
import subprocess
import time

import pytest
from selenium.common.exceptions import TimeoutException

from harness import MARK_ENV, Grid, wait_until

SECRETS = {
    "GRIDIRON_CLUSTER_SECRET": "planted-cluster-secret-0123",
    "GRIDIRON_STORE": "redis://:planted-redis-password@10.9.9.9:6379/0",
    "AWS_SECRET_ACCESS_KEY": "planted-aws-secret-key",
    "GRIDIRON_TEST_PRIVATE": "planted-private-value",
}

ROOT = os.geteuid() == 0


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def assert_no_secret(proc):
    for name, value in SECRETS.items():
        assert name not in proc.env, f"{name} reached {proc!r}"
        for k, v in proc.env.items():
            assert value not in v, f"the value of {name} reached {proc!r} as {k}"


def track(drivers, d):
    drivers.append(d)
    return d


@pytest.mark.deadline(120)
def test_drivers_and_browsers_get_none_of_the_grids_secrets(make_grid, drivers, pages):
    g = make_grid(max_sessions=2, env=SECRETS)
    d = track(drivers, g.remote())
    d.get(pages.url("/index.html"))
    assert d.title == "Gridiron Index"
    sid = d.session_id
    driver = g.chromedriver_of(sid)
    browser = g.chromium_main_of(sid)
    for p in [driver, browser] + g.session_processes(sid):
        assert_no_secret(p)
    # What a session does get: the marker, its own HOME and TMPDIR, a fixed PATH.
    assert browser.env[MARK_ENV] == g.data_dir
    assert browser.env["HOME"] == os.path.join(g.sessions_dir, sid, "home")
    assert browser.env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    if ROOT:
        assert uid_of(driver.pid) != 0 and uid_of(browser.pid) == uid_of(driver.pid)

    # Firefox too (the suite runs on every browser the grid offers).
    f = track(drivers, g.remote(browser_name="firefox"))
    f.get(pages.url("/index.html"))
    assert f.title == "Gridiron Index"
    procs = g.session_processes(f.session_id)
    assert any(p.comm == "geckodriver" for p in procs) and any("firefox" in p.comm for p in procs), procs
    for p in procs:
        assert_no_secret(p)
    if ROOT:
        assert all(uid_of(p.pid) not in (0, uid_of(driver.pid)) for p in procs), procs


@pytest.mark.skipif(not ROOT, reason="sessions get user ids of their own only when the grid runs as root")
@pytest.mark.deadline(120)
def test_a_page_cannot_read_the_store_or_another_sessions_files(make_grid, drivers, pages):
    g = make_grid(max_sessions=2)
    a = track(drivers, g.remote())
    b = track(drivers, g.remote())
    b.get(pages.url("/index.html"))
    a_id, b_id = a.session_id, b.session_id
    a_uid, b_uid = uid_of(g.chromedriver_of(a_id).pid), uid_of(g.chromedriver_of(b_id).pid)
    assert 0 != a_uid != b_uid != 0, (a_uid, b_uid)

    # The files hold what a reader would be after (read here as root), so the
    # checks below are not vacuous.
    store_files = [g.db_path + suffix for suffix in ("", "-wal") if os.path.exists(g.db_path + suffix)]
    assert any(b_id.encode() in open(p, "rb").read() for p in store_files), "B's id is not in the store files"
    b_dir = os.path.join(g.sessions_dir, b_id)
    b_log = os.path.join(b_dir, "artifacts", "driver.log")
    wait_until(lambda: os.path.exists(b_log) and "Starting ChromeDriver" in open(b_log, errors="replace").read(),
               5, what="B's driver.log")

    # Chromium sometimes never finishes loading the listing of a directory
    # it may not read (the "Index of" page stays loading): what the page got
    # by then is what the browser could read, so it is read after a stop.
    a.set_page_load_timeout(10)

    def page_at(url):
        try:
            a.get(url)
        except TimeoutException:
            a.execute_script("window.stop()")
        return a.page_source

    for path in store_files:
        page = page_at("file://" + path)
        assert b_id not in page, f"{path} is readable from a session"
    for listing in (g.data_dir, g.sessions_dir):
        page = page_at("file://" + listing + "/")
        assert "gridiron.db" not in page and b_id not in page, f"{listing} can be listed from a session"
    page = page_at("file://" + b_dir + "/")
    assert "artifacts" not in page, "another session's directory can be listed"
    page = page_at("file://" + b_log)
    assert "Starting ChromeDriver" not in page, "another session's driver log is readable"

    # Not file:// as a whole is blocked: A lists its own directory, and loads what it is meant to.
    own = page_at("file://" + os.path.join(g.sessions_dir, a_id) + "/")
    assert "artifacts" in own, own[:500]
    a.get(pages.url("/index.html"))
    assert a.title == "Gridiron Index"


@pytest.mark.deadline(120)
def test_a_process_with_the_grids_settings_survives_its_start_stop_and_restart(grid_binary, drivers, pages):
    g = Grid(grid_binary, max_sessions=1)
    # The documented settings, as an operator's shell or supervisor would carry them.
    settings = {
        "GRIDIRON_DATA_DIR": g.data_dir,
        "GRIDIRON_PORT": str(g.port),
        "GRIDIRON_HOST": "127.0.0.1",
        "GRIDIRON_MAX_SESSIONS": "1",
    }
    bystander = subprocess.Popen(["sleep", "300"], env=dict(os.environ, **settings), start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        g.start()
        d = track(drivers, g.remote())
        d.get(pages.url("/index.html"))
        sid = d.session_id
        assert g.session_processes(sid)
        assert bystander.poll() is None, "the grid's start killed an unrelated process"

        # Killed hard, the grid leaves its session behind for the next start to sweep.
        g.kill_hard()
        g.start()
        wait_until(lambda: not g.session_processes(sid), 10, what="the restarted grid to sweep the old session")
        assert bystander.poll() is None, "the restart's sweep killed an unrelated process"

        code, _ = g.terminate()
        assert code == 0
        assert not g.wait_no_processes()
        time.sleep(0.2)
        assert bystander.poll() is None, "the grid's stop killed an unrelated process"
    finally:
        if g.running():
            g.proc.kill()
            g.proc.wait(timeout=10)
        os.killpg(bystander.pid, signal.SIGKILL)
        bystander.wait(timeout=10)
        g.cleanup_files()
