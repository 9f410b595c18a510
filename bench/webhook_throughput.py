#!/usr/bin/env python3
"""Webhook throughput: deliveries per second from a standalone grid to a
local receiver, and the time from an event to its delivery.

The grid runs with the stand-in driver (no browsers: sessions start in
milliseconds, so events come fast); `--hooks` subscriptions each get every
event, so each session's events make `--hooks` deliveries apiece. The
receiver (Python's threaded http.server in this process) answers 204 and
checks nothing; it may be the bottleneck on a small machine, which the
printed receiver CPU time hints at.

    cargo build --release -p gridiron -p gridiron-standin-driver
    python3 bench/webhook_throughput.py                # 200 sessions x 10 hooks
    python3 bench/webhook_throughput.py --sessions 50 --hooks 2 --quick
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from benchlib import free_port, pdeathsig, percentile, standin_driver_dir, stop_process

HERE = os.path.dirname(os.path.abspath(__file__))


def find(name: str, env: str) -> str:
    explicit = os.environ.get(env)
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/gridiron-target"))
    for profile in ("release", "debug"):
        path = os.path.join(target, profile, name)
        if os.path.isfile(path):
            return path
    sys.exit(f"{name} not built: cargo build --release -p gridiron -p gridiron-standin-driver (or set {env})")


class Receiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.got: list[tuple[float, str, int]] = []  # (received at, event id, event at ms)
        rx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time()
                event = json.loads(body)
                with rx.lock:
                    rx.got.append((now, event["id"], event["at"]))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def call(port: int, method: str, path: str, body: object | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else {}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=200, help="sessions started and ended (default 200)")
    ap.add_argument("--hooks", type=int, default=10, help="subscriptions, each to every event (default 10)")
    ap.add_argument("--parallel", type=int, default=8, help="sessions at once (default 8)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 40 sessions")
    args = ap.parse_args()
    if args.quick:
        args.sessions = min(args.sessions, 40)
    grid_bin = find("gridiron", "GRIDIRON_BIN")
    standin = find("gridiron-standin-driver", "GRIDIRON_STANDIN_BIN")
    work = tempfile.mkdtemp(prefix="gwb-")
    home = os.path.join(work, "home")
    os.makedirs(home)
    port = free_port()
    env = dict(os.environ, PATH=f"{standin_driver_dir(work, standin)}:/usr/bin:/bin", HOME=home, NO_COLOR="1")
    log = open(os.path.join(work, "grid.log"), "wb")
    grid = subprocess.Popen(
        [grid_bin, "standalone", "--host", "127.0.0.1", "--port", str(port), "--data-dir", os.path.join(work, "data"),
         "--max-sessions", str(args.parallel)],
        stdout=log, stderr=log, env=env, start_new_session=True, preexec_fn=pdeathsig(signal.SIGTERM),
    )
    rx = Receiver()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(port, "GET", "/status")["value"]["ready"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or grid.poll() is not None:
                sys.exit("grid did not start; log in " + log.name)
            time.sleep(0.1)
        for _ in range(args.hooks):
            call(port, "POST", "/api/v1/webhooks", {"url": rx.url, "events": ["*"], "secret": "bench-secret-0123456789"})
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome"}}}

        def one(_: int) -> None:
            sid = call(port, "POST", "/session", caps)["value"]["sessionId"]
            call(port, "DELETE", f"/session/{sid}")

        cpu0 = time.process_time()
        grid_cpu0 = cpu_seconds(grid.pid)
        start = time.time()
        with ThreadPoolExecutor(args.parallel) as pool:
            list(pool.map(one, range(args.sessions)))
        made = time.time() - start
        # Every event of these sessions reaches every hook; wait until the count settles.
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 3:
            with rx.lock:
                n = len(rx.got)
            if n != last:
                last, stable_since = n, time.monotonic()
            time.sleep(0.2)
        with rx.lock:
            got = list(rx.got)
        events = len({eid for _, eid, _ in got})
        first = min(t for t, _, _ in got)
        end = max(t for t, _, _ in got)
        lags = sorted((t * 1000 - at) for t, _, at in got)
        print(f"sessions {args.sessions} ({made:.1f} s to start and end), hooks {args.hooks}")
        print(f"events {events}, deliveries {len(got)} (expected {events * args.hooks})")
        print(f"deliveries/s {len(got) / max(end - first, 1e-9):.0f} (first to last delivery, {end - first:.2f} s)")
        print(f"event to delivery ms: p50 {percentile(lags, 50):.1f}  p99 {percentile(lags, 99):.1f}  max {lags[-1]:.1f}")
        print(f"CPU s: grid {cpu_seconds(grid.pid) - grid_cpu0:.2f}, receiver {time.process_time() - cpu0:.2f}")
    finally:
        stop_process(grid, 20)
        rx.server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
