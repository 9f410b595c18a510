"""The one helper module of the Python suite (and of the benchmarks in bench/):
free ports, waiting, process scans, raw HTTP, and the processes under test --
a standalone grid, a redis-server, hubs and nodes -- started, observed and
stopped with leak checks.

Everything here is bounded in time: every wait has a deadline and every HTTP
request has a socket timeout, so a hung grid fails a test instead of hanging CI.
It uses the standard library only (selenium is imported when a test asks for
a selenium client) and never pytest, so scripts outside the suite can use it.
"""

import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.parse

DEFAULT_BIN = os.path.expanduser("~/.cache/gridiron-target/debug/gridiron")
STANDIN_NAME = "gridiron-standin-driver"
# The version the stand-in driver and its stand-in browser report.
STANDIN_VERSION = "999.0.0.0"
# Shared by hubs and nodes of a test cluster, and by the CLI run against it.
CLUSTER_SECRET = "test-cluster-secret-0123"
NAMESPACE = "gridiron"
READY_TIMEOUT = 30.0
# `chrome=1`: every standalone grid of the suite keeps warm sessions (`--warm`),
# to run the whole suite with them once.
WARM_ALL = os.environ.get("GRIDIRON_TEST_WARM", "")
STOP_TIMEOUT = 10.0
LEAK_TIMEOUT = 5.0

# The variables every process a grid starts carries (crates/provision/src/lib.rs):
# the grid's data dir, and the session id. Private names, so that no setting an
# operator exports (GRIDIRON_DATA_DIR) marks a process for the grid's sweeps.
MARK_ENV = "__GRIDIRON_SWEEP_MARK"
SESSION_ENV = "__GRIDIRON_SWEEP_SESSION"

# Every grid started in this pytest process, in start order.
GRIDS = []


class GridError(AssertionError):
    """A grid misbehaved (did not start, did not stop, leaked processes...)."""


def find_binary(name="gridiron", env_var="GRIDIRON_BIN"):
    """Path of a debug binary of this workspace, or None when it has not been built yet.

    `env_var` names it explicitly; otherwise it is looked for next to
    $GRIDIRON_BIN, in $CARGO_TARGET_DIR/debug and in the default target dir.
    """
    explicit = os.environ.get(env_var)
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    candidates = []
    if os.environ.get("GRIDIRON_BIN"):
        candidates.append(os.path.join(os.path.dirname(os.environ["GRIDIRON_BIN"]), name))
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(os.path.join(target, "debug", name))
    candidates.append(os.path.join(os.path.dirname(DEFAULT_BIN), name))
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def find_standin_binary():
    """The stand-in driver (crates/standin-driver), or None when it has not been built."""
    return find_binary(STANDIN_NAME, "GRIDIRON_STANDIN_BIN")


def standin_driver_dir(workdir, standin):
    """A PATH directory where `chromedriver` is the stand-in driver and
    `chromium` a script that only reports a version, so a grid whose PATH
    starts here offers one browser, served without any real browser."""
    bindir = os.path.join(workdir, "bin")
    os.makedirs(bindir)
    os.symlink(standin, os.path.join(bindir, "chromedriver"))
    script = os.path.join(bindir, "chromium")
    with open(script, "w") as f:
        f.write(
            "#!/bin/sh\n"
            "# Stand-in browser: only asked its version; the stand-in driver never starts it.\n"
            f'if [ "$1" = "--version" ]; then echo "Chromium {STANDIN_VERSION} stand-in"; exit 0; fi\n'
            'echo "stand-in chromium: not a browser" >&2\nexit 1\n'
        )
    os.chmod(script, 0o755)
    return bindir


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.1, what="condition"):
    """Poll predicate() until it returns a truthy value; return that value.

    Raises AssertionError naming `what` (and the last value seen) on timeout.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def in_background(fn, key="result"):
    """Runs `fn()` in a daemon thread, for calls that wait (e.g. in the queue).

    Returns (thread, box); when the thread ends, box has `key` (fn's result)
    or "error", and "elapsed" (seconds).
    """
    box = {}

    def run():
        started = time.monotonic()
        try:
            box[key] = fn()
        except Exception as e:  # reported to the test through the box
            box["error"] = e
        box["elapsed"] = time.monotonic() - started

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def request_in_background(grid, method, path, body=None, timeout=60.0):
    """`grid.request(...)` from a daemon thread: see `in_background`; the
    response is in box["resp"]."""
    return in_background(lambda: grid.request(method, path, body=body, timeout=timeout), key="resp")


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


class Proc:
    def __init__(self, pid, comm, cmdline, env):
        self.pid = pid
        self.comm = comm
        self.cmdline = cmdline  # list of str
        self.env = env  # dict str -> str

    @property
    def session(self):
        return self.env.get(SESSION_ENV, "")

    @property
    def cmd_text(self):
        return " ".join(self.cmdline)

    def is_chromedriver(self):
        return self.comm == "chromedriver"

    def is_driver(self):
        return self.comm.endswith("driver")

    def is_chromium(self):
        return self.comm == "chromium" or (bool(self.cmdline) and self.cmdline[0].startswith("/usr/lib/chromium/chromium"))

    def is_chromium_main(self):
        return self.is_chromium() and "--type=" not in self.cmd_text

    def __repr__(self):
        text = self.cmd_text
        if len(text) > 140:
            text = text[:140] + "..."
        return f"<pid {self.pid} {self.comm!r} session={self.session!r} cmd={text!r}>"


def _read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def processes_with_env(entry):
    """All live processes whose environment has `entry` ("NAME=value") exactly.

    A zombie has no environment left, so it is never listed.
    """
    marker = entry.encode()
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me:
            continue
        try:
            raw_env = _read(f"/proc/{pid}/environ")
        except OSError:
            continue
        entries = raw_env.split(b"\0")
        if marker not in entries:
            continue
        try:
            comm = _read(f"/proc/{pid}/comm").decode(errors="replace").strip()
            cmdline = [a.decode(errors="replace") for a in _read(f"/proc/{pid}/cmdline").split(b"\0") if a]
        except OSError:
            continue
        env = {}
        for entry in entries:
            if b"=" in entry:
                k, v = entry.split(b"=", 1)
                env[k.decode(errors="replace")] = v.decode(errors="replace")
        found.append(Proc(pid, comm, cmdline, env))
    return found


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


# --------------------------------------------------------------------------
# Raw HTTP
# --------------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict with lower-cased names
        self.body = body

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def value(self):
        return self.json()["value"]

    def __repr__(self):
        body = self.body[:600]
        return f"<HTTP {self.status} {self.content_type!r} {body!r}>"


def http_request(port, method, path, body=None, headers=None, timeout=30.0):
    """One HTTP request on a fresh connection. `body` may be bytes, str or a JSON-able object."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    hdrs = {"Connection": "close"}
    if body is not None:
        hdrs["Content-Type"] = "application/json; charset=utf-8"
    if headers:
        hdrs.update(headers)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Artifacts (`/api/v1/sessions/{id}/artifacts`)
# --------------------------------------------------------------------------

ARTIFACTS_PATIENCE = 60.0


def _artifact_request(grid_url, method, path, key=None, headers=None, timeout=30.0):
    """One request to `grid_url` (http://host:port); returns a Response."""
    parsed = urllib.parse.urlsplit(grid_url)
    hdrs = {"Connection": "close"}
    if key:
        hdrs["Authorization"] = f"Bearer {key}"
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        conn.request(method, path, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def artifact_path(session_id, name=None):
    """The API path of a session's artifacts, or of one (its name quoted part by part)."""
    base = f"/api/v1/sessions/{urllib.parse.quote(session_id, safe='')}/artifacts"
    return base if name is None else base + "/" + urllib.parse.quote(name, safe="/")


def list_artifacts(grid_url, session_id, key=None, timeout=ARTIFACTS_PATIENCE):
    """The `artifacts` of a session once the list is complete (the session has
    ended and its artifacts are collected); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        resp = _artifact_request(grid_url, "GET", artifact_path(session_id), key=key)
        if resp.status != 200:
            raise GridError(f"listing artifacts of {session_id}: {resp}")
        listed = resp.json()
        if listed["complete"]:
            return listed["artifacts"]
        if time.monotonic() > deadline:
            raise GridError(f"artifacts of {session_id} still incomplete after {timeout}s: {listed}")
        time.sleep(0.2)


def fetch_artifact(grid_url, session_id, name, key=None, headers=None):
    """The bytes of one artifact; fails on any answer but 200/206."""
    resp = _artifact_request(grid_url, "GET", artifact_path(session_id, name), key=key, headers=headers)
    if resp.status not in (200, 206):
        raise GridError(f"fetching artifact {name!r} of {session_id}: {resp}")
    return resp.body


class EventStream:
    """A Server-Sent Events client of `GET /api/v1/events` (written from the
    SSE specification, independent of the grid's code): `next()` returns the
    next event as a dict with `id`, `event` and `data` (parsed JSON)."""

    def __init__(self, port, query="", last_event_id=None, headers=None, timeout=30.0):
        hdrs = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            hdrs["Last-Event-ID"] = last_event_id
        hdrs.update(headers or {})
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", "/api/v1/events" + (f"?{query}" if query else ""), headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("content-type", "")

    def next(self):
        """The next event (comments and keep-alives skipped); None at the end of the stream."""
        event = {}
        data = []
        while True:
            line = self.resp.fp.readline()
            if not line:
                return None
            line = line.decode("utf-8").rstrip("\r\n")
            if not line:
                if data or event:
                    event["data"] = json.loads("\n".join(data)) if data else None
                    event.setdefault("event", "message")
                    return event
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name in ("id", "event"):
                event[name] = value

    def take(self, n, kinds=None):
        """The next `n` events (of `kinds` only, if given)."""
        got = []
        while len(got) < n:
            e = self.next()
            assert e is not None, f"the stream ended after {got}"
            if kinds is None or e["event"] in kinds:
                got.append(e)
        return got

    def close(self):
        self.conn.close()


def event_socket(port, query="", timeout=30.0):
    """A WebSocket client of `/api/v1/events/ws` (websocket-client)."""
    import websocket

    return websocket.create_connection(
        f"ws://127.0.0.1:{port}/api/v1/events/ws" + (f"?{query}" if query else ""), timeout=timeout
    )


def socket_events(ws, n):
    """The next `n` events of an event WebSocket, parsed."""
    return [json.loads(ws.recv()) for _ in range(n)]


def chrome_caps(browser_name="chrome", grid_options=None):
    always = {"browserName": browser_name}
    if grid_options is not None:
        always["gridiron:options"] = grid_options
    return {"capabilities": {"alwaysMatch": always, "firstMatch": [{}]}}


# --------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------


class Grid:
    """One `gridiron standalone` process with its own port and data dir."""

    # The signal that stops this kind of process at once.
    stop_signal = signal.SIGTERM

    def __init__(self, binary, env=None, **options):
        self.binary = binary
        self.options = options
        self.env = dict(env or {})  # added to this process's environment
        self.port = free_port()
        self.data_dir = os.path.realpath(tempfile.mkdtemp(prefix="gridiron-test-"))
        self.log_path = os.path.join(self.data_dir, "grid.log")
        self.db_path = os.path.join(self.data_dir, "gridiron.db")
        self.sessions_dir = os.path.join(self.data_dir, "sessions")
        self.proc = None
        self.stopped = False  # stop() was called (exit is expected)
        self.exit_code = None
        self._log_file = None

    # ---- lifecycle -------------------------------------------------------

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def command_line(self):
        cmd = [self.binary, "standalone", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", self.data_dir]
        for key, value in self.options.items():
            cmd += ["--" + key.replace("_", "-"), str(value)]
        if WARM_ALL and "warm" not in self.options:
            cmd += ["--warm", WARM_ALL]
        return cmd

    @property
    def keeps_warm(self):
        """Whether this grid keeps warm sessions (nobody's, so no leak)."""
        return bool(self.options.get("warm") or (WARM_ALL and type(self) is Grid))

    def start(self):
        env = dict(os.environ)
        env.setdefault("NO_COLOR", "1")
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.env)
        self.stopped = False
        self.exit_code = None
        self._log_file = self._log_file or open(self.log_path, "ab")
        self._log_file.write(("$ " + " ".join(self.command_line()) + "\n").encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(
            self.command_line(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            env=env,
            start_new_session=True,
        )
        if self not in GRIDS:
            GRIDS.append(self)
        self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise GridError(f"grid exited with code {code} before becoming ready\n{self.log_tail()}")
            try:
                resp = http_request(self.port, "GET", "/status", timeout=2)
                last = resp
                if resp.status == 200 and resp.json().get("value", {}).get("ready") is True:
                    return
            except (OSError, ValueError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.1)
        raise GridError(f"grid not ready after {timeout}s (last: {last!r})\n{self.log_tail()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill_hard(self):
        """SIGKILL the process's group (not its sessions' groups, which are their own)."""
        self.stopped = True
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.exit_code = "killed"

    def terminate(self, timeout=STOP_TIMEOUT):
        """Signal the grid to stop and wait for it. Returns (exit code, seconds taken)."""
        self.stopped = True
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.exit_code = "killed"
            raise GridError(f"grid did not exit within {timeout}s of {self.stop_signal.name} (SIGKILLed)\n{self.log_tail()}")
        self.exit_code = code
        return code, time.monotonic() - start

    def stop(self):
        """Stop the grid (if still running) and verify it left nothing behind."""
        problems = []
        if not self.stopped:
            unexpected = self.proc.poll()
            if unexpected is not None:
                problems.append(f"grid had already exited with code {unexpected}")
            try:
                code, _ = self.terminate()
                if unexpected is None and code != 0:
                    problems.append(f"grid exited with code {code} after {self.stop_signal.name}")
            except GridError as e:
                problems.append(str(e).splitlines()[0])
        leaked = self.wait_no_processes()
        if leaked:
            kill_pids([p.pid for p in leaked])
            problems.append(f"processes left behind after grid exit: {leaked}")
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        if problems:
            raise GridError("; ".join(problems) + "\n" + self.log_tail())

    def wait_no_processes(self, timeout=LEAK_TIMEOUT):
        """Poll until no process carries this grid's marker; return what is left."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.processes()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.1)

    def cleanup_files(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # ---- logs --------------------------------------------------------------

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, offset=0, limit=int(os.environ.get("GRIDIRON_TEST_LOG_LIMIT", "40000"))):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return ""
        text = data.decode("utf-8", errors="replace")
        if len(text) > limit:
            text = "[... log truncated ...]\n" + text[-limit:]
        return text

    def log_tail(self, lines=60):
        text = self.log_text()
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- grid log ({self.log_path}) ---\n{tail}\n--- end grid log ---"

    # ---- HTTP --------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=30.0):
        return http_request(self.port, method, path, body=body, headers=headers, timeout=timeout)

    def status(self):
        resp = self.request("GET", "/status", timeout=5)
        assert resp.status == 200, resp
        return resp.json()["value"]

    def new_session_raw(self, caps=None, timeout=60.0, prefix=""):
        resp = self.request("POST", prefix + "/session", body=caps or chrome_caps(), timeout=timeout)
        assert resp.status == 200, f"new session failed: {resp!r}\n{self.log_tail()}"
        value = resp.value
        assert isinstance(value.get("sessionId"), str) and value["sessionId"], value
        return value["sessionId"]

    def delete_session_raw(self, session_id, timeout=30.0):
        return self.request("DELETE", f"/session/{session_id}", timeout=timeout)

    def remote(self, path="", grid_options=None, browser_name=None, timeout=90, options=None):
        """A selenium Remote driver through this grid (plain ChromeOptions unless `options`)."""
        from selenium import webdriver
        from selenium.webdriver.remote.client_config import ClientConfig

        url = self.url + path
        if options is None:
            options = webdriver.FirefoxOptions() if browser_name == "firefox" else webdriver.ChromeOptions()
        if browser_name:
            options.set_capability("browserName", browser_name)
        if grid_options is not None:
            options.set_capability("gridiron:options", grid_options)
        config = ClientConfig(remote_server_addr=url, timeout=timeout)
        return webdriver.Remote(command_executor=url, options=options, client_config=config)

    # ---- store -------------------------------------------------------------

    def db_rows(self, where="1=1", args=()):
        """Rows of the sessions table as dicts. Raises sqlite3.Error if unreadable."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=2)
        try:
            conn.row_factory = sqlite3.Row
            cur = conn.execute(f"SELECT * FROM sessions WHERE {where}", args)
            return [dict(r) for r in cur.fetchall()]
        finally:
            conn.close()

    def db_row(self, session_id):
        rows = self.db_rows("id = ?", (session_id,))
        return rows[0] if rows else None

    def wait_row(self, session_id, predicate=lambda r: True, timeout=5.0, what=None):
        """Poll the store until the row for session_id exists and satisfies predicate."""
        state = {"last": None}

        def check():
            try:
                row = self.db_row(session_id)
            except sqlite3.Error as e:
                state["last"] = f"sqlite error: {e}"
                return None
            state["last"] = row
            return row if row is not None and predicate(row) else None

        try:
            return wait_until(check, timeout, interval=0.1, what=what or f"store row for {session_id}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nlast row/error: {state['last']!r}") from None

    def wait_row_matching(self, where, args=(), timeout=5.0):
        """Poll the store until at least one row matches `where`; return the rows."""

        def check():
            try:
                return self.db_rows(where, args) or None
            except sqlite3.Error:
                return None

        return wait_until(check, timeout, what=f"store rows matching {where!r}")

    def wait_ended(self, session_id, reason=None, timeout=5.0):
        row = self.wait_row(
            session_id,
            lambda r: r.get("state") == "ended",
            timeout=timeout,
            what=f"session {session_id} to be 'ended' in the store",
        )
        if reason is not None:
            assert row["end_reason"] == reason, f"end_reason {row['end_reason']!r} != {reason!r}: {row!r}"
        return row

    # ---- processes -----------------------------------------------------------

    def processes(self):
        return processes_with_env(f"{MARK_ENV}={self.data_dir}")

    def client_processes(self):
        """The processes started for clients: on a grid that keeps warm
        sessions, those of the warm sessions (nobody's yet, so unknown to the
        store) do not count."""
        procs = self.processes()
        if not self.keeps_warm:
            return procs
        known = self.known_session_ids()
        return [p for p in procs if not p.session or p.session in known]

    def session_processes(self, session_id):
        return [p for p in self.processes() if p.session == session_id]

    def known_session_ids(self):
        try:
            return {r["id"] for r in self.db_rows()}
        except sqlite3.Error:
            return set()

    def split_processes(self):
        """(session processes, spare drivers) of this grid.

        A spare is a pre-started driver (chromedriver, geckodriver...) that no
        session owns yet: it has no session marker, or an id the store does
        not know and that no other process (no browser) shares.
        """
        procs = self.processes()
        known = self.known_session_ids()
        per_session = {}
        for p in procs:
            per_session[p.session] = per_session.get(p.session, 0) + 1
        spares, busy = [], []
        for p in procs:
            lone = not p.session or (p.session not in known and per_session[p.session] == 1)
            if p.is_driver() and lone:
                spares.append(p)
            elif self.keeps_warm and p.session and p.session not in known:
                continue  # a warm session: recorded once a request takes it
            else:
                busy.append(p)
        return busy, spares

    def busy_processes(self):
        return self.split_processes()[0]

    def _one_process_of(self, session_id, predicate, what, timeout):
        found = wait_until(
            lambda: [p for p in self.session_processes(session_id) if predicate(p)],
            timeout,
            what=f"{what} of session {session_id}",
        )
        assert len(found) == 1, f"expected one {what} for {session_id}, got {found}"
        return found[0]

    def chromedriver_of(self, session_id, timeout=5.0):
        return self._one_process_of(session_id, lambda p: p.is_chromedriver(), "chromedriver process", timeout)

    def chromium_main_of(self, session_id, timeout=5.0):
        return self._one_process_of(session_id, lambda p: p.is_chromium_main(), "chromium main process", timeout)

    def outbox(self, session_id):
        """Where a running session's artifacts are written (created if missing)."""
        path = os.path.join(self.sessions_dir, session_id, "artifacts")
        os.makedirs(path, exist_ok=True)
        return path

    def session_dirs(self):
        try:
            return sorted(os.listdir(self.sessions_dir))
        except FileNotFoundError:
            return []


# --------------------------------------------------------------------------
# The scaled-out grid: a real redis-server, hubs and nodes
# --------------------------------------------------------------------------


def redis_server_argv(port, directory):
    """A redis-server on loopback that keeps nothing on disk: killed, it forgets everything."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory]


class Redis:
    """One redis-server on a free port, with its own directory, read with a minimal RESP client."""

    def __init__(self, env=None, password=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="gridiron-redis-")
        self.env = dict(env or {})  # added to the server's environment
        self.proc = None
        self.password = password  # with it, the server requires AUTH

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self):
        if shutil.which("redis-server") is None:
            raise GridError("redis-server is not installed (scripts/install-deps)")
        argv = redis_server_argv(self.port, self.dir)
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, **self.env),
            start_new_session=True,
        )
        wait_until(self._answers, 10, what="redis-server to accept connections")
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise GridError(f"redis-server on {self.port} exited with code {self.proc.poll()}")
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def kill(self):
        """SIGKILL: the server loses everything it held (no persistence)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self):
        """Kill and start again on the same port, empty."""
        self.kill()
        return self.start()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(self, *args, timeout=5.0):
        """One command; returns the decoded reply (str, int, list or None)."""
        commands = [args]
        if self.password:
            # Pipelined after AUTH on the same connection; AUTH's reply is skipped.
            commands.insert(0, ("AUTH", self.password))
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            payload = b""
            for cmd in commands:
                payload += f"*{len(cmd)}\r\n".encode()
                for a in cmd:
                    b = str(a).encode()
                    payload += f"${len(b)}\r\n".encode() + b + b"\r\n"
            s.sendall(payload)
            reader = s.makefile("rb")
            return [_read_reply(reader) for _ in commands][-1]

    def hash(self, key):
        flat = self.command("HGETALL", f"{NAMESPACE}:{key}") or []
        return dict(zip(flat[::2], flat[1::2]))

    def events(self):
        """The lifecycle event stream, oldest first, as dicts."""
        entries = self.command("XRANGE", f"{NAMESPACE}:events", "-", "+") or []
        return [dict(zip(fields[::2], fields[1::2])) for _, fields in entries]

    def session(self, session_id):
        return self.hash(f"session:{session_id}")

    def queue_len(self):
        return self.command("ZCARD", f"{NAMESPACE}:queue")

    def wait_ended(self, session_id, reason=None, timeout=10.0):
        rec = wait_until(
            lambda: (lambda r: r if r.get("state") == "ended" else None)(self.session(session_id)),
            timeout,
            what=f"session {session_id} ended in the store",
        )
        if reason is not None:
            assert rec.get("end_reason") == reason, rec
        return rec


def _read_reply(reader):
    line = reader.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read(n + 2)[:-2]
        return data.decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(reader) for _ in range(n)]
    raise RuntimeError(f"unexpected reply {line!r}")


def hub_signature_headers(method, path, body=b"", end_reason=None, secret=CLUSTER_SECRET, timestamp_ms=None, nonce=None):
    """The headers a hub signs a request to a node with (see crates/grid/src/cluster/signing.rs):
    HMAC-SHA256 keyed by the cluster secret over length-prefixed fields."""
    if isinstance(body, str):
        body = body.encode()
    timestamp_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    nonce = nonce or os.urandom(16).hex()
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def field(b):
        mac.update(len(b).to_bytes(8, "big"))
        mac.update(b)

    field(b"gridiron-hub-request-v1")
    field(method.encode())
    field(path.encode())
    field(timestamp_ms.to_bytes(8, "big"))
    field(nonce.encode())
    field(hashlib.sha256(body or b"").digest())
    field(b"x-gridiron-end-reason")
    if end_reason is None:
        field(b"absent")
    else:
        field(b"present")
        field(end_reason.encode())
    headers = {
        "x-gridiron-timestamp": str(timestamp_ms),
        "x-gridiron-nonce": nonce,
        "x-gridiron-signature": mac.hexdigest(),
    }
    if end_reason is not None:
        headers["x-gridiron-end-reason"] = end_reason
    return headers


class _Member(Grid):
    """A hub or node of a cluster: shares its Redis and the cluster secret; keeps no local store."""

    def __init__(self, binary, redis, env=None, **options):
        super().__init__(binary, env=dict({"GRIDIRON_CLUSTER_SECRET": CLUSTER_SECRET}, **(env or {})), **options)
        self.redis = redis

    def known_session_ids(self):
        return set()


class Hub(_Member):
    """One `gridiron hub`."""

    def command_line(self):
        cmd = [self.binary, "hub", "--host", "127.0.0.1", "--port", str(self.port), "--store", self.redis.url]
        for key, value in self.options.items():
            cmd += ["--" + key.replace("_", "-"), str(value)]
        return cmd

    def wait_ready(self, timeout=READY_TIMEOUT):
        # A hub is up once it answers; it is "ready" only when some node has room.
        wait_until(self._answers, timeout, what=f"hub on {self.port} to answer")

    def _answers(self):
        if self.proc.poll() is not None:
            raise GridError(f"hub exited with code {self.proc.poll()}\n{self.log_tail()}")
        try:
            return http_request(self.port, "GET", "/status", timeout=2).status == 200
        except OSError:
            return False

    def db_rows(self, where="1=1", args=()):
        raise RuntimeError("a hub has no local store")


class Node(_Member):
    """One `gridiron node` with its own data dir (its processes carry it)."""

    # SIGTERM drains a node (waits for its sessions); Ctrl-C stops it at once.
    stop_signal = signal.SIGINT

    def command_line(self):
        cmd = [
            self.binary, "node", "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", self.data_dir, "--store", self.redis.url,
        ]
        if "advertise_url" not in self.options:
            # A node given a certificate serves TLS: hubs reach it at https://.
            scheme = "https" if "tls_cert" in self.options else "http"
            cmd += ["--advertise-url", f"{scheme}://127.0.0.1:{self.port}"]
        for key, value in self.options.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if v is True:
                    cmd += ["--" + key.replace("_", "-")]
                else:
                    cmd += ["--" + key.replace("_", "-"), str(v)]
        return cmd

    def request(self, method, path, body=None, headers=None, timeout=30.0):
        """A request signed as a hub signs it."""
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        hdrs = hub_signature_headers(method, path, body or b"")
        hdrs.update(headers or {})
        return http_request(self.port, method, path, body=body, headers=hdrs, timeout=timeout)

    def wait_ready(self, timeout=READY_TIMEOUT):
        def registered():
            if self.proc.poll() is not None:
                raise GridError(f"node exited with code {self.proc.poll()}\n{self.log_tail()}")
            return self.node_id()

        wait_until(registered, timeout, what=f"node on {self.port} to register")

    def node_id(self):
        """This node's id, from the registered nodes' URLs."""
        for nid in self.redis.command("SMEMBERS", f"{NAMESPACE}:nodes") or []:
            info = self.redis.hash(f"node:{nid}").get("info", "")
            if f'127.0.0.1:{self.port}"' in info:
                return nid
        return None

    def db_rows(self, where="1=1", args=()):
        raise RuntimeError("a node keeps its records in Redis")

    def browsers(self):
        return [p for p in self.processes() if p.is_chromium()]


class Cluster:
    """Redis, nodes and hubs started together and stopped together.

    `env` is added to the environment of every process started (e.g. a PATH
    that offers only the stand-in driver, or a marker to scan for).
    """

    def __init__(self, binary, heartbeat_ttl=3, env=None, redis_password=None):
        self.binary = binary
        self.heartbeat_ttl = heartbeat_ttl
        self.env = dict(env or {})
        self.redis = Redis(env=self.env, password=redis_password).start()
        self.nodes = []
        self.hubs = []

    def node(self, **options):
        options.setdefault("max_sessions", 1)
        options.setdefault("heartbeat_ttl", self.heartbeat_ttl)
        n = Node(self.binary, self.redis, env=self.env, **options)
        self.nodes.append(n)
        return n.start()

    def hub(self, **options):
        options.setdefault("queue_timeout", 60)
        options.setdefault("heartbeat_ttl", self.heartbeat_ttl)
        h = Hub(self.binary, self.redis, env=self.env, **options)
        self.hubs.append(h)
        return h.start()

    def cli(self, *args):
        """`gridiron <args> --store <this cluster's redis>`, finished."""
        env = dict(os.environ, GRIDIRON_CLUSTER_SECRET=CLUSTER_SECRET, **self.env)
        return subprocess.run([self.binary, *args, "--store", self.redis.url], capture_output=True, text=True, timeout=30, env=env)

    def capacity(self, hub, slots, timeout=20):
        """Wait until `hub` reports `slots` slots and is ready; return its status."""
        return wait_until(
            lambda: (lambda s: s if s.get("maxSessions") == slots and s["ready"] else None)(hub.status()),
            timeout,
            what=f"hub to report {slots} free slots",
        )

    def node_of(self, session_id, timeout=10):
        """The node whose processes belong to session_id."""
        found = wait_until(
            lambda: [n for n in self.nodes if n.running() and n.session_processes(session_id)],
            timeout,
            what=f"the node running {session_id}",
        )
        assert len(found) == 1, found
        return found[0]

    def stop(self):
        """Stop every hub and node (each checked for leaks), then Redis."""
        errors = []
        for g in self.hubs + self.nodes:
            if g.proc is not None:
                try:
                    g.stop()
                except AssertionError as e:
                    errors.append(str(e))
        self.redis.stop()
        if errors:
            raise GridError("\n\n".join(errors))
