#!/usr/bin/env python3
"""Time from a session's quit to its artifacts being listed complete.

Starts one standalone grid (local artifact storage in its data dir), then for
each size runs real Chromium sessions: writes one file of that size into the
session's outbox (as a producer would), quits it (`DELETE /session/{id}`), and
times from the quit's answer until `GET /api/v1/sessions/{id}/artifacts`
says `complete` with the file listed, then fetches it whole and times that
too. Prints p50/max per size.

Standard library only. Build first: `cargo build --release -p gridiron`
(or pass `--grid-bin` of a debug build, and say so with its numbers).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from benchlib import free_port, pdeathsig, percentile, tail

DEFAULT_GRID_BIN = os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/gridiron-target")), "release", "gridiron"
)


def call(port: int, method: str, path: str, body: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid-bin", default=DEFAULT_GRID_BIN)
    ap.add_argument("--sizes-mb", default="1,50", help="comma-separated file sizes in MiB")
    ap.add_argument("--runs", type=int, default=5, help="sessions per size")
    args = ap.parse_args()
    data_dir = tempfile.mkdtemp(prefix="gridiron-artifacts-bench-")
    port = free_port()
    log = os.path.join(data_dir, "grid.log")
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [args.grid_bin, "standalone", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", data_dir, "--max-sessions", "1"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=pdeathsig(signal.SIGTERM),
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = call(port, "GET", "/status")
                if status == 200 and json.loads(body)["value"]["ready"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"grid did not become ready:\n{tail(log)}")
            time.sleep(0.1)
        print(f"grid: {args.grid_bin}")
        for size_mb in [int(s) for s in args.sizes_mb.split(",")]:
            payload = os.urandom(1024 * 1024) * size_mb
            ready_ms, fetch_ms = [], []
            for _ in range(args.runs):
                status, body = call(port, "POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome"}}})
                if status != 200:
                    raise SystemExit(f"no session: {status} {body[:300]!r}")
                sid = json.loads(body)["value"]["sessionId"]
                outbox = os.path.join(data_dir, "sessions", sid, "artifacts")
                os.makedirs(outbox, exist_ok=True)
                with open(os.path.join(outbox, "video.mp4"), "wb") as f:
                    f.write(payload)
                call(port, "DELETE", f"/session/{sid}")
                quit_answered = time.monotonic()
                while True:
                    status, body = call(port, "GET", f"/api/v1/sessions/{sid}/artifacts")
                    listed = json.loads(body)
                    if listed["complete"] and listed["artifacts"]:
                        break
                ready_ms.append((time.monotonic() - quit_answered) * 1000)
                t = time.monotonic()
                status, got = call(port, "GET", f"/api/v1/sessions/{sid}/artifacts/video.mp4")
                fetch_ms.append((time.monotonic() - t) * 1000)
                if status != 200 or len(got) != len(payload):
                    raise SystemExit(f"fetch failed: {status}, {len(got)} bytes")
            ready_ms.sort()
            fetch_ms.sort()
            print(
                f"{size_mb:>4} MiB x{args.runs}: quit -> listed complete p50 {percentile(ready_ms, 50):7.1f} ms, "
                f"max {ready_ms[-1]:7.1f} ms; fetch whole p50 {percentile(fetch_ms, 50):7.1f} ms"
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
