"""A scaled-out Gridiron under test: a real redis-server, hubs and nodes.

Hubs and nodes are `Grid`s (same lifecycle, logs and leak checks); Redis is
read with a minimal RESP client so tests can see the shared state.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

import harness
from harness import Grid, GridError, free_port, http_request, wait_until

SECRET = "test-cluster-secret-0123"
NAMESPACE = "gridiron"


class Redis:
    """One redis-server on a free port, with its own directory."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="gridiron-redis-")
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        if shutil.which("redis-server") is None:
            raise GridError("redis-server is not installed (scripts/install-deps)")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._answers, 10, what="redis-server to accept connections")
        return self

    def _answers(self):
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
        self.kill()
        return self.start()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(self, *args, timeout=5.0):
        """One command; returns the decoded reply (str, int, list or None)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            payload = f"*{len(args)}\r\n".encode()
            for a in args:
                b = str(a).encode()
                payload += f"${len(b)}\r\n".encode() + b + b"\r\n"
            s.sendall(payload)
            reader = s.makefile("rb")
            return _read_reply(reader)

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


def _kill_hard(grid):
    """SIGKILL the process's group (not its sessions' groups, which are their own)."""
    grid.stopped = True
    os.killpg(grid.proc.pid, signal.SIGKILL)
    grid.proc.wait(timeout=10)
    grid.exit_code = "killed"


class Hub(Grid):
    """One `gridiron hub`."""

    def __init__(self, binary, redis, **options):
        super().__init__(binary, **options)
        self.redis = redis

    def command_line(self):
        cmd = [self.binary, "hub", "--host", "127.0.0.1", "--port", str(self.port), "--store", self.redis.url]
        for key, value in self.options.items():
            cmd += ["--" + key.replace("_", "-"), str(value)]
        return cmd

    def start(self):
        os.environ["GRIDIRON_CLUSTER_SECRET"] = SECRET
        return super().start()

    def wait_ready(self, timeout=harness.READY_TIMEOUT):
        # A hub is up once it answers; it is "ready" only when some node has room.
        wait_until(self._answers, timeout, what=f"hub on {self.port} to answer")

    def _answers(self):
        if self.proc.poll() is not None:
            raise GridError(f"hub exited with code {self.proc.poll()}\n{self.log_tail()}")
        try:
            return http_request(self.port, "GET", "/status", timeout=2).status == 200
        except OSError:
            return False

    kill_hard = _kill_hard

    def known_session_ids(self):
        return set()

    def db_rows(self, where="1=1", args=()):
        raise RuntimeError("a hub has no local store")


class Node(Grid):
    """One `gridiron node` with its own data dir (its processes carry it)."""

    # SIGTERM drains a node (waits for its sessions); Ctrl-C stops it at once.
    stop_signal = signal.SIGINT

    def __init__(self, binary, redis, **options):
        super().__init__(binary, **options)
        self.redis = redis

    def command_line(self):
        cmd = [
            self.binary, "node", "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", self.data_dir, "--store", self.redis.url,
            "--advertise-url", f"http://127.0.0.1:{self.port}",
        ]
        for key, value in self.options.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                cmd += ["--" + key.replace("_", "-"), str(v)]
        return cmd

    def start(self):
        os.environ["GRIDIRON_CLUSTER_SECRET"] = SECRET
        return super().start()

    def request(self, method, path, body=None, headers=None, timeout=30.0):
        hdrs = {"x-gridiron-cluster-secret": SECRET}
        hdrs.update(headers or {})
        return http_request(self.port, method, path, body=body, headers=hdrs, timeout=timeout)

    def wait_ready(self, timeout=harness.READY_TIMEOUT):
        def registered():
            if self.proc.poll() is not None:
                raise GridError(f"node exited with code {self.proc.poll()}\n{self.log_tail()}")
            return self.node_id()

        wait_until(registered, timeout, what=f"node on {self.port} to register")

    def node_id(self):
        """This node's id, from the registered nodes' URLs."""
        for nid in self.redis.command("SMEMBERS", f"{NAMESPACE}:nodes") or []:
            info = self.redis.hash(f"node:{nid}").get("info", "")
            if f'"url":"http://127.0.0.1:{self.port}"' in info:
                return nid
        return None

    def known_session_ids(self):
        return set()

    def db_rows(self, where="1=1", args=()):
        raise RuntimeError("a node keeps its records in Redis")

    def browsers(self):
        return [p for p in self.processes() if p.is_chromium()]

    kill_hard = _kill_hard
