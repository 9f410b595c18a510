"""Helpers shared by the benchmark scripts (Python standard library only).

Free ports, process scans, the stand-in driver's PATH directory and the
redis-server command line come from the test suite's helper module
(tests/python/harness.py, standard library only), so the suite and the
benchmarks start and observe processes the same way.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))

from harness import (  # noqa: E402  (the path above makes it importable)
    STANDIN_VERSION,
    free_port,
    processes_with_env,
    redis_server_argv,
    standin_driver_dir,
)

__all__ = [
    "STANDIN_VERSION",
    "free_port",
    "pdeathsig",
    "percentile",
    "processes_with_env",
    "redis_server_argv",
    "standin_driver_dir",
    "tail",
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
