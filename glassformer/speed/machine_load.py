"""How much of the machine other processes used while this one measured something (Linux `/proc`).

A kernel measured while other work runs on the same cores is judged on a machine that is not the
one it will run on: on a 2-core machine running the test suite, bf16 products, which do more
arithmetic per byte than fp32 ones, measured slower than fp32 for half of gpt2-small's shapes, and
that choice was remembered. `others_share` tells the measurement's caller how busy the machine was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

MIN_WINDOW_S = 0.05
"""Shorter work is not judged: /proc counts CPU time in ticks of (usually) 10 ms."""


def cpu_ticks() -> tuple[int, int] | None:
    """(ticks all CPUs spent busy, ticks this process used) from /proc; None where there is no /proc."""
    try:
        machine = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()
        own = Path("/proc/self/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        user, nice, system, _idle, _iowait, irq, softirq = map(int, machine[1:8])
        return user + nice + system + irq + softirq, int(own[11]) + int(own[12])  # this process: utime + stime
    except (OSError, ValueError, IndexError):
        return None


def others_share(work: Callable[[], T]) -> tuple[T, float | None]:
    """work()'s result, and the share of all CPUs' time that other processes used while it ran (0: none,
    1: every CPU all the time; time stolen by a hypervisor not counted); None where it cannot be told
    (no /proc, or work shorter than MIN_WINDOW_S)."""
    before, start = cpu_ticks(), time.perf_counter()
    result = work()
    after, wall = cpu_ticks(), time.perf_counter() - start
    if before is None or after is None or wall < MIN_WINDOW_S:
        return result, None
    others = (after[0] - before[0]) - (after[1] - before[1])
    capacity = wall * (os.cpu_count() or 1) * os.sysconf("SC_CLK_TCK")
    return result, min(1.0, max(0.0, others / capacity))
