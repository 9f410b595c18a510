"""Helpers shared by the benchmark scripts (Python standard library only)."""

from __future__ import annotations

import ctypes
import socket
from typing import Callable


def percentile(sorted_vals: list[float], p: float) -> float:
    """Linear-interpolated percentile of an already sorted list (p in 0..100)."""
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * (p / 100.0)
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
