#!/usr/bin/env python3
"""Session lifecycle benchmark: chromedriver direct vs. Gridiron cold vs. Gridiron warm
(vs. Selenium Grid 4 with --selenium-jar).

One command, one interleaved run. Each round starts a fresh process per target,
measures every target phase by phase (the order of targets rotates), stops
them; the table shows the median over the rounds of each round's value, with
the ratio against direct chromedriver (and the added ms for latencies):
start to ready, idle/peak RSS, new session (cold; warm from a grid with
`--warm chrome=2`, each warm request spaced until the pool has refilled),
quit, create+quit throughput with 1 and 4 clients, per-command round trips,
the grid's CPU per command, CDP and BiDi round trips. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import websocket  # websocket-client, as in tests/python/requirements.txt

from benchlib import (LOGS, BenchError, RssSampler, cpu_seconds, fmt, fmt_delta, log, percentile,
                      ratio, run_script, version_of, wait_quiet, write_json)
from webdriver_targets import (COMMAND_LABELS, COMMANDS, DEFAULT_CHROMEDRIVER, DEFAULT_CHROMIUM,
                               DEFAULT_GRID_BIN, Client, CommandSession, DirectTarget, GridTarget,
                               Target, run_parallel, timed_session)

COLUMNS = ["direct", "cold", "warm", "selenium"]
TITLES = {"direct": "chromedriver direct", "cold": "Gridiron cold", "warm": "Gridiron warm",
          "selenium": "Selenium Grid 4"}
READY_POLL_S = 0.005  # start to ready is a few tens of ms; poll /status finely
SETTLE_TIMEOUT_S = 20.0


class SeleniumTarget(DirectTarget):
    """`java -jar selenium-server-4.x.jar standalone`; the client's request carries the Chrome switches."""

    name = "selenium"

    def __init__(self, jar: str, java: str, chromedriver: str, chromium: str, workdir: str,
                 max_sessions: int):
        super().__init__(chromedriver, chromium, workdir)
        self.jar, self.java, self.max_sessions = jar, java, max_sessions
        self.log_path = os.path.join(workdir, "selenium.log")
        LOGS.append(("selenium", self.log_path))

    def command(self, port: int) -> list[str]:
        # --selenium-manager false: find chromedriver on PATH, never download one.
        return [self.java, "-jar", self.jar, "standalone", "--host", "127.0.0.1", "--port", str(port),
                "--max-sessions", str(self.max_sessions), "--override-max-sessions", "true",
                "--selenium-manager", "false"]

    def env(self) -> dict:
        env = super().env()
        env["PATH"] = os.path.dirname(self.chromedriver) + os.pathsep + env.get("PATH", "")
        return env


def grid_knows_warm(grid_bin: str) -> bool:
    """Whether `gridiron standalone` accepts --warm (an older one exits with a usage error)."""
    out = subprocess.run([grid_bin, "standalone", "--warm", "chrome=2", "--help"],
                         capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    return out.returncode == 0


def server_pid(t: Target) -> int | None:
    """The pid whose RSS and CPU count as the grid's (None for direct chromedriver)."""
    return None if t.name == "direct" else t.proc.pid


def get_json(t: Target, path: str) -> dict | None:
    """GET a grid path; the parsed body, None when it is not a 200 JSON answer."""
    c = Client(t.base_url, timeout=10)
    try:
        status, data = c.raw("GET", path)
        return json.loads(data) if status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        c.close()


def settle(t: Target) -> None:
    """Let a target's background work (warm refill, cleanup after quit) finish off the clock.

    For the warm grid: wait `warm_gap`, then until /status counts a full pool
    (`warmSessions`, when the grid reports it; as many as the free slots allow),
    then until its process tree is quiet.
    """
    want = getattr(t, "warm_want", 0)
    if want:
        time.sleep(t.warm_gap)
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            status = (get_json(t, "/status") or {}).get("value") or {}
            ready = status.get("warmSessions")
            # Warm sessions only use slots no session holds (freeSlots counts theirs as free).
            if ready is None or ready >= min(want, status.get("freeSlots", want)):
                break
            time.sleep(0.05)
        else:
            log(f"warning: {t.name} has not refilled its warm pool after {SETTLE_TIMEOUT_S:g} s")
    if wait_quiet(t.proc.pid, SETTLE_TIMEOUT_S) >= SETTLE_TIMEOUT_S:
        log(f"warning: {t.name} still busy after {SETTLE_TIMEOUT_S:g} s; measuring on")


def started_warm(t: Target, sid: str) -> bool | None:
    """Whether the grid's record says the session was a warm one (None when it does not say)."""
    deadline = time.monotonic() + 5.0  # the record is written off the request path
    while time.monotonic() < deadline:
        doc = get_json(t, f"/api/v1/sessions/{sid}") or {}
        started = [e for e in doc.get("timeline") or [] if e.get("kind") == "session.started"]
        if started:
            return (started[0].get("fields") or {}).get("warm") == "true"
        time.sleep(0.1)
    return None


def rotated(targets: list[Target], i: int) -> list[Target]:
    """The targets in an order that rotates with i, so no target always follows the same one."""
    k = i % len(targets)
    return targets[k:] + targets[:k]


# --------------------------------------------------------------------------
# phases (each returns {target name: {metric: value}} for one round)


def phase_sessions(targets, n) -> dict:
    """Sequential create+quit; warm requests are spaced until the pool has refilled."""
    res = {t.name: {"create": [], "quit": [], "ids": []} for t in targets}
    for i in range(n):
        for t in rotated(targets, i):
            c_ms, q_ms, value = timed_session(t)
            res[t.name]["create"].append(c_ms)
            res[t.name]["quit"].append(q_ms)
            res[t.name]["ids"].append(value["sessionId"])
            settle(t)
        log(f"[sessions] {i + 1}/{n}: " + "  ".join(
            f"{t.name} {res[t.name]['create'][-1]:.0f}/{res[t.name]['quit'][-1]:.0f} ms" for t in targets))
    warm = next((t for t in targets if t.name == "warm"), None)
    marked = [started_warm(warm, sid) for sid in res["warm"]["ids"]] if warm else []
    out = {}
    direct_p50 = statistics.median(res["direct"]["create"])
    for name, r in res.items():
        s = sorted(r["create"])
        m = {"new_p50": percentile(s, 50), "new_p95": percentile(s, 95),
             "quit_p50": statistics.median(r["quit"]), "sessions": len(s)}
        if name == "warm":
            if all(x is not None for x in marked):
                m["warm_taken"] = sum(marked)
                m["warm_source"] = "from the grid's records (session.started warm=true)"
            else:
                # No marker: a warm take skips the browser start, so it is far below direct's.
                limit = 0.25 * direct_p50
                m["warm_taken"] = sum(1 for c in r["create"] if c < limit)
                m["warm_source"] = f"inferred: new session < {limit:.0f} ms"
        out[name] = m
    return out


def run_clients(t: Target, clients: int, per_client: int) -> tuple[float, float]:
    """`clients` threads each create+quit `per_client` sessions back to back.

    Returns (wall seconds from the common start to the last quit, slowest new session in s).
    """
    creates: list[float] = []

    def work(i: int, c: Client) -> None:
        for _ in range(per_client):
            c_ms, _, _ = timed_session(t, c, cleanup=False)
            creates.append(c_ms / 1000)

    wall = run_parallel(t, clients, work, f"{t.name} with {clients} clients")
    return wall, max(creates)


def phase_throughput(targets, one_client_sessions, per_client, clients) -> dict:
    """create+quit sessions/s with 1 client and with `clients` parallel clients."""
    out = {t.name: {} for t in targets}
    for t in rotated(targets, 1):
        wall, _ = run_clients(t, 1, one_client_sessions)
        out[t.name]["tp1"] = one_client_sessions / wall
        settle(t)
    for t in rotated(targets, 2):
        wall, slowest = run_clients(t, clients, per_client)
        out[t.name]["tp4"] = clients * per_client / wall
        out[t.name]["tp4_slowest"] = slowest
        settle(t)
    log("[throughput] " + "  ".join(f"{n} {m['tp1']:.2f}/{m['tp4']:.2f} s/s" for n, m in out.items()))
    return out


def phase_commands(sessions: dict, targets, commands: int, blocks: int, warmup: int) -> dict:
    """Per-command round trips in interleaved blocks, and the grid's CPU time over them."""
    names = list(COMMANDS)
    lat = {t.name: {c: [] for c in names} for t in targets}
    cpu = {t.name: 0.0 for t in targets}
    for t in targets:
        for c in names:
            sessions[t.name].run(c, warmup, [])
    per_block = max(1, commands // blocks)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for b in range(blocks):
            for c in names:
                for t in rotated(targets, b):
                    pid = server_pid(t)
                    before = cpu_seconds(pid) if pid else None
                    sessions[t.name].run(c, per_block, lat[t.name][c])
                    if before is not None:
                        cpu[t.name] += cpu_seconds(pid) - before
    finally:
        if gc_was:
            gc.enable()
    out = {}
    for t in targets:
        m = {}
        for c in names:
            s = sorted(lat[t.name][c])
            for p in (50, 95, 99):
                m[f"{c}_p{p}"] = percentile(s, p)
        if server_pid(t):
            m["cpu_us"] = cpu[t.name] / (per_block * blocks * len(names)) * 1e6
        out[t.name] = m
    log("[commands] " + "  ".join(f"{n} title p50 {m['title_p50']:.3f} ms" for n, m in out.items()))
    return out


def cdp_url(t: Target, caps: dict) -> str:
    """The browser-level CDP websocket: the grid's `se:cdp`, or DevTools' own for direct."""
    if t.name != "direct":
        url = caps.get("se:cdp")
        if not url:
            raise BenchError(f"{t.name}: no se:cdp in the new-session capabilities")
        return url
    addr = (caps.get("goog:chromeOptions") or {}).get("debuggerAddress")
    if not addr:
        raise BenchError("direct: no goog:chromeOptions.debuggerAddress in the capabilities")
    c = Client(f"http://{addr}")
    try:
        status, data = c.raw("GET", "/json/version")
    finally:
        c.close()
    if status != 200:
        raise BenchError(f"direct: GET http://{addr}/json/version -> HTTP {status}")
    return json.loads(data)["webSocketDebuggerUrl"]


class Socket:
    """One websocket with numbered request/response messages (CDP and BiDi share the shape)."""

    def __init__(self, url: str, name: str):
        self.name = name
        try:
            self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        except (OSError, websocket.WebSocketException) as e:
            raise BenchError(f"{name}: cannot open {url}: {type(e).__name__}: {e}") from None
        self.seq = 0

    def call(self, method: str, params: dict) -> dict:
        """Send one command; return its response (events in between are skipped)."""
        self.seq += 1
        self.ws.send(json.dumps({"id": self.seq, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.seq:
                if "error" in msg and msg.get("type") != "success":
                    raise BenchError(f"{self.name} {method}: {msg}")
                return msg

    def timed(self, method: str, params: dict, n: int, out: list[float]) -> None:
        """n round trips of one command, appending latencies (ms) to `out`."""
        pc = time.perf_counter_ns
        for _ in range(n):
            t0 = pc()
            self.call(method, params)
            out.append((pc() - t0) / 1e6)

    def close(self) -> None:
        """Close the websocket."""
        with contextlib.suppress(Exception):
            self.ws.close()


def phase_websockets(targets, cmd_sessions: dict, messages: int, blocks: int, warmup: int) -> dict:
    """CDP (Browser.getVersion) and BiDi (script.evaluate "1") round trips, interleaved."""
    socks: dict[str, dict[str, tuple[Socket, str, dict]]] = {t.name: {} for t in targets}
    bidi_sessions: list[CommandSession] = []
    try:
        for t in targets:
            caps = cmd_sessions[t.name].value.get("capabilities") or {}
            socks[t.name]["cdp"] = (Socket(cdp_url(t, caps), f"{t.name} CDP"), "Browser.getVersion", {})
            bs = CommandSession(t, {"webSocketUrl": True})
            bidi_sessions.append(bs)
            url = (bs.value.get("capabilities") or {}).get("webSocketUrl")
            if not isinstance(url, str):
                raise BenchError(f"{t.name}: no webSocketUrl in the capabilities: {bs.value!r}")
            sock = Socket(url, f"{t.name} BiDi")
            tree = sock.call("browsingContext.getTree", {})
            ctx = tree["result"]["contexts"][0]["context"]
            socks[t.name]["bidi"] = (sock, "script.evaluate",
                                     {"expression": "1", "target": {"context": ctx}, "awaitPromise": False})
        lat = {t.name: {"cdp": [], "bidi": []} for t in targets}
        for t in targets:
            for sock, method, params in socks[t.name].values():
                sock.timed(method, params, warmup, [])
        per_block = max(1, messages // blocks)
        for b in range(blocks):
            for kind in ("cdp", "bidi"):
                for t in rotated(targets, b):
                    sock, method, params = socks[t.name][kind]
                    sock.timed(method, params, per_block, lat[t.name][kind])
    finally:
        for per in socks.values():
            for sock, _, _ in per.values():
                sock.close()
        for bs in bidi_sessions:
            with contextlib.suppress(Exception):
                bs.close()
    out = {n: {f"{k}_p50": statistics.median(v) for k, v in m.items()} for n, m in lat.items()}
    log("[websockets] " + "  ".join(f"{n} cdp {m['cdp_p50']:.3f} bidi {m['bidi_p50']:.3f} ms"
                                    for n, m in out.items()))
    return out


# --------------------------------------------------------------------------
# one round


def make_targets(args, root: str, stack: contextlib.ExitStack) -> list[Target]:
    """Fresh, not yet started targets for one round."""
    os.makedirs(os.path.join(root, "direct"))
    targets: list[Target] = [DirectTarget(args.chromedriver, args.chromium, os.path.join(root, "direct"))]
    grids = [("cold", [])] + ([("warm", ["--warm", args.warm])] if args.has_warm else [])
    for name, extra in grids:
        # Short TMPDIR: Chromium's SingletonSocket path below it must fit in 107 bytes.
        tmp = tempfile.mkdtemp(prefix="gb-", dir="/tmp")
        if not args.keep_temp:
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        os.makedirs(os.path.join(root, name))
        g = GridTarget(args.grid_bin, os.path.join(root, name), tmp, args.max_sessions, extra)
        g.name = name
        if extra:
            g.warm_want = sum(int(x.split("=")[1]) for x in args.warm.split(",") if x.startswith("chrome="))
            g.warm_gap = args.warm_gap
        targets.append(g)
    if args.selenium_jar:
        os.makedirs(os.path.join(root, "selenium"))
        targets.append(SeleniumTarget(args.selenium_jar, args.java, args.chromedriver, args.chromium,
                                      os.path.join(root, "selenium"), args.max_sessions))
    return targets


def one_round(args, r: int, root: str, stack: contextlib.ExitStack) -> dict:
    """Start every target afresh, run every phase interleaved, stop them. {target: {metric: value}}."""
    t_round = time.monotonic()
    targets = make_targets(args, os.path.join(root, f"round{r}"), stack)
    res: dict[str, dict] = {t.name: {} for t in targets}
    samplers: dict[str, RssSampler] = {}
    for t in rotated(targets, r):
        stack.callback(t.stop)
        t.start(args.startup_timeout, READY_POLL_S)
        res[t.name]["start_s"] = t.ready_s
        if server_pid(t):
            samplers[t.name] = RssSampler(t.proc.pid)
            samplers[t.name].start()
            stack.callback(samplers[t.name].stop)
    log(f"[round {r + 1}] ready: " + "  ".join(f"{t.name} {t.ready_s * 1000:.0f} ms" for t in targets))
    # Idle RSS once nothing runs in the background any more (the warm pool is full).
    for t in targets:
        settle(t)
    t_idle = time.monotonic()
    time.sleep(1.0)
    for name, smp in samplers.items():
        res[name]["rss_idle"] = (smp.max_kb(since=t_idle) or 0) / 1024

    phases = [phase_sessions(targets, args.sessions),
              phase_throughput(targets, args.tp_sessions, args.tp_per_client, args.clients)]
    cmd_sessions: dict[str, CommandSession] = {}
    try:
        for t in targets:
            cmd_sessions[t.name] = CommandSession(t)
            settle(t)
        phases.append(phase_commands(cmd_sessions, targets, args.commands, args.blocks, args.warmup))
        phases.append(phase_websockets(targets, cmd_sessions, args.ws_messages, args.blocks,
                                       args.warmup))
    finally:
        for s in cmd_sessions.values():
            with contextlib.suppress(Exception):
                s.close()
    for ph in phases:
        for name, m in ph.items():
            res[name].update(m)
    for name, smp in samplers.items():
        smp.stop()
        res[name]["rss_peak"] = (smp.max_kb() or 0) / 1024
    for t in targets:
        t.stop()
        leaked = getattr(t, "leaked", None)
        if leaked:
            res[t.name]["leaked"] = leaked
    log(f"[round {r + 1}] took {time.monotonic() - t_round:.0f} s")
    return res


# --------------------------------------------------------------------------
# report

# (label, metric, decimals, kind): "ms" rows (times) show the added time and the ratio,
# "rate" rows the ratio, "plain" rows the value only.
ROWS = [
    ("start to ready (ms)", "start_ms", 0, "ms"),
    ("new session p50 (ms)", "new_p50", 0, "ms"),
    ("new session p95 (ms)", "new_p95", 0, "ms"),
    ("quit p50 (ms)", "quit_p50", 0, "ms"),
    ("create+quit 1 client (sessions/s)", "tp1", 2, "rate"),
    ("create+quit 4 clients (sessions/s)", "tp4", 2, "rate"),
    ("4 clients slowest new session (s)", "tp4_slowest", 2, "ms"),
] + [(f"{COMMAND_LABELS[c]} p{p} (ms)", f"{c}_p{p}", 3, "ms")
     for c in COMMANDS for p in (50, 95, 99)] + [
    ("grid CPU per command (us)", "cpu_us", 0, "plain"),
    ("CDP round trip p50 (ms)", "cdp_p50", 3, "ms"),
    ("BiDi round trip p50 (ms)", "bidi_p50", 3, "ms"),
    ("RSS idle (MiB)", "rss_idle", 1, "plain"),
    ("RSS peak (MiB)", "rss_peak", 1, "plain"),
]


def medians(rounds: list[dict]) -> dict:
    """{target: {metric: median over the rounds}}."""
    out: dict[str, dict] = {}
    for res in rounds:
        for name, m in res.items():
            if "start_s" in m:
                m["start_ms"] = m["start_s"] * 1000
            for k, v in m.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out.setdefault(name, {}).setdefault(k, []).append(v)
    return {n: {k: statistics.median(v) for k, v in m.items()} for n, m in out.items()}


def cell(v, d, digits: int, kind: str, is_direct: bool) -> str:
    """A value, and for a non-direct column its added ms and/or its ratio to direct."""
    if v is None:
        return "-"
    text = fmt(v, digits)
    if is_direct or d is None:
        return text
    if kind == "ms":
        return f"{text} ({fmt_delta(v - d, digits)}, {ratio(v, d)})"
    return f"{text} ({ratio(v, d)})" if kind == "rate" else text


def report(args, env_info: dict, rounds: list[dict]) -> str:
    med = medians(rounds)
    cols = [c for c in COLUMNS if c in med or (c == "warm" and not args.has_warm)]
    lines = ["", "Gridiron session lifecycle benchmark"]
    lines += [f"  {k:<12} {v}" for k, v in env_info.items()]
    w0, w = 36, 28
    lines.append("")
    lines.append(f"{'metric':<{w0}}" + "".join(f"{TITLES[c]:>{w}}" for c in cols))
    lines.append("-" * (w0 + w * len(cols)))
    d = med.get("direct", {})
    for label, key, digits, kind in ROWS:
        row = f"{label:<{w0}}"
        for c in cols:
            if c == "warm" and not args.has_warm:
                text = "n/a (grid has no --warm)"
            else:
                text = cell(med.get(c, {}).get(key), d.get(key), digits, kind, c == "direct")
            row += f"{text:>{w}}"
        lines.append(row)
        if key == "new_p95" and args.has_warm:
            taken = [f"{r['warm'].get('warm_taken', 0)}/{r['warm'].get('sessions', 0)}" for r in rounds]
            lines.append(f"{'  warm sessions taken (per round)':<{w0}}"
                         + "".join(f"{(' '.join(taken) if c == 'warm' else ''):>{w}}" for c in cols))
    lines.append("")
    lines.append("Each value is the median over the rounds; in brackets: added ms and ratio to direct "
                 "(for sessions/s higher is better).")
    if args.has_warm:
        src = rounds[-1].get("warm", {}).get("warm_source", "?")
        lines.append(f"Warm: `--warm {args.warm}`; each warm new-session request was sent only once the "
                     f"pool had refilled (at least {args.warm_gap:g} s after the previous take, /status "
                     f"warmSessions back to full, the grid's process tree quiet); warm sessions taken: "
                     f"{src}. The throughput rows do not wait.")
    else:
        lines.append("Warm: n/a (grid has no --warm)")
    lines.append("Grid CPU: utime+stime of the grid's own process (the JVM for Selenium) over the timed "
                 "commands / their number; RSS: that process's VmRSS, not its browsers'.")
    for r, res in enumerate(rounds):
        for name, m in res.items():
            if m.get("leaked"):
                lines.append(f"round {r + 1}: {name} left processes behind after SIGTERM: {m['leaked']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid-bin", default=os.environ.get("GRIDIRON_BIN", DEFAULT_GRID_BIN),
                   help=f"gridiron release binary (env GRIDIRON_BIN; default {DEFAULT_GRID_BIN})")
    p.add_argument("--selenium-jar", default=None, metavar="PATH",
                   help="selenium-server-4.x.jar: adds a Selenium Grid 4 column (see bench/README.md)")
    p.add_argument("--java", default="java", help="java for --selenium-jar (default: java on PATH)")
    p.add_argument("--chromedriver", default=DEFAULT_CHROMEDRIVER, help=f"default {DEFAULT_CHROMEDRIVER}")
    p.add_argument("--chromium", default=DEFAULT_CHROMIUM, help=f"default {DEFAULT_CHROMIUM}")
    p.add_argument("--rounds", type=int, default=None, help="rounds, fresh processes each (default 2)")
    p.add_argument("--sessions", type=int, default=None,
                   help="sequential new sessions per target per round (default 5)")
    p.add_argument("--commands", type=int, default=None,
                   help="timed round trips per command per target per round (default 500)")
    p.add_argument("--warm", default="chrome=2", help="--warm value of the warm grid (default chrome=2)")
    p.add_argument("--warm-gap", type=float, default=0.5,
                   help="seconds after a warm take before waiting for the pool to refill (default 0.5)")
    p.add_argument("--max-sessions", type=int, default=2,
                   help="--max-sessions of both grids (default 2, as in issue 10's table)")
    p.add_argument("--quick", action="store_true", help="1 round, few samples: a smoke run (about 2 min)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="also emit every round's values as JSON: after the table, or to PATH")
    p.add_argument("--startup-timeout", type=float, default=60.0)
    p.add_argument("--keep-temp", action="store_true", help="keep logs and data dirs")
    a = p.parse_args(argv)
    q = a.quick
    for k, full, quick in (("rounds", 2, 1), ("sessions", 5, 3), ("commands", 500, 150)):
        if getattr(a, k) is None:
            setattr(a, k, quick if q else full)
        if getattr(a, k) < 1:
            p.error(f"--{k} must be >= 1")
    a.blocks = 2 if q else 4
    a.warmup = 20 if q else 50
    a.ws_messages = 100 if q else 300
    a.tp_sessions = 2 if q else 3
    a.tp_per_client = 1 if q else 2
    a.clients = 4
    return a


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    for path in (args.chromedriver, args.chromium, args.grid_bin):
        if not os.access(path, os.X_OK):
            raise BenchError(f"not found or not executable: {path}")
    if args.selenium_jar and not os.path.isfile(args.selenium_jar):
        raise BenchError(f"--selenium-jar: no such file: {args.selenium_jar}")
    args.has_warm = grid_knows_warm(args.grid_bin)
    if not args.has_warm:
        log(f"{args.grid_bin} does not know --warm: the warm column is n/a")
    root = tempfile.mkdtemp(prefix="gridiron-lifecycle-")
    if args.keep_temp:
        stack.callback(log, f"kept logs and data dirs in {root}")
    else:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
    env_info = {
        "host": f"{platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at start",
        "gridiron": f"{args.grid_bin} ({version_of([args.grid_bin, '--version'])})",
        "chromedriver": version_of([args.chromedriver, "--version"]),
    }
    if args.selenium_jar:
        env_info["selenium"] = f"{args.selenium_jar} ({version_of([args.java, '-version'])})"
    rounds = []
    for r in range(args.rounds):
        log(f"[round {r + 1}/{args.rounds}]")
        rounds.append(one_round(args, r, root, stack))
    env_info["config"] = (f"{args.rounds} round(s); {args.sessions} new sessions, {args.commands} commands "
                          f"x3, {args.ws_messages} CDP and BiDi messages per target per round; "
                          f"throughput {args.tp_sessions} sessions (1 client), {args.clients}x"
                          f"{args.tp_per_client} (4 clients); grids --max-sessions {args.max_sessions}")
    env_info["load"] = f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at end (1/5/15 min)"
    print(report(args, env_info, rounds), flush=True)
    write_json({"env": env_info, "rounds": rounds, "median": medians(rounds)}, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
