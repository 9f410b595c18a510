"""Helpers shared by the benchmark scripts (Python standard library only).

Free ports, process scans, the stand-in driver's PATH directory and the
redis-server command line come from the test suite's helper module
(tests/python/harness.py, standard library only), so the suite and the
benchmarks start and observe processes the same way.

Also here: /proc readings (RSS, CPU time, process trees), summaries and
number formatting, and the run/cleanup frame of a benchmark's `main`. The
W3C WebDriver pieces (client, targets, timed loops) are in webdriver_targets.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))

from harness import (  # noqa: E402  (the path above makes it importable)
    STANDIN_VERSION,
    free_port,
    processes_with_env,
    redis_server_argv,
    standin_driver_dir,
)

# Re-exported from harness for the scripts that import them from here.
__all__ = [
    "STANDIN_VERSION",
    "free_port",
    "processes_with_env",
    "redis_server_argv",
    "standin_driver_dir",
    "stop_process",
]


def percentile(sorted_vals: list[float], p: float) -> float:
    """Linear-interpolated percentile of an already sorted list (p in 0..100)."""
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * (p / 100.0)
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def pdeathsig(sig: int) -> Callable[[], None] | None:
    """preexec_fn: deliver `sig` to the child if this script dies abruptly."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def fn() -> None:
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)

    return fn


def tail(path: str, lines: int = 40) -> str:
    """The last `lines` lines of a log file."""
    try:
        with open(path, "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


# --------------------------------------------------------------------------
# runs, statistics, processes

RSS_SAMPLE_INTERVAL_S = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Logs of the processes started by this run, shown (tail) when the run fails.
LOGS: list[tuple[str, str]] = []


class BenchError(Exception):
    """The run failed (a process misbehaved or answered unexpectedly)."""


class Terminated(BaseException):
    """Raised from the SIGTERM handler so that cleanup code runs."""


def log(msg: str) -> None:
    """Progress goes to stderr, so stdout carries only the report."""
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# statistics helpers

def summarize(samples_ms: list[float]) -> dict:
    """n, min, mean, p50, p95, p99 and max of a list of samples."""
    s = sorted(samples_ms)
    return {
        "n": len(s),
        "min": s[0] if s else float("nan"),
        "mean": statistics.fmean(s) if s else float("nan"),
        "p50": percentile(s, 50),
        "p95": percentile(s, 95),
        "p99": percentile(s, 99),
        "max": s[-1] if s else float("nan"),
    }


# --------------------------------------------------------------------------
# process helpers

def proc_stat(pid: int) -> dict | None:
    """State, parent, process group, session, start time, name and CPU ticks of a process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return {
        "state": rest[0],
        "ppid": int(rest[1]),
        "pgrp": int(rest[2]),
        "sid": int(rest[3]),
        "start": int(rest[19]),
        "cpu_ticks": int(rest[11]) + int(rest[12]),  # utime + stime
        "comm": data[data.find("(") + 1:data.rfind(")")],
    }


def all_procs() -> dict[int, dict]:
    """proc_stat of every process on the machine."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def descendants(root: int) -> dict[int, dict]:
    """proc_stat of every child, grandchild, ... of `root`."""
    procs = all_procs()
    children: dict[int, list[int]] = {}
    for pid, st in procs.items():
        children.setdefault(st["ppid"], []).append(pid)
    out, stack = {}, [root]
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in out:
                out[c] = procs[c]
                stack.append(c)
    return out


def still_alive(pid: int, start: int) -> bool:
    """Whether the process seen with this start time still runs (not reused, not a zombie)."""
    st = proc_stat(pid)
    return st is not None and st["start"] == start and st["state"] != "Z"


def stop_process(proc: "subprocess.Popen", timeout: float) -> None:
    """SIGTERM `proc` and wait up to `timeout` s for it to exit; SIGKILL it after."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def kill_quietly(pid: int, sig: int) -> None:
    """Signal a process that may be gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def killpg_quietly(pgid: int, sig: int) -> None:
    """Signal a process group that may be gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def read_rss_kb(pid: int, field: str = "VmRSS") -> int | None:
    """A kB field of /proc/PID/status (VmRSS by default), None when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (all its threads, not its children), in seconds."""
    st = proc_stat(pid)
    return st["cpu_ticks"] / CLK_TCK if st is not None else None


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants, in seconds."""
    own = proc_stat(pid)
    total = own["cpu_ticks"] if own is not None else 0
    return (total + sum(st["cpu_ticks"] for st in descendants(pid).values())) / CLK_TCK


def wait_quiet(pid: int, timeout: float, window: float = 0.4, max_share: float = 0.05) -> float:
    """Wait until a process tree uses less than `max_share` of a core over `window`.

    Used to let a grid finish background work (refilling warm browsers) before
    the next measurement, so that work is not charged to another target.
    Returns the seconds waited; gives up silently after `timeout`.
    """
    t0 = time.monotonic()
    last = tree_cpu_seconds(pid)
    while time.monotonic() - t0 < timeout:
        time.sleep(window)
        now = tree_cpu_seconds(pid)
        if now - last < window * max_share:
            break
        last = now
    return time.monotonic() - t0


# --------------------------------------------------------------------------
# RSS sampler


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every `interval` seconds until stopped or the process exits."""

    def __init__(self, pid: int, interval: float = RSS_SAMPLE_INTERVAL_S):
        super().__init__(daemon=True, name="rss-sampler")
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            kb = read_rss_kb(self.pid)
            if kb is None:
                return
            self.samples.append((time.monotonic(), kb))
            self._stop_evt.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop_evt.set()
        self.join(timeout=2)

    def max_kb(self, since: float = 0.0, until: float = float("inf")) -> int | None:
        """The highest sample taken between `since` and `until` (monotonic seconds)."""
        vals = [kb for t, kb in self.samples if since <= t <= until]
        return max(vals) if vals else None


# --------------------------------------------------------------------------
# reporting


def fmt(v: float | None, digits: int = 3) -> str:
    """A number with `digits` decimals, '-' when missing."""
    if v is None or v != v:
        return "-"
    return f"{v:.{digits}f}"


def fmt_delta(v: float | None, digits: int = 3) -> str:
    """A signed difference with `digits` decimals, '-' when missing."""
    if v is None or v != v:
        return "-"
    return f"{v:+.{digits}f}"


def ratio(g: float | None, d: float | None) -> str:
    """g / d as '1.23x' (below 0.1 as '1/NNx'), '-' when either is missing or either is 0."""
    if g is None or d is None or d == 0 or g == 0 or g != g or d != d:
        return "-"
    r = g / d
    return f"1/{1 / r:.0f}x" if r < 0.1 else f"{r:.2f}x"


def version_of(cmd: list[str]) -> str:
    """The first line a `--version` command prints, '?' when it fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=10, text=True,
                             stdin=subprocess.DEVNULL)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text and out.returncode == 0 else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def write_json(doc: object, dest: str | None) -> None:
    """Results as JSON: printed after the table when `dest` is '-', else written to the file `dest`."""
    if dest == "-":
        print("\n--- json ---")
        print(json.dumps(doc, indent=2, sort_keys=True), flush=True)
    elif dest:
        with open(dest, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
        log(f"json written to {dest}")


def run_script(parse_args: Callable, run: Callable, argv: list[str] | None = None) -> int:
    """A benchmark's `main`: parse the command line, then run(args, stack) under run_main."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_main(lambda stack: run(args, stack))


def run_main(run: Callable[[contextlib.ExitStack], int]) -> int:
    """Run a benchmark with cleanup that survives errors, Ctrl-C and SIGTERM.

    `run` registers its cleanup on the stack it is given. Exit status: its own,
    1 on BenchError (after the tails of the logs in LOGS), 130 on Ctrl-C,
    143 on SIGTERM.
    """
    def on_term(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)
    stack = contextlib.ExitStack()
    code = 1
    try:
        code = run(stack)
    except (BenchError, KeyboardInterrupt, Terminated) as e:
        if isinstance(e, BenchError):
            log(f"error: {e}")
            for name, path in LOGS:
                if os.path.exists(path):
                    log(f"--- last lines of the {name} log ({path}) ---\n{tail(path, 25)}")
        else:
            code = 130 if isinstance(e, KeyboardInterrupt) else 143
            log("interrupted" if code == 130 else "terminated")
    finally:
        # Cleanup must not be cut short by a second Ctrl-C / SIGTERM.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.close()
    return code
