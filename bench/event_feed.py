#!/usr/bin/env python3
"""How the event feed keeps up: 50 SSE clients follow a grid that starts and
ends sessions as fast as it can.

Starts a Gridiron standalone grid whose browser is the stand-in driver (a
fake chromedriver that answers at once: crates/standin-driver, so the grid,
not browsers, is what is measured), opens `--clients` connections to
`GET /api/v1/events`, and runs `--workers` closed-loop clients that each
create and delete sessions for `--seconds`. Every SSE client records when
each event reached it; the lag of an event is that time minus the event's own
time (`at`, when the grid recorded it happening). Prints sessions/s, events/s
delivered (per client and over all), lag p50/p99/max, and how many clients
were dropped as too slow (none should be).

Standard library only. Build first:
`cargo build --release -p gridiron -p gridiron-standin-driver`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, pdeathsig, percentile, standin_driver_dir, tail

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/gridiron-target"))
NEW_SESSION = json.dumps({"capabilities": {"alwaysMatch": {"browserName": "chrome"}}}).encode()


async def request(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


class Follower:
    """One SSE client: counts events and their lags."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.dropped = False
        self.ready = asyncio.Event()

    async def run(self, port: int, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /api/v1/events?type=session.started,session.ended HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        await writer.drain()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.ready.set()
        # Frames are cut out of raw chunks and only the event's time is read
        # from each: one Python process follows 50 streams, so the clients'
        # parsing must cost far less than the grid's work.
        buf = b""
        try:
            while not stop.is_set():
                try:
                    chunk = await asyncio.wait_for(reader.read(1 << 16), 0.5)
                except asyncio.TimeoutError:
                    continue
                if not chunk:
                    break
                now = time.time() * 1000
                buf += chunk
                *frames, buf = buf.split(b"\n\n")
                for frame in frames:
                    if b"event: dropped" in frame:
                        self.dropped = True
                        return
                    at = frame.find(b'"at":')
                    if at < 0:
                        continue
                    end = frame.find(b",", at)
                    self.lags.append(now - int(frame[at + 5:end]))
        finally:
            writer.close()


async def worker(port: int, stop: asyncio.Event, counts: list[int]) -> None:
    while not stop.is_set():
        status, body = await request(port, "POST", "/session", NEW_SESSION)
        if status != 200:
            await asyncio.sleep(0.01)
            continue
        sid = json.loads(body)["value"]["sessionId"]
        await request(port, "DELETE", f"/session/{sid}")
        counts[0] += 1


async def measure(port: int, clients: int, workers: int, seconds: float) -> None:
    stop = asyncio.Event()
    done_following = asyncio.Event()
    followers = [Follower() for _ in range(clients)]
    tasks = [asyncio.create_task(f.run(port, done_following)) for f in followers]
    await asyncio.gather(*(f.ready.wait() for f in followers))
    counts = [0]
    started = time.monotonic()
    load = [asyncio.create_task(worker(port, stop, counts)) for _ in range(workers)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*load)
    elapsed = time.monotonic() - started
    # Let the last events arrive.
    await asyncio.sleep(2.0)
    done_following.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lags = sorted(lag for f in followers for lag in f.lags)
    per_client = [len(f.lags) for f in followers]
    print(f"sessions started and ended: {counts[0]} in {elapsed:.1f} s ({counts[0] / elapsed:.1f}/s)")
    print(f"events per client: min {min(per_client)} max {max(per_client)} (expected {2 * counts[0]})")
    print(f"events delivered: {len(lags)} ({len(lags) / elapsed:.0f}/s over {clients} clients, {max(per_client) / elapsed:.1f}/s each)")
    print(f"lag ms: p50 {percentile(lags, 50):.1f}  p99 {percentile(lags, 99):.1f}  max {lags[-1] if lags else float('nan'):.1f}")
    print(f"clients dropped as too slow: {sum(f.dropped for f in followers)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(TARGET, "release", "gridiron"))
    ap.add_argument("--standin", default=os.path.join(TARGET, "release", "gridiron-standin-driver"))
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="gridiron-event-bench-")
    bindir = standin_driver_dir(workdir, args.standin)
    port = free_port()
    log_path = os.path.join(workdir, "grid.log")
    env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [args.bin, "standalone", "--host", "127.0.0.1", "--port", str(port), "--data-dir", workdir,
             "--max-sessions", str(args.workers)],
            stdout=log, stderr=log, env=env, preexec_fn=pdeathsig(signal.SIGTERM),
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if asyncio.run(request(port, "GET", "/status"))[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                print(tail(log_path), file=sys.stderr)
                return 1
            time.sleep(0.1)
        asyncio.run(measure(port, args.clients, args.workers, args.seconds))
        db = sqlite3.connect(os.path.join(workdir, "gridiron.db"))
        recorded = dict(db.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind").fetchall())
        db.close()
        print(f"events in the grid's log: {recorded}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
