#!/usr/bin/env python3
"""What the DevTools observer and the live view cost.

0. Session start: POST /session answered with the observer off and on (it
   attaches to the first page before the answer), interleaved.
1. Per-command latency with the observer off (`consoleLog: false`), on (the
   default: console log) and on with `recordNetwork: true` (console + HAR),
   one session each on one grid, measured in the same run: rounds of
   commands, each round sending the same commands to the three sessions in a
   shuffled order. The commands log to the console and navigate (so the
   observer has events to take): execute/sync `console.log(...)`, GET title,
   and every 10th a navigation to a page that logs and loads an image.
2. CPU of a live view: the grid's CPU and the session's processes' CPU (every
   process carrying the session's marker) over a window with nobody watching,
   then a window with one watcher reading `GET /api/v1/sessions/{id}/live`,
   for a still page and for a page that repaints every 100 ms.

Usage:
  python3 bench/devtools_cost.py --grid-bin $CARGO_TARGET_DIR/release/gridiron [--rounds 200] [--window 10]

Only the Python standard library (and the test suite's harness) is used.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_seconds, percentile  # noqa: E402
from proxy_cost import Client  # noqa: E402

from harness import Grid, processes_with_env  # noqa: E402

STILL = "data:text/html,<body style='background:%2300c000'><script>console.log('still')</script>"
MOVING = ("data:text/html,<body><script>let i=0;setInterval(()=>{document.body.style.background="
          "(i++%2)?'%23c00000':'%230000c0'},100)</script>")
LOGGING = ("data:text/html,<title>t</title><script>for(let i=0;i<5;i++)console.log('line',i)</script>"
           "<img src='data:image/gif;base64,R0lGODlhAQABAAAAACw='>")


def caps(options: dict) -> dict:
    return {"capabilities": {"alwaysMatch": {"browserName": "chrome", "gridiron:options": options}}}


def commands(base: str, i: int) -> tuple[str, str, dict | None]:
    if i % 10 == 0:
        return "POST", f"{base}/url", {"url": LOGGING}
    if i % 2:
        return "POST", f"{base}/execute/sync", {"script": "console.log('bench', arguments[0]); return 1",
                                                  "args": [i]}
    return "GET", f"{base}/title", None


def overhead(port: int, rounds: int, per_round: int) -> dict:
    modes = {"off": {"consoleLog": False}, "console": {}, "console+har": {"recordNetwork": True}}
    clients, bases, times = {}, {}, {m: [] for m in modes}
    for m, opts in modes.items():
        c = Client(port)
        sid = c.call("POST", "/session", caps(opts))["value"]["sessionId"]
        clients[m], bases[m] = c, f"/session/{sid}"
    try:
        order = list(modes)
        for r in range(rounds + 5):
            random.shuffle(order)
            for m in order:
                for i in range(per_round):
                    method, path, body = commands(bases[m], r * per_round + i)
                    t0 = time.perf_counter()
                    clients[m].call(method, path, body)
                    if r >= 5:  # the first rounds warm up
                        times[m].append((time.perf_counter() - t0) * 1000)
    finally:
        for m in modes:
            try:
                clients[m].call("DELETE", bases[m])
            except Exception:  # noqa: BLE001 - the grid ends it anyway
                pass
    out = {}
    for m, t in times.items():
        s = sorted(t)
        out[m] = {"n": len(s), "median_ms": statistics.median(s), "p90_ms": percentile(s, 90),
                  "mean_ms": statistics.fmean(s)}
    return out


def start_latency(port: int, n: int) -> dict:
    """Seconds from POST /session to its answer, observer off and on, interleaved."""
    modes = {"off": {"consoleLog": False}, "console": {}}
    times = {m: [] for m in modes}
    for _ in range(n):
        for m, opts in modes.items():
            c = Client(port)
            t0 = time.perf_counter()
            sid = c.call("POST", "/session", caps(opts))["value"]["sessionId"]
            times[m].append((time.perf_counter() - t0) * 1000)
            c.call("DELETE", f"/session/{sid}")
    return {m: {"n": len(t), "median_ms": statistics.median(t)} for m, t in times.items()}


def session_cpu(sid: str) -> float:
    total = 0.0
    for p in processes_with_env(f"__GRIDIRON_SWEEP_SESSION={sid}"):
        total += cpu_seconds(p.pid) or 0.0
    return total


def live_cpu(grid: Grid, window: float) -> dict:
    # A connection per call: the grid closes keep-alive connections left idle.
    def call(method: str, path: str, body: dict | None = None) -> dict:
        return Client(grid.port).call(method, path, body)

    sid = call("POST", "/session", caps({}))["value"]["sessionId"]
    base = f"/session/{sid}"
    out = {}
    try:
        for name, page in (("still", STILL), ("moving", MOVING)):
            call("POST", f"{base}/url", {"url": page})
            time.sleep(1)
            for watched in (False, True):
                stop = threading.Event()
                frames = [0]

                def watch():
                    conn = http.client.HTTPConnection("127.0.0.1", grid.port, timeout=30)
                    conn.request("GET", f"/api/v1/sessions/{sid}/live")
                    resp = conn.getresponse()
                    while not stop.is_set():
                        line = resp.readline()
                        if line.startswith(b"--"):
                            frames[0] += 1
                        if not line:
                            break
                    conn.close()

                t = threading.Thread(target=watch) if watched else None
                if t:
                    t.start()
                    time.sleep(1)  # the capture is up
                frames[0] = 0
                g0, s0, w0 = cpu_seconds(grid.proc.pid), session_cpu(sid), time.monotonic()
                time.sleep(window)
                g1, s1, w1 = cpu_seconds(grid.proc.pid), session_cpu(sid), time.monotonic()
                n = frames[0]
                stop.set()
                if t:
                    t.join(timeout=30)
                wall = w1 - w0
                out[f"{name}, {'watched' if watched else 'not watched'}"] = {
                    "grid_cpu_pct": 100 * (g1 - g0) / wall,
                    "browser_cpu_pct": 100 * (s1 - s0) / wall,
                    "frames_per_s": n / wall if watched else None,
                }
                time.sleep(1)
    finally:
        call("DELETE", base)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid-bin", required=True)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--per-round", type=int, default=10)
    p.add_argument("--starts", type=int, default=10, help="sessions started per mode")
    p.add_argument("--window", type=float, default=10.0, help="seconds per live-view CPU window")
    args = p.parse_args()
    grid = Grid(os.path.abspath(args.grid_bin), max_sessions=3, queue_timeout=60).start()
    try:
        result = {"start": start_latency(grid.port, args.starts),
                  "commands": overhead(grid.port, args.rounds, args.per_round),
                  "live_view": live_cpu(grid, args.window)}
    finally:
        grid.terminate()
    print("session start (POST /session answered), interleaved:")
    for m, r in result["start"].items():
        print(f"  {m:12s} n={r['n']:3d} median {r['median_ms']:.1f} ms")
    print("per-command latency (same run, interleaved):")
    for m, r in result["commands"].items():
        print(f"  {m:12s} n={r['n']:5d} median {r['median_ms']:.3f} ms  p90 {r['p90_ms']:.3f} ms"
              f"  mean {r['mean_ms']:.3f} ms")
    print(f"live view CPU ({args.window:.0f} s windows; % of one core):")
    for k, r in result["live_view"].items():
        fps = "" if r["frames_per_s"] is None else f"  {r['frames_per_s']:.1f} frames/s"
        print(f"  {k:22s} grid {r['grid_cpu_pct']:5.1f}%  browser {r['browser_cpu_pct']:5.1f}%{fps}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
