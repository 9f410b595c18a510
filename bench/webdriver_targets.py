"""The W3C WebDriver side of the benchmarks (Python standard library only).

A keep-alive W3C client, the targets a benchmark measures (a direct
chromedriver, a standalone Gridiron) and the timed loops run against them:
create+delete one session, and round trips of cheap commands on a `data:`
page. Used by webdriver_overhead.py and lifecycle.py.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Callable

from benchlib import (LOGS, BenchError, all_procs, descendants, free_port, kill_quietly,
                      killpg_quietly, log, pdeathsig, still_alive, tail)


DEFAULT_GRID_BIN = "/root/.cache/gridiron-target/release/gridiron"
DEFAULT_CHROMEDRIVER = "/usr/bin/chromedriver"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

# The switches the grid gives its browsers (crates/domain/src/launch.rs), plus
# headless and no-sandbox, so a direct session starts the same browser.
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run"]

PAGE_TITLE = "gridiron-bench"
PAGE_URL = "data:text/html,<html><head><title>%s</title></head><body>bench</body></html>" % PAGE_TITLE
EXEC_BODY = json.dumps({"script": "return 1", "args": []}).encode()

# --------------------------------------------------------------------------
# HTTP client

class NoDelayConnection(http.client.HTTPConnection):
    """Keep-alive connection with TCP_NODELAY that counts (re)connects."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.connects = 0

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects += 1


class Client:
    """A W3C WebDriver client on one keep-alive connection."""

    def __init__(self, base_url: str, timeout: float = 120.0):
        assert base_url.startswith("http://")
        hostport = base_url[len("http://"):].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        self.conn = NoDelayConnection(host, int(port), timeout=timeout)
        self.headers_json = {"Content-Type": "application/json; charset=utf-8"}

    def connect(self) -> None:
        self.conn.connect()

    def close(self) -> None:
        self.conn.close()

    def raw(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = self.headers_json if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, data

    def call(self, method: str, path: str, payload: object | None = None) -> object:
        body = json.dumps(payload).encode() if payload is not None else None
        try:
            status, data = self.raw(method, path, body)
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            raise BenchError(f"{method} {path}: {type(e).__name__}: {e}") from None
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = None
        if status >= 300 or not isinstance(doc, dict):
            raise BenchError(f"{method} {path} -> HTTP {status}: {data[:500]!r}")
        return doc.get("value")

    # W3C helpers -----------------------------------------------------------

    def new_session(self, caps: dict) -> str:
        """POST /session; the new session's id."""
        return self.new_session_value(caps)["sessionId"]

    def new_session_value(self, caps: dict) -> dict:
        """POST /session; the whole `value` (sessionId and capabilities)."""
        value = self.call("POST", "/session", caps)
        if isinstance(value, dict) and "sessionId" in value:
            return value
        raise BenchError(f"unexpected new-session response: {value!r}")

    def delete_session(self, sid: str) -> None:
        self.call("DELETE", f"/session/{sid}")


def wait_ready(base_url: str, proc: subprocess.Popen, what: str, log_path: str,
               timeout: float, interval: float = 0.05, t0: float | None = None) -> float:
    """Poll GET /status until value.ready is true. Returns seconds since `t0` (default: now)."""
    t0 = time.monotonic() if t0 is None else t0
    last = "no response"
    while time.monotonic() - t0 < timeout:
        rc = proc.poll()
        if rc is not None:
            raise BenchError(f"{what} exited with status {rc} before becoming ready; "
                             f"log tail:\n{tail(log_path)}")
        c = Client(base_url, timeout=2.0)
        try:
            status, data = c.raw("GET", "/status")
            if status == 200:
                value = json.loads(data).get("value") or {}
                if value.get("ready") is True:
                    return time.monotonic() - t0
                last = f"ready={value.get('ready')!r}"
            else:
                last = f"HTTP {status}"
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = f"{type(e).__name__}: {e}"
        finally:
            c.close()
        time.sleep(interval)
    raise BenchError(f"{what} not ready after {timeout:.0f}s ({last}); log tail:\n{tail(log_path)}")


# --------------------------------------------------------------------------
# targets

class Target:
    """Something that answers W3C WebDriver: a chromedriver or a grid."""

    name = "?"
    base_url = ""
    proc: subprocess.Popen | None = None
    ready_s: float | None = None

    def caps(self, extra: dict | None = None) -> dict:
        """The new-session request body for this target, with `extra` capabilities added."""
        raise NotImplementedError

    def after_delete(self) -> None:
        """Called after sessions were deleted."""

    def spawn(self, what: str, cmd: list[str], env: dict, death_signal: int, log_path: str,
              timeout: float, poll_interval: float) -> None:
        """Start `cmd` in its own process group and wait until its /status is ready.

        `ready_s` is the time from just before the spawn until /status said ready.
        """
        with open(log_path, "wb") as logf:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, preexec_fn=pdeathsig(death_signal),
            )
        self.ready_s = wait_ready(self.base_url, self.proc, what, log_path, timeout,
                                  interval=poll_interval, t0=t0)


class DirectTarget(Target):
    """One chromedriver; every session gets CHROME_ARGS and a fresh profile in the request."""

    name = "direct"

    def __init__(self, chromedriver: str, chromium: str, workdir: str):
        self.chromedriver = chromedriver
        self.chromium = chromium
        self.workdir = workdir
        self.tmpdir = os.path.join(workdir, "tmp")
        self.profiles = os.path.join(workdir, "profiles")
        os.makedirs(self.tmpdir)
        os.makedirs(self.profiles)
        self.log_path = os.path.join(workdir, "chromedriver.log")
        self.proc: subprocess.Popen | None = None
        self._profile_lock = threading.Lock()
        self._profile_seq = 0

    def command(self, port: int) -> list[str]:
        """The command line serving W3C WebDriver on `port`."""
        return [self.chromedriver, f"--port={port}"]

    def env(self) -> dict:
        """The environment the server runs with."""
        return dict(os.environ, TMPDIR=self.tmpdir)

    def start(self, timeout: float, poll_interval: float = 0.05) -> None:
        """Start the server and wait until it is ready."""
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.spawn(self.name, self.command(port), self.env(), signal.SIGKILL, self.log_path, timeout,
                   poll_interval)

    def caps(self, extra: dict | None = None) -> dict:
        with self._profile_lock:
            self._profile_seq += 1
            seq = self._profile_seq
        profile = os.path.join(self.profiles, f"p{seq}")
        os.makedirs(profile)
        return {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": CHROME_ARGS + [f"--user-data-dir={profile}"],
            },
            **(extra or {}),
        }}}

    def after_delete(self) -> None:
        # Profiles of deleted sessions are not needed any more; the browser has
        # exited by the time DELETE returns. Remove them to keep disk use flat.
        for name in os.listdir(self.profiles):
            shutil.rmtree(os.path.join(self.profiles, name), ignore_errors=True)

    def stop(self) -> None:
        """Kill the driver's process group and anything it started."""
        if self.proc is None:
            return
        pid = self.proc.pid
        tree = descendants(pid)
        killpg_quietly(pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        killpg_quietly(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        # Anything that moved to another process group (but stayed in our session
        # or was a known descendant) is swept as well.
        for p, st in all_procs().items():
            if st["sid"] == pid and p != os.getpid():
                kill_quietly(p, signal.SIGKILL)
        for p, st in tree.items():
            if still_alive(p, st["start"]):
                kill_quietly(p, signal.SIGKILL)
        self.proc = None


class GridTarget(Target):
    """`gridiron standalone` on a free port; it fills in the browser's switches itself."""

    name = "grid"

    def __init__(self, grid_bin: str, workdir: str, tmpdir: str, max_sessions: int,
                 extra_args: list[str] | None = None):
        self.grid_bin = grid_bin
        self.extra_args = list(extra_args or [])
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "data")
        # The grid's own TMPDIR. Kept short on purpose: Chromium puts its
        # SingletonSocket below the temp dir it inherits, and a Unix socket path
        # must fit in 107 bytes, so a long TMPDIR makes the browser exit at start.
        self.tmpdir = tmpdir
        os.makedirs(self.data_dir)
        self.log_path = os.path.join(workdir, "gridiron.log")
        LOGS.append(("gridiron", self.log_path))
        self.max_sessions = max_sessions
        self.proc: subprocess.Popen | None = None
        self.exit_status: int | None = None
        self.stop_s: float | None = None
        self.leaked: list[str] = []
        self.leftover_tmp: list[str] = []

    def start(self, timeout: float, poll_interval: float = 0.05) -> None:
        """Start the grid and wait until /status says ready."""
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, TMPDIR=self.tmpdir)
        cmd = [self.grid_bin, "standalone", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", self.data_dir, "--max-sessions", str(self.max_sessions)]
        cmd += self.extra_args
        self.spawn("gridiron", cmd, env, signal.SIGTERM, self.log_path, timeout, poll_interval)

    def caps(self, extra: dict | None = None) -> dict:
        return {"capabilities": {"alwaysMatch": {"browserName": "chrome", **(extra or {})}}}

    def stop(self) -> None:
        """SIGTERM the grid, wait for exit, then sweep anything it left behind."""
        if self.proc is None:
            return
        pid = self.proc.pid
        tree = descendants(pid)
        t0 = time.monotonic()
        kill_quietly(pid, signal.SIGTERM)
        try:
            self.exit_status = self.proc.wait(timeout=30)
            self.stop_s = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            log("gridiron did not exit within 30s of SIGTERM; killing it")
            killpg_quietly(pid, signal.SIGKILL)
            kill_quietly(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.exit_status = self.proc.wait(timeout=5)
        # Give orphaned children a moment to exit on their own before calling
        # them leaked.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if not any(still_alive(p, st["start"]) for p, st in tree.items()):
                break
            time.sleep(0.1)
        for p, st in tree.items():
            if still_alive(p, st["start"]):
                self.leaked.append(f"{p}:{st['comm']}")
                kill_quietly(p, signal.SIGKILL)
        for p, st in all_procs().items():
            if st["sid"] == pid and p != os.getpid():
                kill_quietly(p, signal.SIGKILL)
        # Whatever is still in the grid's TMPDIR was not cleaned up by the grid.
        with contextlib.suppress(OSError):
            self.leftover_tmp = sorted(os.listdir(self.tmpdir))
        self.proc = None


# --------------------------------------------------------------------------
# measurements

def timed_session(target: Target, client: Client | None = None,
                  cleanup: bool = True) -> tuple[float, float, dict]:
    """Create and delete one session, on `client` or a fresh connection.

    Returns (create_ms, delete_ms, the new-session response's value). Without
    `cleanup` the caller calls target.after_delete() once its other sessions
    (of parallel clients) are gone too.
    """
    c = client or Client(target.base_url)
    try:
        c.connect()
        caps = target.caps()
        t0 = time.perf_counter_ns()
        value = c.new_session_value(caps)
        t1 = time.perf_counter_ns()
        c.delete_session(value["sessionId"])
        t2 = time.perf_counter_ns()
    finally:
        if client is None:
            c.close()
    if cleanup:
        target.after_delete()
    return (t1 - t0) / 1e6, (t2 - t1) / 1e6, value


# The timed commands: (method, path below /session/{id}, body, bytes the answer must hold).
COMMANDS = {
    "title": ("GET", "/title", None, b'"' + PAGE_TITLE.encode() + b'"'),
    "url": ("GET", "/url", None, b'"value":"data:'),
    "execute": ("POST", "/execute/sync", EXEC_BODY, b'"value":1'),
}
COMMAND_LABELS = {"title": "GET title", "url": "GET url", "execute": "POST execute/sync"}


class CommandSession:
    """One session on a `data:` page, with its own keep-alive connection, for timed commands."""

    def __init__(self, target: Target, extra_caps: dict | None = None):
        self.target = target
        self.client = Client(target.base_url)
        self.client.connect()
        caps = target.caps(extra_caps)
        self.value = self.client.new_session_value(caps)
        self.sid = self.value["sessionId"]
        self.client.call("POST", f"/session/{self.sid}/url", {"url": PAGE_URL})
        title = self.client.call("GET", f"/session/{self.sid}/title")
        if title != PAGE_TITLE:
            raise BenchError(f"{target.name}: unexpected title {title!r}")
        self.connects_before = self.client.conn.connects

    def close(self) -> None:
        """Delete the session and close the connection."""
        try:
            self.client.delete_session(self.sid)
        finally:
            self.client.close()
            self.target.after_delete()

    def run(self, command: str, n: int, out: list[float]) -> None:
        """Run `n` round trips of `command` (a COMMANDS key), appending latencies (ms) to `out`."""
        conn = self.client.conn
        method, suffix, body, expect = COMMANDS[command]
        path = f"/session/{self.sid}{suffix}"
        hdrs = self.client.headers_json if body is not None else {}
        pc = time.perf_counter_ns
        lat = []
        append = lat.append
        bad = None
        reopened = False
        while len(lat) < n:
            t0 = pc()
            try:
                conn.request(method, path, body, hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed a keep-alive connection that sat idle (hyper does after its
                # header read timeout). Clients reconnect; so does this one, once per run.
                if reopened:
                    raise
                reopened = True
                conn.close()
                continue
            t1 = pc()
            append(t1 - t0)
            if resp.status != 200 or expect not in data:
                bad = (resp.status, data)
        if bad is not None:
            raise BenchError(f"{self.target.name} {command}: unexpected response "
                             f"HTTP {bad[0]}: {bad[1][:300]!r}")
        out.extend(x / 1e6 for x in lat)


def run_parallel(target: Target, clients: int, work: Callable[[int, Client], None], what: str) -> float:
    """Run work(i, client) in `clients` threads that start together, each on its own connection.

    Returns the wall time (s) from the common start until the last one ended;
    raises BenchError naming every client that failed.
    """
    barrier = threading.Barrier(clients + 1)
    errors: list[str] = []

    def worker(i: int) -> None:
        c = Client(target.base_url)
        try:
            c.connect()
            barrier.wait()
            work(i, c)
        except threading.BrokenBarrierError:
            pass
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            errors.append(f"client {i}: {type(e).__name__}: {e}")
            barrier.abort()
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True, name=f"client-{i}")
               for i in range(clients)]
    for th in threads:
        th.start()
    started = True
    try:
        barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        started = False
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    target.after_delete()
    if errors:
        raise BenchError(f"{what}: " + "; ".join(errors))
    if not started:
        raise BenchError(f"{what}: clients did not start within 60s")
    return wall
