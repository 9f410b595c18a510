#!/usr/bin/env python3
"""What an API key costs per command.

Starts two Gridiron standalone grids side by side from the same binary: one
without keys (open, as before keys existed) and one with an API key (every
request authenticated: credential parsed, token hashed, compared with every
key, stripped before forwarding). Each gets one real Chromium session, and
`GET /session/{id}/title` is timed through both over keep-alive connections,
alternating between them so machine noise hits both alike. Prints p50/p95
of each and the microseconds the key adds.

Standard library only. Build first: `cargo build --release -p gridiron`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, pdeathsig, percentile, tail

DEFAULT_GRID_BIN = os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/gridiron-target")), "release", "gridiron"
)


class Grid:
    """One standalone grid with its own data dir; `token` set if it has a key."""

    def __init__(self, binary: str, with_key: bool):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="gridiron-auth-bench-")
        self.port = free_port()
        self.log = os.path.join(self.dir, "grid.log")
        self.token = None
        if with_key:
            r = subprocess.run([binary, "keys", "create", "bench", "--data-dir", self.dir],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise SystemExit(f"gridiron keys create failed: {r.stderr}")
            self.token = r.stdout.strip()
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(
                [binary, "standalone", "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", self.dir, "--max-sessions", "1", "--no-prewarm"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=pdeathsig(signal.SIGTERM),
            )
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = self.call("GET", "/status")
                if status == 200 and body["value"]["ready"]:
                    break
            except (OSError, http.client.HTTPException, ValueError):
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"grid did not become ready:\n{tail(self.log)}")
            time.sleep(0.1)

    def headers(self) -> dict:
        h = {"Content-Type": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers())
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid-bin", default=DEFAULT_GRID_BIN)
    ap.add_argument("--commands", type=int, default=2000, help="title commands per grid")
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()
    if not os.access(args.grid_bin, os.X_OK):
        print(f"no gridiron binary at {args.grid_bin}; cargo build --release -p gridiron", file=sys.stderr)
        return 1
    grids = []
    try:
        grids = [Grid(args.grid_bin, with_key=False), Grid(args.grid_bin, with_key=True)]
        paths = []
        for g in grids:
            status, body = g.call("POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome"}}})
            if status != 200:
                raise SystemExit(f"new session failed: {status} {body}\n{tail(g.log)}")
            sid = body["value"]["sessionId"]
            g.call("POST", f"/session/{sid}/url", {"url": "data:text/html,<title>auth-bench</title>"})
            paths.append((g, f"/session/{sid}/title", sid))
        samples: list[list[float]] = [[], []]
        for i in range(args.warmup + args.commands):
            # Alternate which grid goes first, so neither always follows the other.
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for k in order:
                g, path, _ = paths[k]
                t0 = time.perf_counter()
                status, _ = g.call("GET", path)
                dt = time.perf_counter() - t0
                if status != 200:
                    raise SystemExit(f"command failed with {status}")
                if i >= args.warmup:
                    samples[k].append(dt * 1e6)
        for g, _, sid in paths:
            g.call("DELETE", f"/session/{sid}")
        open_s, keyed_s = (sorted(s) for s in samples)
        print(f"GET /session/{{id}}/title, {args.commands} commands per grid, keep-alive, interleaved")
        print(f"{'':>12} {'p50 us':>10} {'p95 us':>10}")
        for name, s in (("no key", open_s), ("with key", keyed_s)):
            print(f"{name:>12} {percentile(s, 50):>10.1f} {percentile(s, 95):>10.1f}")
        print(f"{'added':>12} {percentile(keyed_s, 50) - percentile(open_s, 50):>10.1f} "
              f"{percentile(keyed_s, 95) - percentile(open_s, 95):>10.1f}")
        return 0
    finally:
        for g in grids:
            g.stop()


if __name__ == "__main__":
    sys.exit(main())
