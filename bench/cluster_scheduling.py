#!/usr/bin/env python3
"""Scheduling throughput of the scaled-out grid (hubs + nodes over Redis),
measured with a STAND-IN DRIVER instead of real browsers.

The stand-in driver (`gridiron-standin-driver`, crates/standin-driver) is a
fake chromedriver: it answers `POST /session` at once and starts no browser.
Ten thousand real Chromium sessions do not fit on a small machine; the
stand-in lets the benchmark load the grid's own machinery (hub, Redis queue,
node claims, driver process start, session routes, ends) as hard as it can go.
Each grid session still gets its own stand-in driver *process*, started by
the node's local provisioner exactly as chromedriver would be.

Phases, all in one run:

  A  baseline: create+delete sessions directly against ONE stand-in driver
     process with C concurrent keep-alive clients -> sessions/s.
  B  the same workload through 1 hub (2 nodes x 8 slots), then through 2 hubs
     (each client alternates hubs) -> sessions/s, and the time each request
     spends in the grid before the stand-in driver is asked (client send time
     vs. the driver's STANDIN_LOG receive time, matched by `bench:seq`).
  C  a queue of 10,000: all slots are held by blocker sessions, then 10,000
     requests are sent one at a time (each confirmed queued in Redis before
     the next), alternating the 2 hubs; the blockers are deleted and the queue
     drains. Checks that every request got a session (no loss) and that the
     stand-in drivers were asked in FIFO order (each request's position in the
     driver log differs from its enqueue position by less than the number of
     slots S).

Python 3 standard library only. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from benchlib import (STANDIN_VERSION, free_port, pdeathsig, percentile, processes_with_env,
                      redis_server_argv, standin_driver_dir, tail)

SECRET = "bench-secret-0001"
NAMESPACE = "gridiron"
QUEUE_KEY = f"{NAMESPACE}:queue"
# Marks every process this run starts (and the stand-in drivers the nodes start).
MARKER_ENV = "GRIDIRON_SCHED_BENCH_RUN"


class BenchError(Exception):
    pass


class Terminated(BaseException):
    """Raised from the SIGTERM handler so that cleanup runs."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def new_session_body(seq: int) -> bytes:
    return json.dumps({"capabilities": {
        "alwaysMatch": {"browserName": "chrome", "bench:seq": seq},
        "firstMatch": [{}],
    }}).encode()


# --------------------------------------------------------------------------
# processes


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process plus that of the children it has reaped (for a
    node: its finished stand-in drivers)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return float("nan")
    fields = data[data.rfind(")") + 2:].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: str
    stop_signal: int
    stopped: bool = False


class Processes:
    """Every process this run starts, each in its own process group."""

    def __init__(self, workdir: str, env: dict[str, str]):
        self.workdir = workdir
        self.env = env
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], stop_signal: int = signal.SIGTERM,
              death_signal: int = signal.SIGKILL, extra_env: dict | None = None,
              stdout_pipe: bool = False) -> Proc:
        log_path = os.path.join(self.workdir, f"{name}.log")
        env = dict(self.env, **(extra_env or {}))
        out = open(log_path, "ab")
        try:
            p = subprocess.Popen(
                argv, env=env, cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else out, stderr=out,
                start_new_session=True, preexec_fn=pdeathsig(death_signal))
        finally:
            out.close()
        proc = Proc(name, p, log_path, stop_signal)
        self.procs.append(proc)
        return proc

    def check_alive(self) -> None:
        for p in self.procs:
            if not p.stopped and p.popen.poll() is not None:
                raise BenchError(f"{p.name} exited unexpectedly ({p.popen.returncode}); "
                                 f"log {p.log_path}:\n{tail(p.log_path, 30)}")

    def stop(self, proc: Proc, grace: float = 15.0) -> None:
        proc.stopped = True
        p = proc.popen
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(proc.stop_signal)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{proc.name} did not stop within {grace:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(5)
        if p.stdout:
            p.stdout.close()

    def stop_all(self) -> None:
        # Nodes first (Ctrl-C ends their sessions at once), then hubs, then the rest.
        order = sorted(self.procs, key=lambda p: (not p.name.startswith("node"),
                                                  not p.name.startswith("hub")))
        for p in order:
            self.stop(p)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every running process, by name."""
        return {p.name: cpu_seconds(p.popen.pid) for p in self.procs if not p.stopped}

    def strays(self) -> list[tuple[int, str]]:
        """Live processes carrying this run's marker that are not ours to wait for."""
        return [(p.pid, p.cmd_text) for p in processes_with_env(f"{MARKER_ENV}={self.workdir}")]

    def kill_strays(self) -> list[tuple[int, str]]:
        found = self.strays()
        for pid, _ in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return found


# --------------------------------------------------------------------------
# HTTP/1.1 by hand over asyncio streams


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before a response")
    parts = line.split(None, 2)
    status = int(parts[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(chunks)
    else:
        body = await reader.read()
    return status, headers, body


def request_bytes(method: str, path: str, body: bytes | None, close: bool,
                  headers: dict | None = None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if body is not None:
        head += ["Content-Type: application/json; charset=utf-8", f"Content-Length: {len(body)}"]
    if close:
        head.append("Connection: close")
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


class HttpConn:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None = None,
                      close: bool = False, headers: dict | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.writer.write(request_bytes(method, path, body, close, headers))
            status, hdrs, data = await read_response(self.reader)
        except BaseException:
            self.close()
            raise
        if close or hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def http_once(port: int, method: str, path: str, body: bytes | None = None,
                    timeout: float = 10.0) -> tuple[int, bytes]:
    c = HttpConn(port)
    try:
        return await asyncio.wait_for(c.request(method, path, body, close=True), timeout)
    finally:
        c.close()


async def get_json(port: int, path: str = "/status") -> dict:
    status, body = await http_once(port, "GET", path)
    return json.loads(body)


# --------------------------------------------------------------------------
# Redis (RESP by hand)


class Redis:
    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def cmd(self, *args) -> object:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        out = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.writer.write(out)
        return await self._read()

    async def _read(self) -> object:
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:].rstrip(b"\r\n")
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BenchError(f"redis error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else (await self.reader.readexactly(n + 2))[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [await self._read() for _ in range(n)]
        raise BenchError(f"unexpected redis reply {line!r}")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --------------------------------------------------------------------------
# the stand-in driver's log


def read_standin_log(path: str) -> list[tuple[int, int, int]]:
    """(receive ns, seq, line number) for every line of a STANDIN_LOG."""
    out = []
    try:
        with open(path) as f:
            for i, line in enumerate(f):
                parts = line.split()
                if len(parts) == 2:
                    out.append((int(parts[0]), int(parts[1]), i))
    except FileNotFoundError:
        pass
    return out


# --------------------------------------------------------------------------
# phases A and B: closed-loop create+delete


@dataclass
class LoopResult:
    label: str
    completed: int = 0
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)
    sent_ns: dict[int, int] = field(default_factory=dict)
    create_ms: list[float] = field(default_factory=list)
    in_grid_ms: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    # Share of one core used by each process during the measurement.
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0


async def closed_loop(label: str, ports: list[int], clients: int, duration: float,
                      seqs: itertools.count) -> LoopResult:
    """`clients` concurrent clients create and delete sessions for `duration`
    seconds; client c sends its k-th session to ports[(c + k) % len(ports)]."""
    res = LoopResult(label)
    deadline = time.monotonic() + duration

    async def client(c: int) -> None:
        conns = [HttpConn(p) for p in ports]
        k = 0
        try:
            while time.monotonic() < deadline:
                conn = conns[(c + k) % len(conns)]
                k += 1
                seq = next(seqs)
                body = new_session_body(seq)
                t0 = time.time_ns()
                try:
                    status, data = await asyncio.wait_for(conn.request("POST", "/session", body), 120)
                    t1 = time.time_ns()
                    if status != 200:
                        raise BenchError(f"new session: {status} {data[:300]!r}")
                    sid = json.loads(data)["value"]["sessionId"]
                    res.sent_ns[seq] = t0
                    res.create_ms.append((t1 - t0) / 1e6)
                    status, data = await asyncio.wait_for(conn.request("DELETE", f"/session/{sid}"), 120)
                    if status != 200:
                        raise BenchError(f"delete session: {status} {data[:300]!r}")
                    res.completed += 1
                except (BenchError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                        ValueError, KeyError) as e:
                    res.errors.append(f"{type(e).__name__}: {e}")
                    conn.close()
                    if len(res.errors) > 50:
                        raise BenchError(f"{label}: too many errors, first: {res.errors[0]}")
                    await asyncio.sleep(0.05)
        finally:
            for conn in conns:
                conn.close()

    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(client(c) for c in range(clients)))
    res.elapsed = time.monotonic() - t0
    res.client_cpu = (time.process_time() - cpu0) / res.elapsed
    return res


def attach_driver_times(res: LoopResult, log_path: str) -> None:
    received = {seq: ns for ns, seq, _ in read_standin_log(log_path)}
    res.in_grid_ms = [(received[s] - t) / 1e6 for s, t in res.sent_ns.items() if s in received]
    missing = len(res.sent_ns) - len(res.in_grid_ms)
    if missing:
        res.errors.append(f"{missing} created sessions have no line in the stand-in driver log")


# --------------------------------------------------------------------------
# phase C: a long queue


@dataclass
class QueueResult:
    n: int
    slots: int
    enqueue_s: float = 0.0
    granted: int = 0
    deleted: int = 0
    failed: list[str] = field(default_factory=list)
    early: int = 0
    drain_s: float = 0.0
    all_deleted_s: float = 0.0
    log_entries: int = 0
    duplicates: int = 0
    missing: int = 0
    max_displacement: int = -1
    inversions: int = -1
    queue_after: int = -1
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def fifo_ok(self) -> bool:
        return 0 <= self.max_displacement < self.slots and self.missing == 0 and self.duplicates == 0

    @property
    def ok(self) -> bool:
        return (self.granted == self.n and self.deleted == self.n and not self.failed
                and self.early == 0 and self.fifo_ok and self.queue_after == 0)


def count_inversions(xs: list[int]) -> int:
    """Pairs i < j with xs[i] > xs[j] (xs a permutation of 0..n-1), via a Fenwick tree."""
    n = len(xs)
    tree = [0] * (n + 1)
    inv = 0
    for seen, x in enumerate(xs):
        # Elements already seen that are greater than x.
        i, smaller = x + 1, 0
        while i > 0:
            smaller += tree[i]
            i -= i & -i
        inv += seen - smaller
        i = x + 1
        while i <= n:
            tree[i] += 1
            i += i & -i
    return inv


async def queue_phase(hub_ports: list[int], redis: Redis, n: int, slots: int,
                      seqs: itertools.count, log_path: str, procs: Processes,
                      request_timeout: float, stall_timeout: float) -> QueueResult:
    res = QueueResult(n=n, slots=slots)

    # 1. Fill every slot with a blocker session.
    blockers: list[tuple[int, str]] = []
    for i in range(slots):
        port = hub_ports[i % len(hub_ports)]
        status, data = await http_once(port, "POST", "/session", new_session_body(next(seqs)), 60)
        if status != 200:
            raise BenchError(f"blocker session {i}: {status} {data[:300]!r}")
        blockers.append((port, json.loads(data)["value"]["sessionId"]))
    if (q := await redis.cmd("ZCARD", QUEUE_KEY)) != 0:
        raise BenchError(f"queue not empty after the blockers started ({q})")
    log(f"phase C: {slots} blocker sessions hold every slot; enqueueing {n} requests")

    # 2. Enqueue n requests one at a time, each confirmed queued before the next.
    base = next(seqs)
    for _ in range(n - 1):
        next(seqs)
    released = asyncio.Event()
    got_ns: dict[int, int] = {}
    deleted_ns: dict[int, int] = {}

    async def queued_client(port: int, seq: int) -> None:
        reader = writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request_bytes("POST", "/session", new_session_body(seq), close=True))
            status, _, data = await asyncio.wait_for(read_response(reader), request_timeout)
            got_ns[seq] = time.time_ns()
            if not released.is_set():
                res.early += 1
            if status != 200:
                raise BenchError(f"new session: {status} {data[:300]!r}")
            sid = json.loads(data)["value"]["sessionId"]
            res.granted += 1
            status, data = await http_once(port, "DELETE", f"/session/{sid}", timeout=60)
            if status != 200:
                raise BenchError(f"delete {sid}: {status} {data[:300]!r}")
            deleted_ns[seq] = time.time_ns()
            res.deleted += 1
        except (BenchError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                ValueError, KeyError) as e:
            res.failed.append(f"seq {seq}: {type(e).__name__}: {e}")
        finally:
            if writer is not None:
                writer.close()

    tasks: list[asyncio.Task] = []
    t_enqueue = time.monotonic()
    last_report = t_enqueue
    for i in range(n):
        seq = base + i
        task = asyncio.create_task(queued_client(hub_ports[i % len(hub_ports)], seq))
        tasks.append(task)
        limit = time.monotonic() + 30
        delay = 0.0002
        while True:
            await asyncio.sleep(delay)
            q = await redis.cmd("ZCARD", QUEUE_KEY)
            if q >= i + 1:
                break
            if task.done():
                detail = res.failed[-1] if res.failed else "it was answered before being queued"
                raise BenchError(f"request {i} (seq {seq}) never showed in the queue: {detail}")
            if time.monotonic() > limit:
                raise BenchError(f"request {i} (seq {seq}) not queued after 30 s (queue length {q})")
            delay = min(delay * 2, 0.01)
        if time.monotonic() - last_report > 5:
            last_report = time.monotonic()
            log(f"phase C: {i + 1}/{n} queued ({(i + 1) / (last_report - t_enqueue):.0f}/s)")
            procs.check_alive()
    res.enqueue_s = time.monotonic() - t_enqueue
    log(f"phase C: {n} queued in {res.enqueue_s:.1f} s; releasing the slots")

    # 3. Release: delete the blockers, let the queue drain.
    released.set()
    t_release_ns = time.time_ns()
    t_release = time.monotonic()
    cpu0 = procs.cpu()
    for port, sid in blockers:
        status, data = await http_once(port, "DELETE", f"/session/{sid}", timeout=60)
        if status != 200:
            raise BenchError(f"deleting blocker {sid}: {status} {data[:300]!r}")
    pending = set(tasks)
    last_progress, last_done = time.monotonic(), 0
    while pending:
        done, pending = await asyncio.wait(pending, timeout=5)
        finished = n - len(pending)
        q = await redis.cmd("ZCARD", QUEUE_KEY)
        log(f"phase C: {res.granted}/{n} granted, {res.deleted} deleted, {len(res.failed)} failed, "
            f"{q} still queued, {time.monotonic() - t_release:.0f} s since release")
        procs.check_alive()
        if finished > last_done:
            last_progress, last_done = time.monotonic(), finished
        elif time.monotonic() - last_progress > stall_timeout:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            res.failed.append(f"stalled: no request finished for {stall_timeout:.0f} s; "
                              f"{len(pending)} still waiting, {q} in the Redis queue")
            break
    res.cpu = cpu_share(cpu0, procs.cpu(), time.monotonic() - t_release)
    if got_ns:
        res.drain_s = (max(got_ns.values()) - t_release_ns) / 1e9
    if deleted_ns:
        res.all_deleted_s = (max(deleted_ns.values()) - t_release_ns) / 1e9
    res.queue_after = await redis.cmd("ZCARD", QUEUE_KEY)

    # 4. FIFO: positions in the stand-in driver log vs. enqueue positions.
    entries = sorted((ns, line, seq) for ns, seq, line in read_standin_log(log_path)
                     if base <= seq < base + n)
    res.log_entries = len(entries)
    order = [seq - base for _, _, seq in entries]
    res.duplicates = len(order) - len(set(order))
    res.missing = n - len(set(order))
    if not res.duplicates and not res.missing:
        res.max_displacement = max(abs(pos - enq) for pos, enq in enumerate(order))
        res.inversions = count_inversions(order)
    elif order:
        first: dict[int, int] = {}
        for pos, enq in enumerate(order):
            first.setdefault(enq, pos)
        ranked = sorted(first, key=first.get)
        res.max_displacement = max(abs(pos - enq) for pos, enq in enumerate(ranked))
    return res


# --------------------------------------------------------------------------
# setup


def default_bin_dir() -> str:
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/gridiron-target")
    return os.path.join(target, "release")


async def wait_until(what: str, check, timeout: float, procs: Processes) -> object:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            v = await check()
            if v:
                return v
        except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                ConnectionError, BenchError) as e:
            last = e
        await asyncio.sleep(0.1)
    raise BenchError(f"timed out waiting for {what} ({last})")


def raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        raise BenchError(f"open-files limit {soft} (hard {hard}) is below the {need} this run "
                         f"needs; lower --queued or raise the limit")
    return soft


def count_log_levels(path: str) -> tuple[int, int]:
    warn = error = 0
    with contextlib.suppress(OSError), open(path, "rb") as f:
        for line in f:
            if b" WARN " in line:
                warn += 1
            elif b" ERROR " in line:
                error += 1
    return warn, error


# --------------------------------------------------------------------------
# main


@dataclass
class Topology:
    redis_port: int = 0
    hub_ports: list[int] = field(default_factory=list)
    node_ports: list[int] = field(default_factory=list)


async def run(args, procs: Processes, workdir: str, report: dict) -> bool:
    seqs = itertools.count(1)
    grid_log = os.path.join(workdir, "standin-grid.log")
    direct_log = os.path.join(workdir, "standin-direct.log")
    topo = Topology()

    # Redis.
    topo.redis_port = free_port()
    procs.start("redis", redis_server_argv(topo.redis_port, workdir))
    redis = Redis(topo.redis_port)

    async def redis_up():
        await redis.connect()
        return await redis.cmd("PING") == "PONG"

    await wait_until("redis", redis_up, 10, procs)
    store = f"redis://127.0.0.1:{topo.redis_port}"

    # Hubs and nodes.
    for i in range(2):
        port = free_port()
        topo.hub_ports.append(port)
        procs.start(f"hub{i + 1}", [args.gridiron, "hub", "--host", "127.0.0.1", "--port", str(port),
                                    "--store", store, "--cluster-secret", SECRET,
                                    "--max-queue", str(max(20000, args.queued + 100)),
                                    # Each queued request holds a client connection open.
                                    "--max-connections", str(max(1024, args.queued + 100)),
                                    "--queue-timeout", str(args.queue_timeout)],
                    stop_signal=signal.SIGTERM, death_signal=signal.SIGTERM)
    for i in range(args.nodes):
        port = free_port()
        topo.node_ports.append(port)
        procs.start(f"node{i + 1}", [args.gridiron, "node", "--host", "127.0.0.1", "--port", str(port),
                                     "--store", store, "--advertise-url", f"http://127.0.0.1:{port}",
                                     "--max-sessions", str(args.slots),
                                     "--data-dir", os.path.join(workdir, f"n{i + 1}"),
                                     "--cluster-secret", SECRET,
                                     # Drivers start with a cleared environment: the stand-in
                                     # gets STANDIN_LOG only when passed by name, and writes it
                                     # into this run's private dir as the node's own user.
                                     "--pass-env", "STANDIN_LOG", "--session-uid-base", "0"],
                    stop_signal=signal.SIGINT, death_signal=signal.SIGINT,
                    extra_env={"STANDIN_LOG": grid_log})
    total_slots = args.nodes * args.slots

    async def hubs_ready():
        for port in topo.hub_ports:
            v = (await get_json(port))["value"]
            up = [n for n in v.get("nodes", []) if n.get("availability") == "UP"]
            if not (v.get("ready") and len(up) == args.nodes):
                return None
        return v

    status = await wait_until("the hubs to see every node", hubs_ready, 30, procs)
    stereotypes = {(s["browserName"], s["browserVersion"])
                   for n in status["nodes"] for s in n["stereotypes"]}
    if stereotypes != {("chrome", STANDIN_VERSION)}:
        raise BenchError(f"nodes offer {sorted(stereotypes)}, expected only the stand-in "
                         f"chrome {STANDIN_VERSION} (is a real browser on the nodes' PATH?)")
    log(f"grid up: 2 hubs, {args.nodes} nodes x {args.slots} slots, "
        f"stereotypes {sorted(stereotypes)} (stand-in driver only)")

    # Phase A: direct to one stand-in driver.
    direct = procs.start("standin-direct", [args.standin, "--port=0"], stdout_pipe=True,
                         extra_env={"STANDIN_LOG": direct_log})
    line = await asyncio.wait_for(asyncio.to_thread(direct.popen.stdout.readline), 10)
    while b"started successfully on port" not in line:
        line = await asyncio.wait_for(asyncio.to_thread(direct.popen.stdout.readline), 10)
        if not line:
            raise BenchError("the stand-in driver exited before listening")
    direct_port = int(line.rsplit(b" ", 1)[1].rstrip(b".\r\n"))

    phases: list[LoopResult] = []
    plan = [
        ("A  direct, 1 stand-in driver", [direct_port], direct_log),
        ("B1 1 hub, grid", topo.hub_ports[:1], grid_log),
        ("B2 2 hubs (alternating), grid", topo.hub_ports, grid_log),
    ]
    for label, ports, lp in plan:
        log(f"phase {label}: warm-up {args.warmup:g} s, then {args.duration:g} s "
            f"with {args.clients} clients")
        warm = await closed_loop(label, ports, args.clients, args.warmup, seqs)
        if warm.errors:
            raise BenchError(f"{label} warm-up failed: {warm.errors[0]}")
        cpu0 = procs.cpu()
        res = await closed_loop(label, ports, args.clients, args.duration, seqs)
        res.cpu = cpu_share(cpu0, procs.cpu(), res.elapsed)
        attach_driver_times(res, lp)
        procs.check_alive()
        log(f"phase {label}: {res.completed} sessions, {res.rate:.1f}/s, {len(res.errors)} errors")
        phases.append(res)
        if not direct.stopped:
            procs.stop(direct)
    report["phases"] = phases

    # Phase C: the long queue.
    if args.queued > 0:
        await asyncio.sleep(1)  # let heartbeats catch up with the last deletes
        qres = await queue_phase(topo.hub_ports, redis, args.queued, total_slots, seqs,
                                 grid_log, procs, args.queue_timeout + 120, args.stall_timeout)
        report["queue"] = qres
    redis.close()

    # Processes left behind by the nodes once they stopped.
    for p in list(procs.procs):
        if p.name.startswith("node"):
            procs.stop(p)
    await asyncio.sleep(0.5)
    strays = procs.strays()
    report["strays_after_nodes"] = [s for s in strays if not any(
        s[0] == p.popen.pid for p in procs.procs)]
    report["log_levels"] = {p.name: count_log_levels(p.log_path) for p in procs.procs
                            if p.name.startswith(("hub", "node"))}
    ok = all(not r.errors for r in phases)
    if "queue" in report:
        ok &= report["queue"].ok
    ok &= not report["strays_after_nodes"]
    return ok


def cpu_share(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {k: (after[k] - before[k]) / seconds for k in before
            if k in after and seconds > 0 and after[k] == after[k]}


def per_session_ms(r: "LoopResult", prefix: str) -> float:
    """CPU milliseconds per completed session of the processes named `prefix`*."""
    if not r.completed:
        return float("nan")
    share = sum(v for k, v in r.cpu.items() if k.startswith(prefix))
    return share * r.elapsed * 1000 / r.completed


def fmt_cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v * 100:.0f}%" for k, v in sorted(cpu.items()))


def fmt(v: float, digits: int = 1) -> str:
    return "-" if v != v else f"{v:.{digits}f}"


def print_summary(args, report: dict, env_info: dict) -> None:
    out = []
    out.append("")
    out.append("Gridiron scaled-out scheduling benchmark -- STAND-IN DRIVER "
               "(gridiron-standin-driver, a fake chromedriver; no browsers run)")
    out.append(f"host: {env_info['cpus']} CPUs, loadavg at start {env_info['load0']}, "
               f"at end {os.getloadavg()[0]:.2f}; gridiron {env_info['version']}")
    out.append(f"grid: 2 hubs, {args.nodes} nodes x {args.slots} slots, Redis {env_info['redis']}; "
               f"clients: {args.clients} keep-alive, phases {args.duration:g} s after {args.warmup:g} s warm-up")
    phases: list[LoopResult] = report.get("phases", [])
    if phases:
        base = phases[0].rate
        out.append("")
        out.append(f"{'phase':<32}{'sessions/s':>11}{'vs A':>8}{'create ms':>16}"
                   f"{'before driver ms':>19}{'errors':>8}{'client CPU':>12}")
        out.append(f"{'':<32}{'':>11}{'':>8}{'p50 / p99':>16}{'p50 / p99':>19}")
        for r in phases:
            ratio = f"{r.rate / base:.3f}x" if base else "-"
            out.append(f"{r.label:<32}{r.rate:>11.1f}{ratio:>8}"
                       f"{fmt(percentile(sorted(r.create_ms), 50), 2) + ' / ' + fmt(percentile(sorted(r.create_ms), 99), 2):>16}"
                       f"{fmt(percentile(sorted(r.in_grid_ms), 50), 2) + ' / ' + fmt(percentile(sorted(r.in_grid_ms), 99), 2):>19}"
                       f"{len(r.errors):>8}{r.client_cpu * 100:>11.0f}%")
        out.append("CPU, share of one core during each phase (a node's includes its ended stand-in drivers):")
        for r in phases:
            out.append(f"  {r.label.split()[0]:<3} {fmt_cpu(r.cpu)}")
        out.append("CPU ms per session (all nodes together, with their stand-in drivers; all hubs; Redis):")
        for r in phases[1:]:
            out.append(f"  {r.label.split()[0]:<3} nodes {fmt(per_session_ms(r, 'node'), 2)}, "
                       f"hubs {fmt(per_session_ms(r, 'hub'), 2)}, redis {fmt(per_session_ms(r, 'redis'), 2)}")
        for r in phases:
            for e in r.errors[:3]:
                out.append(f"  {r.label.split()[0]} error: {e}")
        out.append("  'before driver' = stand-in driver receive time (STANDIN_LOG) minus client send time,")
        out.append("  per bench:seq; for A it is the plain HTTP hop. Each grid session starts its own")
        out.append("  stand-in driver process; A reuses one process. Client CPU near 100% means the")
        out.append("  Python client, not the target, limited the rate.")
    q: QueueResult | None = report.get("queue")
    if q is not None:
        out.append("")
        out.append(f"phase C: {q.n} requests queued through 2 hubs (alternating), S = {q.slots} slots")
        out.append(f"  enqueue:       {q.n} requests in {q.enqueue_s:.1f} s "
                   f"({q.n / q.enqueue_s if q.enqueue_s else 0:.0f}/s, one at a time, each confirmed in Redis)")
        out.append(f"  outcome:       {q.granted} granted, {q.deleted} deleted, {len(q.failed)} failed, "
                   f"{q.early} answered before release, {q.queue_after} left in queue  "
                   f"[{'PASS' if q.granted == q.n and not q.failed and q.early == 0 else 'FAIL'}: no loss]")
        rate = q.granted / q.drain_s if q.drain_s else 0
        out.append(f"  drain:         last session granted {q.drain_s:.1f} s after release "
                   f"= {rate:.1f} sessions/s; all deleted after {q.all_deleted_s:.1f} s")
        out.append(f"  CPU in drain:  {fmt_cpu(q.cpu)}")
        out.append(f"  driver log:    {q.log_entries} entries, {q.missing} missing, {q.duplicates} duplicates")
        out.append(f"  FIFO:          max displacement {q.max_displacement} (must be < S = {q.slots}), "
                   f"{q.inversions} inversions  [{'PASS' if q.fifo_ok else 'FAIL'}]")
        for e in q.failed[:5]:
            out.append(f"  failure: {e}")
    strays = report.get("strays_after_nodes")
    if strays is not None:
        out.append("")
        out.append(f"processes left after the nodes stopped: {len(strays)}"
                   + "".join(f"\n  {pid} {cmd}" for pid, cmd in strays[:5]))
    levels = report.get("log_levels")
    if levels:
        out.append("log lines at WARN/ERROR: " + ", ".join(
            f"{name} {w}/{e}" for name, (w, e) in sorted(levels.items())))
    print("\n".join(out), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gridiron", default=os.path.join(default_bin_dir(), "gridiron"),
                    help="gridiron release binary "
                         "[default: $CARGO_TARGET_DIR or ~/.cache/gridiron-target, /release/gridiron]")
    ap.add_argument("--standin", help="the stand-in driver binary [default: gridiron-standin-driver "
                                      "next to --gridiron]")
    ap.add_argument("--quick", action="store_true", help="3 s phases, 1,000 queued")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients in phases A and B")
    ap.add_argument("--duration", type=float, help="seconds per phase A/B measurement [10]")
    ap.add_argument("--warmup", type=float, help="warm-up seconds before each A/B phase [1]")
    ap.add_argument("--queued", type=int, help="requests queued in phase C [10000]; 0 skips it")
    ap.add_argument("--nodes", type=int, default=2, help="nodes [2]")
    ap.add_argument("--slots", type=int, default=8, help="slots per node [8]")
    ap.add_argument("--queue-timeout", type=float, default=600, help="hubs' --queue-timeout [600]")
    ap.add_argument("--stall-timeout", type=float, default=120,
                    help="phase C fails if no request finishes for this long [120]")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs) even on success")
    args = ap.parse_args()
    args.duration = args.duration if args.duration is not None else (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1)
    args.queued = args.queued if args.queued is not None else (1000 if args.quick else 10000)
    args.gridiron = os.path.abspath(args.gridiron)
    args.standin = os.path.abspath(args.standin or os.path.join(
        os.path.dirname(args.gridiron), "gridiron-standin-driver"))
    for path, hint in [(args.gridiron, "cargo build --release -p gridiron"),
                       (args.standin, "cargo build --release -p gridiron-standin-driver")]:
        if not os.access(path, os.X_OK):
            print(f"missing {path}; build it with: {hint}", file=sys.stderr)
            return 2
    if subprocess.run([args.gridiron, "hub", "--help"], capture_output=True).returncode != 0:
        print(f"{args.gridiron} has no `hub` command; build it with: "
              "cargo build --release -p gridiron", file=sys.stderr)
        return 2
    if shutil.which("redis-server") is None:
        print("redis-server not found (apt-get install -y redis-server)", file=sys.stderr)
        return 2

    def on_term(*_):
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)
    workdir = tempfile.mkdtemp(prefix="gridiron-sched-")
    home = os.path.join(workdir, "home")
    os.makedirs(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDIRON_", "STANDIN_"))}
    # Only the stand-in is discovered: chromedriver/chromium come first on PATH, and with
    # HOME elsewhere ~/.cargo/bin/geckodriver is not found (so Firefox is never complete).
    env.update(PATH=f"{standin_driver_dir(workdir, args.standin)}:/usr/bin:/bin", HOME=home,
               GRIDIRON_LOG="info", **{MARKER_ENV: workdir})
    procs = Processes(workdir, env)
    report: dict = {}
    ok = False
    code = 1
    try:
        raise_nofile(args.queued + 2000)
        env_info = {
            "cpus": os.cpu_count(),
            "load0": f"{os.getloadavg()[0]:.2f}",
            "version": subprocess.run([args.gridiron, "--version"], capture_output=True,
                                      text=True).stdout.strip(),
            "redis": subprocess.run(["redis-server", "--version"], capture_output=True,
                                    text=True).stdout.split(" v=")[-1].split()[0],
        }
        doctor = subprocess.run([args.gridiron, "doctor"], capture_output=True, text=True, env=env)
        with open(os.path.join(workdir, "doctor.txt"), "w") as f:
            f.write(doctor.stdout + doctor.stderr)
        log(f"temp dir {workdir}; gridiron doctor (nodes' environment):\n"
            + (doctor.stdout + doctor.stderr).rstrip())
        ok = asyncio.run(run(args, procs, workdir, report))
        print_summary(args, report, env_info)
        code = 0 if ok else 1
        print(f"\nresult: {'PASS' if ok else 'FAIL'}", flush=True)
    except BenchError as e:
        log(f"FAILED: {e}")
        with contextlib.suppress(Exception):
            print_summary(args, report, env_info)
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    except Terminated:
        log("terminated")
        code = 143
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        killed = procs.kill_strays()
        if killed:
            log(f"killed {len(killed)} leftover processes: "
                + "; ".join(f"{pid} {cmd}" for pid, cmd in killed[:5]))
        if ok and not args.keep_temp:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir} (process logs: hub*.log, node*.log, redis.log; stand-in logs: standin-*.log)")
            if code == 1:
                for p in procs.procs:
                    if p.name.startswith(("hub", "node")):
                        log(f"--- tail of {p.log_path}\n{tail(p.log_path, 15)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
