#!/usr/bin/env python3
"""What one proxied WebDriver command costs the grid: CPU and instructions.

Starts a Gridiron standalone grid (real chromedriver + Chromium), opens one
session, warms the path up, then sends N cheap commands (GET title, GET url,
POST execute/sync in turn) over one keep-alive connection and prints:

  * grid CPU per command: utime+stime of the grid process over the N commands / N;
  * grid context switches per command, voluntary (a thread waited) and
    involuntary, summed over the grid's threads;
  * with --callgrind: instructions per command, from valgrind's callgrind tool
    run on the grid with collection switched on only around the N commands
    (instruction counts are stable on a busy machine, unlike times). The
    profile is kept (--out) for `callgrind_annotate`.

Usage:
  python3 bench/proxy_cost.py --grid-bin target/release/gridiron [--commands 2000]
  python3 bench/proxy_cost.py --grid-bin ... --callgrind --commands 300 --out /tmp/cg.out

Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, pdeathsig

CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
PAGE = "data:text/html,<html><head><title>cost</title></head><body>cost</body></html>"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> tuple[float, float]:
    """(utime, stime) of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of all threads of `pid` so far."""
    voluntary = involuntary = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        involuntary += int(line.split()[1])
        except OSError:
            pass  # a thread that ended meanwhile
    return voluntary, involuntary


class Client:
    """One keep-alive HTTP/1.1 connection to the grid."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        out = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: {resp.status} {out[:300]!r}")
        return json.loads(out)


def totals(path: str) -> int:
    """The instruction total of one callgrind dump."""
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"grid exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/status")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("grid not ready")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid-bin", required=True)
    p.add_argument("--commands", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--callgrind", action="store_true", help="run the grid under valgrind --tool=callgrind")
    p.add_argument("--out", default=None, help="callgrind output file (default: in a temp dir, removed)")
    args = p.parse_args()

    root = tempfile.mkdtemp(prefix="gcost")
    port = free_port()
    cmd = [os.path.abspath(args.grid_bin), "standalone", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", os.path.join(root, "data"), "--max-sessions", "1", "--no-prewarm"]
    out = args.out or os.path.join(root, "callgrind.out")
    if args.callgrind:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
               "--dump-instr=no", "--separate-threads=no"] + cmd
    log = open(os.path.join(root, "grid.log"), "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, TMPDIR=root),
                            start_new_session=True, preexec_fn=pdeathsig(signal.SIGTERM))
    try:
        wait_ready(port, proc, 120 if args.callgrind else 20)
        c = Client(port)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                                                 "goog:chromeOptions": {"args": CHROME_ARGS}}}}
        sid = c.call("POST", "/session", caps)["value"]["sessionId"]
        base = f"/session/{sid}"
        c.call("POST", f"{base}/url", {"url": PAGE})
        cmds = [("GET", f"{base}/title", None), ("GET", f"{base}/url", None),
                ("POST", f"{base}/execute/sync", {"script": "return 1", "args": []})]
        for i in range(args.warmup):
            c.call(*cmds[i % 3])
        # vgdb finds the grid's control pipes in the grid's TMPDIR.
        ctl_env = dict(os.environ, TMPDIR=root)
        if args.callgrind:
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True, env=ctl_env)
        cpu0, switches0, t0 = cpu_s(proc.pid), context_switches(proc.pid), time.monotonic()
        for i in range(args.commands):
            c.call(*cmds[i % 3])
        cpu1, switches1, t1 = cpu_s(proc.pid), context_switches(proc.pid), time.monotonic()
        if args.callgrind:
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True, env=ctl_env)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True, env=ctl_env)
            # The same time again without commands: what the grid's background
            # work (pollers, once-a-second reads) costs, to subtract.
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True, env=ctl_env)
            time.sleep(t1 - t0)
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True, env=ctl_env)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True, env=ctl_env)
        c.call("DELETE", base)
        n = args.commands
        print(f"commands: {n}  wall per command: {(t1 - t0) / n * 1e3:.3f} ms")
        user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        print(f"grid CPU per command: {(user + system) / n * 1e6:.1f} us "
              f"(user {user / n * 1e6:.1f}, system {system / n * 1e6:.1f})"
              + (" (under valgrind: not comparable)" if args.callgrind else ""))
        print(f"grid context switches per command: {(switches1[0] - switches0[0]) / n:.2f} voluntary "
              f"(waits), {(switches1[1] - switches0[1]) / n:.2f} involuntary")
        if args.callgrind:
            busy, idle = totals(f"{out}.1"), totals(f"{out}.2")
            print(f"instructions per command: {(busy - idle) / n:,.0f}  (with commands {busy:,}, "
                  f"same time without {idle:,}; profiles: {out}.1 {out}.2)")
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"grid log: {os.path.join(root, 'grid.log')}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
