#!/usr/bin/env python3
"""What recording a session costs (`gridiron:options.recordVideo`).

All against one release grid in one run, Chromium sessions on a page whose
background changes every second (tests/python/pages.py, served locally):

1. CPU (share of one core) and memory (PSS) of one recorded and one
   unrecorded session side by side over the same window, per process kind
   (browser + driver, Xvfb, ffmpeg).
2. Per-command round trip (`GET /session/{id}/title`, keep-alive) on an
   unrecorded session with no recording anywhere, and on the same grid while
   a recorded session runs; with `--baseline-bin` (e.g. a build of `main`)
   also on that binary, so "recording off costs nothing" is checked against
   the code before recording existed.
3. Capacity: 1, 2, ... recorded sessions (each on the changing page), and
   the median round trip of commands to the first one; stops when it is
   twice what it was with one recorded session (or at `--max-recorded`).
4. Quit to artifact ready: a recorded session of `--life` seconds is
   deleted, then the artifacts list is polled until `video.mp4` is listed.

    python3 bench/recording.py [--grid-bin PATH] [--baseline-bin PATH] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from benchlib import CLK_TCK, BenchError, log, percentile, processes_with_env, run_script
from webdriver_targets import Client, GridTarget

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from pages import PageServer  # noqa: E402

MARK_ENV = "__GRIDIRON_SWEEP_MARK"
RECORD = {"gridiron:options": {"recordVideo": True, "screenResolution": "1366x768"}}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid-bin", default=os.environ.get("GRIDIRON_BIN", "/root/.cache/gridiron-target/release/gridiron"))
    ap.add_argument("--baseline-bin", help="another grid binary for the recording-off command loop")
    ap.add_argument("--window", type=float, default=20.0, help="seconds of the CPU/memory window (default 20)")
    ap.add_argument("--commands", type=int, default=300, help="timed commands per loop (default 300)")
    ap.add_argument("--max-recorded", type=int, default=6, help="most recorded sessions in the capacity step")
    ap.add_argument("--life", type=float, default=10.0, help="seconds a session lives before the quit-to-ready timing")
    ap.add_argument("--rounds", type=int, default=3, help="quit-to-ready rounds (default 3)")
    ap.add_argument("--quick", action="store_true", help="short windows, fewer commands")
    ap.add_argument("--json", help="also write the results as JSON to this file ('-' prints them)")
    args = ap.parse_args(argv)
    if args.quick:
        args.window, args.commands, args.max_recorded, args.life, args.rounds = 8.0, 100, 3, 4.0, 1
    return args


def ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().decode(errors="replace")
    except OSError:
        return 0
    fields = rest[rest.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def kind(p) -> str:
    return p.comm if p.comm in ("Xvfb", "ffmpeg") else "browser+driver"


def session_usage(data_dir: str, sessions: list[str], window: float) -> dict:
    """CPU share of a core and PSS (MiB) per session and process kind over `window` s."""
    def snapshot():
        return {p.pid: (p.session, kind(p), ticks(p.pid)) for p in processes_with_env(f"{MARK_ENV}={data_dir}")
                if p.session in sessions}
    before = snapshot()
    time.sleep(window)
    after = snapshot()
    out = {s: {} for s in sessions}
    for pid, (sid, k, t) in after.items():
        t0 = before.get(pid, (sid, k, t))[2]
        entry = out[sid].setdefault(k, {"cpu": 0.0, "pss_mib": 0.0})
        entry["cpu"] += (t - t0) / CLK_TCK / window
        entry["pss_mib"] += pss_kib(pid) / 1024
    for sid in sessions:
        out[sid]["total"] = {
            "cpu": sum(v["cpu"] for v in out[sid].values()),
            "pss_mib": sum(v["pss_mib"] for v in out[sid].values()),
        }
    return out


def command_loop(client: Client, sid: str, n: int) -> list[float]:
    # A fresh connection: the grid closes keep-alive connections left idle.
    client.close()
    for _ in range(10):
        client.call("GET", f"/session/{sid}/title")
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.call("GET", f"/session/{sid}/title")
        out.append((time.perf_counter() - t0) * 1e3)
    return sorted(out)


def summary(ms: list[float]) -> dict:
    return {"p50": percentile(ms, 50), "p95": percentile(ms, 95)}


def open_session(grid: GridTarget, client: Client, page: str, recorded: bool) -> str:
    client.close()
    sid = client.new_session(grid.caps(RECORD if recorded else None))
    client.call("POST", f"/session/{sid}/url", {"url": page})
    return sid


def artifacts(base_url: str, sid: str) -> dict:
    host, port = base_url[len("http://"):].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        c.request("GET", f"/api/v1/sessions/{sid}/artifacts")
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def start_grid(binary: str, workdir: str, name: str, slots: int, stack: contextlib.ExitStack) -> GridTarget:
    d = os.path.join(workdir, name)
    os.makedirs(d)
    tmp = tempfile.mkdtemp(prefix="gr-", dir="/tmp")
    stack.callback(shutil.rmtree, tmp, True)
    grid = GridTarget(binary, d, tmp, slots, ["--no-prewarm"])
    grid.start(120)
    stack.callback(grid.stop)
    return grid


def run(args, stack: contextlib.ExitStack) -> int:
    workdir = tempfile.mkdtemp(prefix="gridiron-recording-")
    stack.callback(shutil.rmtree, workdir, True)
    pages = PageServer().start()
    stack.callback(pages.stop)
    page = pages.url("/colours.html")
    results: dict = {"grid_bin": args.grid_bin, "loadavg_before": os.getloadavg()}
    log(f"load average before: {results['loadavg_before']}")

    grid = start_grid(args.grid_bin, workdir, "grid", args.max_recorded + 1, stack)
    client = Client(grid.base_url)

    # 2a. Recording off, nothing recorded anywhere.
    plain = open_session(grid, client, page, recorded=False)
    off = command_loop(client, plain, args.commands)
    results["commands_recording_off"] = summary(off)

    # 1. One recorded and one unrecorded session over the same window.
    rec = open_session(grid, client, page, recorded=True)
    time.sleep(2)
    usage = session_usage(grid.data_dir, [plain, rec], args.window)
    results["unrecorded_session"] = usage[plain]
    results["recorded_session"] = usage[rec]

    # 2b. The unrecorded session while a recorded one runs.
    results["commands_beside_a_recording"] = summary(command_loop(client, plain, args.commands))
    results["commands_on_the_recorded_session"] = summary(command_loop(client, rec, args.commands))
    client.delete_session(plain)

    # 3. Capacity: more recorded sessions until commands to the first slow by 2x.
    probe_n = max(50, args.commands // 3)
    one = statistics.median(command_loop(client, rec, probe_n))
    capacity = [{"recorded": 1, "p50_ms": one}]
    extra = []
    for n in range(2, args.max_recorded + 1):
        extra.append(open_session(grid, client, page, recorded=True))
        time.sleep(2)
        p50 = statistics.median(command_loop(client, rec, probe_n))
        capacity.append({"recorded": n, "p50_ms": p50, "loadavg": os.getloadavg()[0]})
        log(f"{n} recorded sessions: title p50 {p50:.2f} ms ({p50 / one:.2f}x)")
        if p50 >= 2 * one:
            break
    results["capacity"] = capacity
    client.close()
    for sid in extra:
        client.delete_session(sid)
    client.delete_session(rec)

    # 4. Quit to artifact ready.
    ready = []
    for _ in range(args.rounds):
        sid = open_session(grid, client, page, recorded=True)
        time.sleep(args.life)
        client.close()
        t0 = time.monotonic()
        client.delete_session(sid)
        while True:
            listed = artifacts(grid.base_url, sid)
            if any(a["name"] == "video.mp4" for a in listed.get("artifacts", [])):
                break
            if time.monotonic() - t0 > 60:
                raise BenchError(f"video of {sid} not ready 60 s after quit: {listed}")
            time.sleep(0.02)
        ready.append((time.monotonic() - t0) * 1e3)
    results["quit_to_video_ready_ms"] = sorted(ready)
    client.close()

    if args.baseline_bin:
        base = start_grid(args.baseline_bin, workdir, "baseline", 1, stack)
        bc = Client(base.base_url)
        sid = open_session(base, bc, page, recorded=False)
        results["commands_baseline_bin"] = summary(command_loop(bc, sid, args.commands))
        bc.delete_session(sid)
        bc.close()
    results["loadavg_after"] = os.getloadavg()
    report(results)
    if args.json:
        from benchlib import write_json
        write_json(results, args.json)
    return 0


def report(r: dict) -> None:
    print(f"\nload average before {tuple(round(x, 2) for x in r['loadavg_before'])}, "
          f"after {tuple(round(x, 2) for x in r['loadavg_after'])}")
    print("\nper session, same window (CPU: share of one core; memory: PSS MiB)")
    for name in ("unrecorded_session", "recorded_session"):
        parts = ", ".join(f"{k} {v['cpu'] * 100:.1f}% / {v['pss_mib']:.0f} MiB"
                          for k, v in sorted(r[name].items()) if k != "total")
        t = r[name]["total"]
        print(f"  {name:20s} total {t['cpu'] * 100:5.1f}% / {t['pss_mib']:4.0f} MiB   ({parts})")
    print("\nGET title round trip, ms (p50 / p95)")
    for name in ("commands_recording_off", "commands_beside_a_recording", "commands_on_the_recorded_session",
                 "commands_baseline_bin"):
        if name in r:
            print(f"  {name:34s} {r[name]['p50']:6.2f} / {r[name]['p95']:6.2f}")
    print("\nrecorded sessions vs. p50 of commands to the first")
    for c in r["capacity"]:
        print(f"  {c['recorded']:2d} recorded: {c['p50_ms']:6.2f} ms")
    print("\nquit to video.mp4 listed, ms: " + ", ".join(f"{x:.0f}" for x in r["quit_to_video_ready_ms"]))


if __name__ == "__main__":
    sys.exit(run_script(parse_args, run))
