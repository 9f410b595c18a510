#!/usr/bin/env python3
"""Memory a warm browser holds: starts a release grid with `--warm chrome=N`,
waits until N warm sessions are ready, and sums the memory of each warm
session's processes (chromedriver and every Chromium process), by PSS
(shared pages split among their sharers, so the figures add up) and by RSS.
The grid process's own RSS is printed for comparison.

    python3 bench/warm_memory.py [--grid-bin PATH] [--warm 2]
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

from benchlib import free_port, pdeathsig, processes_with_env, stop_process, tail

MARK_ENV = "__GRIDIRON_SWEEP_MARK"


def kib(pid: int, field: str) -> int:
    """A `field` (Pss, Rss) of /proc/PID/smaps_rollup, in KiB (0 if gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def status(port: int) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/status")
    value = json.loads(c.getresponse().read())["value"]
    c.close()
    return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid-bin", default=os.environ.get("GRIDIRON_BIN", "/root/.cache/gridiron-target/release/gridiron"))
    ap.add_argument("--warm", type=int, default=2, help="warm Chromium sessions to keep (default 2)")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to let the browsers settle before measuring")
    args = ap.parse_args()

    data_dir = os.path.realpath(tempfile.mkdtemp(prefix="gridiron-warm-mem-"))
    log_path = os.path.join(data_dir, "grid.log")
    port = free_port()
    cmd = [args.grid_bin, "standalone", "--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir,
           "--max-sessions", str(args.warm), "--warm", f"chrome={args.warm}"]
    with open(log_path, "ab") as log:
        grid = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                preexec_fn=pdeathsig(signal.SIGTERM))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if status(port).get("warmSessions", 0) >= args.warm:
                    break
            except (OSError, ValueError):
                pass
            if grid.poll() is not None or time.monotonic() > deadline:
                print("the grid did not get its warm sessions ready\n" + tail(log_path), file=sys.stderr)
                return 1
            time.sleep(0.2)
        time.sleep(args.settle)
        per_session: dict[str, list[int]] = {}
        with_browser: set[str] = set()
        for p in processes_with_env(f"{MARK_ENV}={data_dir}"):
            if p.session:
                per_session.setdefault(p.session, []).append(p.pid)
                if p.is_chromium():
                    with_browser.add(p.session)
        # The spare driver (no browser yet) is not a warm session.
        per_session = {s: pids for s, pids in per_session.items() if s in with_browser}
        print(f"{len(per_session)} warm Chromium sessions (grid {args.grid_bin})")
        pss_all = []
        for sid, pids in sorted(per_session.items()):
            pss = sum(kib(pid, "Pss") for pid in pids) / 1024
            rss = sum(kib(pid, "Rss") for pid in pids) / 1024
            pss_all.append(pss)
            print(f"  {sid[:12]}  {len(pids):2d} processes  PSS {pss:7.1f} MiB  RSS (sum) {rss:7.1f} MiB")
        if pss_all:
            print(f"memory per warm browser (PSS, mean): {sum(pss_all) / len(pss_all):.1f} MiB")
        print(f"grid process RSS: {kib(grid.pid, 'Rss') / 1024:.1f} MiB")
        return 0
    finally:
        stop_process(grid, 30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
