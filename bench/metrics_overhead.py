#!/usr/bin/env python3
"""What the metrics (and event) machinery costs per command.

Starts, side by side: one chromedriver (the direct baseline), a Gridiron
standalone grid built from the commit before the machinery ("before") and
one built with it ("after"). Each gets one real Chromium session on the same
`data:` page; `GET /session/{id}/title` is timed on all three over
keep-alive connections, round-robin with the order rotating every
iteration, so machine noise hits them alike. Prints p50/p95 of each, each
grid's overhead over direct chromedriver, and the difference between the
two grids' overheads (after - before), overall and as the median of
per-block p50 differences, which is less sensitive to noise. With
`--scrape`, a thread scrapes the "after" grid's /metrics every second
meanwhile, as Prometheus would.

Standard library only. Build both binaries first, e.g.:

    git worktree add /tmp/gridiron-before e6b224b
    (cd /tmp/gridiron-before && CARGO_TARGET_DIR=~/.cache/gt-before cargo build --release -p gridiron)
    cargo build --release -p gridiron
    python3 bench/metrics_overhead.py --before-bin ~/.cache/gt-before/release/gridiron \\
        --after-bin $CARGO_TARGET_DIR/release/gridiron
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import free_port, pdeathsig, percentile, tail

CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
PAGE = "data:text/html,<title>metrics-bench</title>"


class Target:
    """A WebDriver endpoint with one session and a keep-alive connection."""

    def __init__(self, name: str):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="gb-")
        self.log = os.path.join(self.dir, "out.log")
        self.port = free_port()
        self.proc = None
        self.conn = None
        self.sid = None

    def spawn(self, argv: list[str], env: dict | None = None) -> None:
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=pdeathsig(signal.SIGTERM),
                env=dict(os.environ, TMPDIR=self.dir, **(env or {})),
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                status, body = self.call("GET", "/status")
                if status == 200 and body["value"]["ready"]:
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"{self.name} did not become ready:\n{tail(self.log)}")
            time.sleep(0.1)

    def call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None

    def open_session(self, caps: dict) -> None:
        status, body = self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        if status != 200:
            raise SystemExit(f"{self.name}: new session failed: {status} {body}\n{tail(self.log)}")
        self.sid = body["value"]["sessionId"]
        self.call("POST", f"/session/{self.sid}/url", {"url": PAGE})

    def title(self) -> float:
        """One timed `GET title`, in milliseconds."""
        t0 = time.perf_counter()
        status, _ = self.call("GET", f"/session/{self.sid}/title")
        dt = time.perf_counter() - t0
        if status != 200:
            raise SystemExit(f"{self.name}: command failed with {status}")
        return dt * 1e3

    def stop(self) -> None:
        if self.sid is not None:
            try:
                self.call("DELETE", f"/session/{self.sid}")
            except (OSError, http.client.HTTPException):
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def grid(name: str, binary: str) -> Target:
    t = Target(name)
    t.spawn([binary, "standalone", "--host", "127.0.0.1", "--port", str(t.port), "--data-dir", t.dir,
             "--max-sessions", "1", "--no-prewarm"])
    t.open_session({"browserName": "chrome"})
    return t


def direct(chromedriver: str, chromium: str) -> Target:
    t = Target("direct")
    t.spawn([chromedriver, f"--port={t.port}"])
    t.open_session({"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": CHROME_ARGS}})
    return t


def scraper(port: int, stop: threading.Event) -> None:
    """Scrapes /metrics once a second until told to stop."""
    while not stop.wait(1.0):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/metrics")
            c.getresponse().read()
            c.close()
        except (OSError, http.client.HTTPException):
            pass


def main() -> int:
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/gridiron-target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before-bin", required=True, help="gridiron built without the metrics machinery")
    ap.add_argument("--after-bin", default=os.path.join(target_dir, "release", "gridiron"))
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--commands", type=int, default=3000, help="timed commands per target")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--block", type=int, default=300, help="commands per block for the per-block p50s")
    ap.add_argument("--scrape", action="store_true", help="scrape the after grid's /metrics every second")
    args = ap.parse_args()
    for b in (args.before_bin, args.after_bin):
        if not os.access(b, os.X_OK):
            print(f"no gridiron binary at {b}", file=sys.stderr)
            return 1
    targets: list[Target] = []
    stop = threading.Event()
    try:
        targets = [direct(args.chromedriver, args.chromium), grid("before", args.before_bin),
                   grid("after", args.after_bin)]
        if args.scrape:
            threading.Thread(target=scraper, args=(targets[2].port, stop), daemon=True).start()
        samples: list[list[float]] = [[] for _ in targets]
        n = len(targets)
        for i in range(args.warmup + args.commands):
            # Rotate who goes first, so no target always follows another.
            for k in range(n):
                j = (i + k) % n
                ms = targets[j].title()
                if i >= args.warmup:
                    samples[j].append(ms)
        d, before, after = samples
        print(f"GET /session/{{id}}/title, {args.commands} commands per target, keep-alive, round-robin"
              + (", /metrics scraped every second" if args.scrape else ""))
        print(f"{'':>8} {'p50 ms':>9} {'p95 ms':>9} {'p50 over direct':>16} {'p95 over direct':>16}")
        ds = sorted(d)
        for name, s in (("direct", d), ("before", before), ("after", after)):
            s = sorted(s)
            print(f"{name:>8} {percentile(s, 50):>9.3f} {percentile(s, 95):>9.3f} "
                  f"{percentile(s, 50) - percentile(ds, 50):>16.3f} {percentile(s, 95) - percentile(ds, 95):>16.3f}")
        bs, as_ = sorted(before), sorted(after)
        print(f"after - before: p50 {percentile(as_, 50) - percentile(bs, 50):+.3f} ms, "
              f"p95 {percentile(as_, 95) - percentile(bs, 95):+.3f} ms")
        blocks = []
        for start in range(0, args.commands, args.block):
            b = sorted(before[start:start + args.block])
            a = sorted(after[start:start + args.block])
            if b and a:
                blocks.append(percentile(a, 50) - percentile(b, 50))
        print(f"after - before, median of {len(blocks)} per-block p50 differences: "
              f"{statistics.median(blocks):+.3f} ms")
        return 0
    finally:
        stop.set()
        for t in targets:
            t.stop()


if __name__ == "__main__":
    sys.exit(main())
