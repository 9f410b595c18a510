#!/usr/bin/env python3
"""What the web dashboard costs: its pages with 10,000 session records, and
WebDriver commands while three dashboards follow the grid's events.

1. Pages. A Gridiron standalone grid's store is filled with `--records`
   session records (written into its SQLite file between two starts, spread
   over the last day, with names, labels and end reasons), then each page is
   requested `--requests` times on loopback: the sessions list (first page,
   a filtered page, a search, the 20th page by cursor), the overview, and
   the same list from the API itself for comparison. Prints p50/p99 in ms.

2. Commands. One real Chromium session is driven with `GET /title` round
   trips: straight to chromedriver, through the grid with no dashboard, and
   through the grid while three dashboards follow it, as their pages do:
   each keeps the event feed (`/ui/events`) open and reads its live regions
   (the sessions list and the driven session's page) again after every event
   (at most every 250 ms). Rounds alternate between the three so machine
   noise hits them alike. Prints p50/p99 and the ratios to direct.

Standard library only. Build first: `cargo build --release -p gridiron`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import sqlite3
import tempfile
import threading
import time

from benchlib import BenchError, log, percentile, run_script
from webdriver_targets import (DEFAULT_CHROMEDRIVER, DEFAULT_CHROMIUM, DEFAULT_GRID_BIN, CommandSession,
                               DirectTarget, GridTarget)

REASONS = ["quit", "quit", "quit", "quit", "idle_timeout", "deleted_by_api", "driver_crashed", "max_duration"]
LIVE_TYPES = "session.started,session.ended,session.activity,request.queued,request.cancelled"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grid-bin", default=DEFAULT_GRID_BIN)
    p.add_argument("--chromedriver", default=DEFAULT_CHROMEDRIVER)
    p.add_argument("--chromium", default=DEFAULT_CHROMIUM)
    p.add_argument("--records", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=200, help="requests per page")
    p.add_argument("--commands", type=int, default=300, help="commands per round and target")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--dashboards", type=int, default=3)
    return p.parse_args(argv)


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t0) * 1000
    conn.close()
    return r.status, body, ms


def fill_store(db: str, n: int) -> None:
    """Writes `n` ended session records over the last day, newest first in time."""
    now = int(time.time() * 1000)
    rng = random.Random(7)
    rows = []
    for i in range(n):
        created = now - rng.randint(0, 86_400_000)
        started = created + rng.randint(300, 3_000)
        ended = started + rng.randint(1_000, 600_000)
        options = {"name": f"test-{i:05d}", "labels": {"team": rng.choice(["web", "api", "mobile"]), "build": str(i // 100)}}
        rows.append((f"{i:032x}", "ended", rng.choice(["chrome", "chrome", "firefox"]),
                     json.dumps({"capabilities": {"alwaysMatch": {"browserName": "chrome"}}}),
                     json.dumps({"browserName": "chrome"}), json.dumps(options), created, started, ended,
                     rng.choice(REASONS), rng.randint(1, 400)))
    with sqlite3.connect(db) as c:
        c.executemany(
            "INSERT INTO sessions (id, state, browser, requested_caps, granted_caps, grid_options, created_at,"
            " started_at, ended_at, end_reason, command_count) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )


def next_cursor(body: bytes) -> str | None:
    """The address of the page's `rel="next"` link."""
    tag = re.search(r'<a[^>]*rel="next"[^>]*>', body.decode("utf-8", "replace"))
    href = tag and re.search(r'href="([^"]+)"', tag.group(0))
    return href.group(1).replace("&amp;", "&") if href else None


def pages(port: int, requests: int) -> dict[str, list[float]]:
    """Times each page `requests` times, interleaved."""
    deep = "/ui/sessions"
    for _ in range(19):
        status, body, _ = get(port, deep)
        nxt = next_cursor(body)
        if status != 200 or not nxt:
            raise BenchError(f"no next page after {deep}: HTTP {status}")
        deep = nxt
    paths = {
        "sessions list, first page": "/ui/sessions",
        "sessions list, live refresh": "/ui/sessions",
        "sessions list, filtered (browser+state+label)": "/ui/sessions?browser=firefox&state=ended&label=team%3Dweb",
        "sessions list, search (name)": "/ui/sessions?q=test-04242",
        "sessions list, 20th page (cursor)": deep,
        "overview": "/ui/",
        "API GET /api/v1/sessions (same page)": "/api/v1/sessions",
    }
    out = {k: [] for k in paths}
    for _ in range(requests):
        for label, path in paths.items():
            headers = {"X-Gridiron-Fragment": "1"} if "refresh" in label else None
            status, body, ms = get(port, path, headers)
            if status != 200:
                raise BenchError(f"{path}: HTTP {status}: {body[:200]!r}")
            out[label].append(ms)
    return out


class Dashboard(threading.Thread):
    """A dashboard tab: follows the event feed and reads its live regions again after events."""

    def __init__(self, port: int, session_page: str):
        super().__init__(daemon=True)
        self.port = port
        self.paths = ["/ui/sessions", session_page]
        self.stop = threading.Event()
        self.refreshes = 0
        self.events = 0
        self.due = threading.Event()

    def run(self) -> None:
        threading.Thread(target=self.refresher, daemon=True).start()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        conn.request("GET", f"/ui/events?type={LIVE_TYPES}", headers={"Accept": "text/event-stream"})
        resp = conn.getresponse()
        while not self.stop.is_set():
            line = resp.fp.readline()
            if not line:
                break
            if line.startswith(b"event:"):
                self.events += 1
                self.due.set()
        conn.close()

    def refresher(self) -> None:
        while not self.stop.is_set():
            if not self.due.wait(timeout=0.5):
                continue
            self.due.clear()
            for p in self.paths:
                get(self.port, p, {"X-Gridiron-Fragment": "1"})
            self.refreshes += 1
            time.sleep(0.25)


def summary(ms: list[float]) -> str:
    s = sorted(ms)
    return f"p50 {percentile(s, 50):7.3f}  p99 {percentile(s, 99):7.3f}"


def run(args, stack) -> int:
    work = tempfile.mkdtemp(prefix="gridiron-bench-dash-")
    stack.callback(shutil.rmtree, work, True)
    tmp = tempfile.mkdtemp(prefix="gd", dir="/tmp")
    stack.callback(shutil.rmtree, tmp, True)
    grid = GridTarget(args.grid_bin, os.path.join(work, "grid"), tmp, max_sessions=2)
    grid.start(timeout=60)
    grid.stop()
    fill_store(os.path.join(grid.data_dir, "gridiron.db"), args.records)
    grid.start(timeout=60)
    stack.callback(grid.stop)
    port = int(grid.base_url.rsplit(":", 1)[1])
    log(f"grid with {args.records} session records on port {port}")

    print(f"\n## Pages with {args.records} session records ({args.requests} requests each, loopback, ms)\n")
    for label, ms in pages(port, args.requests).items():
        print(f"{label:48s} {summary(ms)}")

    direct = DirectTarget(args.chromedriver, args.chromium, os.path.join(work, "direct"))
    direct.start(timeout=60)
    stack.callback(direct.stop)
    on_direct = CommandSession(direct)
    stack.callback(on_direct.close)
    on_grid = CommandSession(grid)
    stack.callback(on_grid.close)
    times = {"direct": [], "grid": [], f"grid + {args.dashboards} dashboards": []}
    counts = []
    for r in range(args.rounds):
        on_direct.run("title", args.commands, times["direct"])
        on_grid.run("title", args.commands, times["grid"])
        boards = [Dashboard(port, f"/ui/sessions/{on_grid.sid}") for _ in range(args.dashboards)]
        for b in boards:
            b.start()
        time.sleep(0.5)
        on_grid.run("title", args.commands, times[f"grid + {args.dashboards} dashboards"])
        for b in boards:
            b.stop.set()
        counts.append(sum(b.refreshes for b in boards))
        log(f"round {r + 1}/{args.rounds} done")

    print(f"\n## GET /title, {args.rounds} rounds x {args.commands} commands (ms)\n")
    base = percentile(sorted(times["direct"]), 50)
    for label, ms in times.items():
        p50 = percentile(sorted(ms), 50)
        print(f"{label:30s} {summary(ms)}  p50 / direct {p50 / base:5.2f}")
    print(f"\nthe dashboards read their live regions {sum(counts)} times while commands ran")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(parse_args, run))
