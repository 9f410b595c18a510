#!/usr/bin/env python3
"""WebDriver overhead benchmark: direct chromedriver vs. the Gridiron grid.

In a single run this script starts one chromedriver and one Gridiron standalone
node on the local machine and measures, against both targets:

  * new-session latency (sessions created and deleted sequentially),
  * round-trip latency of cheap commands (GET title, POST execute/sync) over a
    persistent HTTP/1.1 keep-alive connection,
  * wall time of N parallel clients (create session, M title commands, delete),
  * the grid process' own RSS (idle and peak).

Direct and grid measurements are interleaved so machine noise hits both
equally. Targets are printed as PASS/MISS for information only; the exit code
is 0 unless something failed (1), or the run was interrupted (130/143).

Only the Python standard library is used. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

from benchlib import (RSS_SAMPLE_INTERVAL_S, BenchError, RssSampler, fmt, fmt_delta, log, percentile,
                      ratio, read_rss_kb, run_script, summarize, version_of,
                      write_json)
from webdriver_targets import (CHROME_ARGS, COMMAND_LABELS, DEFAULT_CHROMEDRIVER, DEFAULT_CHROMIUM,
                               DEFAULT_GRID_BIN, PAGE_URL, Client, CommandSession, DirectTarget,
                               GridTarget, Target, run_parallel, timed_session)

# Informational targets.
TARGET_CMD_OVERHEAD_P50_MS = 0.3
TARGET_SESSION_OVERHEAD_P50_MS = 10.0
TARGET_IDLE_RSS_MB = 20.0


# --------------------------------------------------------------------------
# measurements


def bench_sessions(targets: list[Target], n: int) -> dict:
    log(f"[sessions] warm-up: 1 session per target")
    for t in targets:
        timed_session(t)
    res = {t.name: {"create": [], "delete": []} for t in targets}
    for i in range(n):
        # Alternate which target goes first so neither systematically follows
        # the other's browser teardown.
        order = targets if i % 2 == 0 else list(reversed(targets))
        for t in order:
            c_ms, d_ms, _ = timed_session(t)
            res[t.name]["create"].append(c_ms)
            res[t.name]["delete"].append(d_ms)
        log(f"[sessions] {i + 1}/{n}: " + "  ".join(
            f"{t.name} {res[t.name]['create'][-1]:.1f} ms" for t in targets))
    return res


def bench_commands(targets: list[Target], iterations: int, blocks: int, warmup: int) -> dict:
    sessions = {}
    try:
        for t in targets:
            sessions[t.name] = CommandSession(t)
        commands = ["title", "execute"]
        samples = {t.name: {c: [] for c in commands} for t in targets}
        block_p50 = {t.name: {c: [] for c in commands} for t in targets}
        log(f"[commands] warm-up: {warmup} of each command per target")
        for t in targets:
            for c in commands:
                sessions[t.name].run(c, warmup, [])
        for t in targets:
            sessions[t.name].connects_before = sessions[t.name].client.conn.connects
        per_block = max(1, iterations // blocks)
        gc_was = gc.isenabled()
        gc.disable()
        try:
            for b in range(blocks):
                order = targets if b % 2 == 0 else list(reversed(targets))
                for c in commands:
                    for t in order:
                        blk: list[float] = []
                        sessions[t.name].run(c, per_block, blk)
                        samples[t.name][c].extend(blk)
                        block_p50[t.name][c].append(percentile(sorted(blk), 50))
                log(f"[commands] block {b + 1}/{blocks}: " + "  ".join(
                    f"{t.name} title {block_p50[t.name]['title'][-1]:.3f} / "
                    f"exec {block_p50[t.name]['execute'][-1]:.3f} ms" for t in targets))
        finally:
            if gc_was:
                gc.enable()
        reconnects = {t.name: sessions[t.name].client.conn.connects - sessions[t.name].connects_before
                      for t in targets}
    finally:
        for s in sessions.values():
            with contextlib.suppress(Exception):
                s.close()
    return {"samples": samples, "block_p50": block_p50, "per_block": per_block,
            "reconnects": reconnects}


def bench_parallel(target: Target, clients: int, commands: int) -> dict:
    phase = [dict() for _ in range(clients)]

    def work(i: int, c: Client) -> None:
        caps = target.caps()
        t0 = time.perf_counter()
        sid = c.new_session(caps)
        t1 = time.perf_counter()
        path = f"/session/{sid}/title"
        for _ in range(commands):
            status, data = c.raw("GET", path)
            if status != 200:
                raise BenchError(f"title -> HTTP {status}: {data[:200]!r}")
        t2 = time.perf_counter()
        c.delete_session(sid)
        t3 = time.perf_counter()
        phase[i] = {"create_s": t1 - t0, "commands_s": t2 - t1, "delete_s": t3 - t2}

    wall = run_parallel(target, clients, work, f"{target.name} parallel")
    return {
        "wall_s": wall,
        "max_create_s": max(p["create_s"] for p in phase),
        "max_commands_s": max(p["commands_s"] for p in phase),
        "mean_command_ms": statistics.fmean(p["commands_s"] for p in phase) / commands * 1000,
    }


def bench_parallel_rounds(targets: list[Target], clients: int, commands: int, rounds: int) -> dict:
    res = {t.name: [] for t in targets}
    for r in range(rounds):
        order = targets if r % 2 == 0 else list(reversed(targets))
        for t in order:
            out = bench_parallel(t, clients, commands)
            res[t.name].append(out)
            log(f"[parallel] round {r + 1}/{rounds} {t.name}: wall {out['wall_s']:.3f} s")
    return res


# --------------------------------------------------------------------------

# --------------------------------------------------------------------------
# reporting


def build_report(args, env_info: dict, results: dict) -> tuple[str, dict]:
    lines: list[str] = []
    w = lines.append
    have_grid = "grid" in results["targets"]
    w("")
    w("Gridiron WebDriver overhead benchmark")
    for k, v in env_info.items():
        w(f"  {k:<14} {v}")
    cfg = results["config"]
    w(f"  {'config':<14} sessions={cfg['sessions']}  commands={cfg['iterations']} per target "
      f"({cfg['blocks']} interleaved blocks of {cfg['per_block']}, warm-up {cfg['warmup']})  "
      f"parallel={cfg['parallel_clients']}x{cfg['parallel_commands']} x{cfg['parallel_rounds']} round(s)")
    if cfg.get("grid_extra_args"):
        w(f"  {'grid args':<14} {' '.join(cfg['grid_extra_args'])}")
    w("")
    hdr = f"{'metric':<34}{'direct':>11}{'grid':>11}{'grid-direct':>13}{'grid/direct':>13}"
    w(hdr)
    w("-" * len(hdr))

    summary: dict = {}

    def row(label: str, d: float | None, g: float | None, digits: int = 3, key: str | None = None):
        delta = (g - d) if (g is not None and d is not None) else None
        w(f"{label:<34}{fmt(d, digits):>11}{fmt(g, digits):>11}"
          f"{fmt_delta(delta, digits):>13}{ratio(g, d):>13}")
        if key:
            summary[key] = {"direct": d, "grid": g, "delta": delta,
                            "ratio": (g / d) if (g is not None and d) else None}

    sess = results["sessions"]
    sd = {t: {k: summarize(v) for k, v in sess[t].items()} for t in sess}
    for p in ("p50", "p95"):
        row(f"new session {p} (ms)", sd["direct"]["create"][p],
            sd.get("grid", {}).get("create", {}).get(p), 1, f"new_session_{p}_ms")
    row("delete session p50 (ms)", sd["direct"]["delete"]["p50"],
        sd.get("grid", {}).get("delete", {}).get("p50"), 1, "delete_session_p50_ms")

    cmd = results["commands"]
    cs = {t: {c: summarize(v) for c, v in cmd["samples"][t].items()} for t in cmd["samples"]}
    labels = COMMAND_LABELS
    for c in ("title", "execute"):
        for p in ("p50", "p95", "p99"):
            row(f"{labels[c]} {p} (ms)", cs["direct"][c][p],
                cs.get("grid", {}).get(c, {}).get(p), 3, f"{c}_{p}_ms")

    par = results["parallel"]
    pm = {t: statistics.median(r["wall_s"] for r in par[t]) for t in par}
    pc = {t: statistics.median(r["mean_command_ms"] for r in par[t]) for t in par}
    row(f"{cfg['parallel_clients']} parallel clients wall (s)", pm["direct"], pm.get("grid"), 3,
        "parallel_wall_s")
    row("  mean title under load (ms)", pc["direct"], pc.get("grid"), 3,
        "parallel_mean_title_ms")

    rss = results.get("grid_rss") or {}
    w("")
    if rss:
        w(f"grid RSS (own process, VmRSS)     idle {fmt(rss.get('idle_mb'), 1)} MiB   "
          f"peak {fmt(rss.get('peak_mb'), 1)} MiB (sampled every {int(RSS_SAMPLE_INTERVAL_S * 1000)} ms, "
          f"{rss.get('samples')} samples; VmHWM {fmt(rss.get('hwm_mb'), 1)} MiB)")

    if have_grid:
        w("")
        w("added latency per command (grid minus direct, ms; difference of percentiles):")
        for c in ("title", "execute"):
            d = cs["direct"][c]
            g = cs["grid"][c]
            bp = [gv - dv for gv, dv in zip(cmd["block_p50"]["grid"][c], cmd["block_p50"]["direct"][c])]
            w(f"  {labels[c]:<20} p50 {g['p50'] - d['p50']:+.3f}   p95 {g['p95'] - d['p95']:+.3f}   "
              f"p99 {g['p99'] - d['p99']:+.3f}   (median of per-block p50 deltas {statistics.median(bp):+.3f})")
            summary[f"{c}_block_p50_delta_ms"] = statistics.median(bp)
        rc = cmd["reconnects"]
        if any(rc.values()):
            w(f"  note: connection re-opened during measurement: {rc} (keep-alive not honoured)")

        w("")
        w("targets (informational):")
        ok_cmd = all(cs["grid"][c]["p50"] - cs["direct"][c]["p50"] < TARGET_CMD_OVERHEAD_P50_MS
                     for c in ("title", "execute"))
        w(f"  [{'PASS' if ok_cmd else 'MISS'}] per-command overhead p50 < {TARGET_CMD_OVERHEAD_P50_MS} ms: "
          + ", ".join(f"{c} {cs['grid'][c]['p50'] - cs['direct'][c]['p50']:+.3f} ms"
                      for c in ("title", "execute")))
        s_ov = sd["grid"]["create"]["p50"] - sd["direct"]["create"]["p50"]
        ok_s = s_ov < TARGET_SESSION_OVERHEAD_P50_MS
        w(f"  [{'PASS' if ok_s else 'MISS'}] new-session overhead p50 < {TARGET_SESSION_OVERHEAD_P50_MS:g} ms: "
          f"{s_ov:+.1f} ms")
        idle = rss.get("idle_mb")
        ok_r = idle is not None and idle < TARGET_IDLE_RSS_MB
        w(f"  [{'PASS' if ok_r else 'MISS'}] idle RSS < {TARGET_IDLE_RSS_MB:g} MB: {fmt(idle, 1)} MiB")
        summary["targets"] = {"command_overhead_p50": ok_cmd, "session_overhead_p50": ok_s,
                              "idle_rss": ok_r}
        gs = results.get("grid_shutdown") or {}
        w("")
        w(f"grid shutdown: exit status {gs.get('exit_status')} after SIGTERM "
          f"({fmt(gs.get('stop_s'), 2)} s); leftover processes: {gs.get('leaked') or 'none'}; "
          f"leftover entries in its TMPDIR: {gs.get('leftover_tmp') or 'none'}")
    else:
        w("")
        w("grid not measured (--direct-only); targets not evaluated")

    doc = {
        "environment": env_info,
        "config": cfg,
        "summary": summary,
        "sessions": {t: {k: {"summary": sd[t][k], "samples_ms": sess[t][k]} for k in sess[t]} for t in sess},
        "commands": {t: cs[t] for t in cs},
        "commands_block_p50_ms": cmd["block_p50"],
        "commands_reconnects": cmd["reconnects"],
        "parallel": par,
        "grid_rss": rss,
        "grid_shutdown": results.get("grid_shutdown"),
    }
    return "\n".join(lines), doc


# --------------------------------------------------------------------------
# main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid-bin", default=os.environ.get("GRIDIRON_BIN", DEFAULT_GRID_BIN),
                   help=f"gridiron binary, a release build (env GRIDIRON_BIN; default {DEFAULT_GRID_BIN})")
    p.add_argument("--chromedriver", default=DEFAULT_CHROMEDRIVER, help=f"default {DEFAULT_CHROMEDRIVER}")
    p.add_argument("--chromium", default=DEFAULT_CHROMIUM,
                   help=f"browser binary passed to the direct chromedriver (default {DEFAULT_CHROMIUM})")
    p.add_argument("--sessions", type=int, default=None, help="sequential sessions per target (default 15)")
    p.add_argument("--iterations", type=int, default=None,
                   help="measured round trips per command per target (default 2000)")
    p.add_argument("--blocks", type=int, default=None,
                   help="interleaved direct/grid blocks the iterations are split into (default 10)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up round trips per command (default 200)")
    p.add_argument("--parallel-clients", type=int, default=4, help="(default 4)")
    p.add_argument("--parallel-commands", type=int, default=None,
                   help="title commands per parallel client (default 200)")
    p.add_argument("--parallel-rounds", type=int, default=None,
                   help="parallel rounds per target, median reported (default 3)")
    p.add_argument("--max-sessions", type=int, default=4, help="--max-sessions passed to the grid (default 4)")
    p.add_argument("--grid-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `gridiron standalone` (repeatable), e.g. --grid-arg=--no-prewarm")
    p.add_argument("--quick", action="store_true", help="few iterations; a smoke run")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="also emit machine-readable results: to stdout after the table, or to PATH")
    p.add_argument("--direct-only", action="store_true",
                   help="measure chromedriver only (no grid); for checking the harness")
    p.add_argument("--startup-timeout", type=float, default=60.0,
                   help="seconds to wait for GET /status to report ready (default 60)")
    p.add_argument("--keep-temp", action="store_true",
                   help="keep the temporary directory (process logs, grid data dir) for diagnosis")
    a = p.parse_args(argv)
    quick = a.quick
    defaults = {
        "sessions": 3 if quick else 15,
        "iterations": 200 if quick else 2000,
        "blocks": 4 if quick else 10,
        "warmup": 50 if quick else 200,
        "parallel_commands": 50 if quick else 200,
        "parallel_rounds": 1 if quick else 3,
    }
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    for k in ("sessions", "iterations", "blocks", "parallel_clients", "parallel_commands",
              "parallel_rounds"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be >= 1")
    if a.warmup < 0:
        p.error("--warmup must be >= 0")
    if a.blocks > a.iterations:
        a.blocks = a.iterations
    return a


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    for path, what in ((args.chromedriver, "chromedriver"), (args.chromium, "chromium")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise BenchError(f"{what} not found or not executable: {path}")
    if not args.direct_only and not (os.path.isfile(args.grid_bin) and os.access(args.grid_bin, os.X_OK)):
        raise BenchError(f"gridiron binary not found: {args.grid_bin}\n"
                         f"build it first with `cargo build --release` and/or pass --grid-bin / GRIDIRON_BIN")

    root = tempfile.mkdtemp(prefix="gridiron-bench-")
    if args.keep_temp:
        stack.callback(log, f"kept temporary files (logs, grid data dir) in {root} "
                            f"(grid TMPDIR: {tempfile.gettempdir()}/gb-*)")
    else:
        stack.callback(shutil.rmtree, root, ignore_errors=True)

    env_info = {
        "host": f"{platform.node()} {platform.system()} {platform.release()}",
        "cpus": str(os.cpu_count()),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "chromedriver": f"{args.chromedriver} ({version_of([args.chromedriver, '--version'])})",
        "chromium": args.chromium,
    }
    if not args.direct_only:
        env_info["gridiron"] = f"{args.grid_bin} ({version_of([args.grid_bin, '--version'])})"

    targets: list[Target] = []
    results: dict = {}

    grid: GridTarget | None = None
    sampler: RssSampler | None = None
    if not args.direct_only:
        os.makedirs(os.path.join(root, "grid"))
        grid_tmp = tempfile.mkdtemp(prefix="gb-")
        if len(grid_tmp) > 32:
            log(f"warning: the grid's TMPDIR {grid_tmp} is long; Chromium may fail to start "
                f"(SingletonSocket path limit). Set TMPDIR=/tmp for this script.")
        if not args.keep_temp:
            stack.callback(shutil.rmtree, grid_tmp, ignore_errors=True)
        grid = GridTarget(args.grid_bin, os.path.join(root, "grid"), grid_tmp, args.max_sessions,
                          args.grid_arg)
        stack.callback(grid.stop)
        log("starting gridiron ...")
        grid.start(args.startup_timeout)
        sampler = RssSampler(grid.proc.pid)
        sampler.start()
        stack.callback(sampler.stop)
        log(f"gridiron ready at {grid.base_url} after {grid.ready_s:.2f} s")

    os.makedirs(os.path.join(root, "direct"))
    direct = DirectTarget(args.chromedriver, args.chromium, os.path.join(root, "direct"))
    stack.callback(direct.stop)
    log("starting chromedriver ...")
    direct.start(args.startup_timeout)
    log(f"chromedriver ready at {direct.base_url} after {direct.ready_s:.2f} s")
    targets.append(direct)

    if grid is not None:
        # Idle RSS: the grid has been started but has not seen a session yet.
        t_idle0 = time.monotonic()
        time.sleep(1.0)
        idle_kb = sampler.max_kb(since=t_idle0)
        if idle_kb is None:
            raise BenchError("could not read gridiron RSS from /proc")
        targets.append(grid)
        results["grid_rss_idle_kb"] = idle_kb
        log(f"gridiron idle RSS {idle_kb / 1024:.1f} MiB")

    cfg = {
        "quick": args.quick, "sessions": args.sessions, "iterations": args.iterations,
        "blocks": args.blocks, "warmup": args.warmup, "parallel_clients": args.parallel_clients,
        "parallel_commands": args.parallel_commands, "parallel_rounds": args.parallel_rounds,
        "grid_max_sessions": args.max_sessions, "grid_extra_args": args.grid_arg,
        "page_url": PAGE_URL,
        "direct_capabilities_args": CHROME_ARGS + ["--user-data-dir=<fresh temp dir>"],
    }

    results["sessions"] = bench_sessions(targets, args.sessions)
    results["commands"] = bench_commands(targets, args.iterations, args.blocks, args.warmup)
    cfg["per_block"] = results["commands"]["per_block"]
    cfg["iterations"] = cfg["per_block"] * args.blocks
    results["parallel"] = bench_parallel_rounds(targets, args.parallel_clients,
                                                args.parallel_commands, args.parallel_rounds)
    results["config"] = cfg
    results["targets"] = [t.name for t in targets]

    if grid is not None:
        hwm_kb = read_rss_kb(grid.proc.pid, "VmHWM")
        sampler.stop()
        peak_kb = sampler.max_kb()
        results["grid_rss"] = {
            "idle_mb": results["grid_rss_idle_kb"] / 1024,
            "peak_mb": peak_kb / 1024 if peak_kb else None,
            "hwm_mb": hwm_kb / 1024 if hwm_kb else None,
            "samples": len(sampler.samples),
        }
        grid.stop()
        results["grid_shutdown"] = {"exit_status": grid.exit_status, "stop_s": grid.stop_s,
                                    "leaked": grid.leaked, "leftover_tmp": grid.leftover_tmp}
    direct.stop()

    env_info["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table, doc = build_report(args, env_info, results)
    print(table, flush=True)
    write_json(doc, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
