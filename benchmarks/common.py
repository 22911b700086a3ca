"""What every comparison shares: allocator settings, timing, result lines, optional peers.

Timing: both sides of a comparison run in one process, interleaved rep by rep (A B, B A, A B,
...) so that a slow spell on a shared machine hits both alike; warm-up calls are not timed;
the figure is the median of the timed reps. The ratio is peer time / our time, so > 1 means
glassformer is faster.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

# glibc maps and unmaps large activation buffers on every step unless told to keep them
# (see /work/shared/perf-notes.md): each side of every comparison runs under these settings.
ALLOCATOR_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(4 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(4 << 30),
    "MALLOC_TOP_PAD_": str(1 << 30),
}


def ensure_allocator_env(argv: list[str]) -> bool:
    """Re-exec this script with ALLOCATOR_ENV set (glibc reads it only at start-up).

    Returns:
        True when the settings were already in place (after the re-exec, or set by the caller).
    """
    if all(os.environ.get(k) == v for k, v in ALLOCATOR_ENV.items()):
        return True
    if os.environ.get("GLASSFORMER_BENCH_NO_REEXEC"):
        return False
    os.environ.update(ALLOCATOR_ENV)
    os.execv(sys.executable, [sys.executable, *argv])
    return True  # not reached


def allocator_note() -> str:
    shown = " ".join(f"{k}={os.environ.get(k, 'unset')}" for k in ALLOCATOR_ENV)
    return f"allocator (both sides, set before start-up): {shown}"


def have(module: str) -> bool:
    """Whether an optional peer library is installed (without importing it)."""
    return importlib.util.find_spec(module) is not None


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@dataclass
class Timing:
    """Seconds per call of each side, one entry per timed rep."""

    seconds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, side: str) -> float:
        return statistics.median(self.seconds[side])

    def spread(self, side: str) -> float:
        """(max - min) / median of one side's reps: how noisy the machine was."""
        values = self.seconds[side]
        return (max(values) - min(values)) / statistics.median(values)

    def noise(self) -> str:
        """The widest spread of the sides, and the median of the reps' own ratios, for the printed line."""
        text = f"reps spread {max(self.spread(side) for side in self.seconds):.0%}"
        if "ours" in self.seconds and "peer" in self.seconds:
            text += f", median of per-rep ratios {self.paired_ratio('peer', 'ours'):.2f}x"
        return text

    def paired_ratio(self, numerator: str, denominator: str) -> float:
        """Median over reps of numerator time / denominator time, each pair timed next to each other:
        steadier than the ratio of medians when the machine's speed drifts during the run."""
        return statistics.median(a / b for a, b in zip(self.seconds[numerator], self.seconds[denominator]))


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def use_clock(name: str) -> None:
    """"wall" (default) or "cpu": this process's CPU time, which a busy machine disturbs less
    (a thread waiting for a core is not counted) but which only equals the wall time with one thread."""
    global clock
    clock = CLOCKS[name]


def time_sides(
    sides: dict[str, Callable[[], object]], reps: int, warmup: int = 1, device: str = "cpu"
) -> Timing:
    """Call each side warmup times untimed, then reps times timed, interleaved and alternating order.

    Args:
        sides: name -> zero-argument callable doing one unit of work (one training step, one
            whole generation...).
    """
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            sides[name]()
            sync(device)
    timing = Timing({name: [] for name in names})
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            sync(device)
            start = clock()
            sides[name]()
            sync(device)
            timing.seconds[name].append(clock() - start)
    return timing


@dataclass
class Line:
    """One printed comparison: our figure, the peer's, and the ratio (> 1: glassformer faster)."""

    name: str
    ours_s: float | None
    peer_s: float | None
    peer: str
    flops: float | None = None
    """Floating-point operations of one timed call, for the fraction of the matmul peak."""
    unit: str = "s"
    work: float | None = None
    """Items per call (tokens) for a throughput column, e.g. tokens/s."""
    note: str = ""
    ratio_label: str = "glassformer/peer"
    plain_s: float | None = None
    """The plain model's time, where ours_s is the model after `optimize_for_inference`."""

    @property
    def ratio(self) -> float | None:
        if self.ours_s is None or self.peer_s is None:
            return None
        return self.peer_s / self.ours_s

    @property
    def plain_ratio(self) -> float | None:
        if self.plain_s is None or self.peer_s is None:
            return None
        return self.peer_s / self.plain_s

    def peak_fraction(self, seconds: float | None, peak_flops: float) -> float | None:
        if self.flops is None or seconds is None or not peak_flops:
            return None
        return self.flops / seconds / peak_flops

    def render(self, peak_flops: float) -> str:
        parts = [f"{self.name}:"]
        ours_label = "glassformer" if self.plain_s is None else "glassformer optimized"
        sides = ((ours_label, self.ours_s), ("glassformer plain", self.plain_s), (self.peer, self.peer_s))
        for label, seconds in sides:
            if seconds is None:
                continue
            text = f"{label} {_seconds(seconds)}"
            if self.work:
                text += f" ({self.work / seconds:,.0f} {self.unit}/s)"
            fraction = self.peak_fraction(seconds, peak_flops)
            if fraction is not None:
                text += f" [{fraction:.0%} of peak]"
            parts.append(text)
        if self.note:
            parts.append(f"({self.note})")
        ratio = self.ratio
        ending = f"{self.ratio_label} = {ratio:.2f}x" if ratio is not None else "ratio n/a"
        if self.plain_ratio is not None:
            ending += f" (plain model: {self.plain_ratio:.2f}x)"
        parts.append(ending)
        return " ".join(parts[:1]) + " " + ", ".join(parts[1:-1]) + "; " + parts[-1]


def markdown_table(lines: list[Line], memory: list[tuple[str, str, float, float]], peak_flops: float) -> str:
    """The run's results as a markdown table (ratio: peer / glassformer, > 1 means glassformer is better)."""
    rows = ["| comparison | glassformer | peer | ratio | % of peak (ours / peer) |", "|---|---|---|---|---|"]
    # Where a line has a plain-model figure, "glassformer" is the optimized model and the plain one follows.
    for line in lines:
        fractions = [line.peak_fraction(s, peak_flops) for s in (line.ours_s, line.peer_s)]
        peak = " / ".join(f"{f:.0%}" if f >= 0.01 else f"{f:.1%}" for f in fractions if f is not None) or "-"
        ours = _seconds(line.ours_s) if line.ours_s is not None else "-"
        if line.plain_s is not None:
            ours += f" (plain {_seconds(line.plain_s)})"
        peer = f"{line.peer}: {_seconds(line.peer_s)}" if line.peer_s is not None else "-"
        ratio = f"{line.ratio:.2f}x" if line.ratio is not None else "-"
        if line.plain_ratio is not None:
            ratio += f" (plain {line.plain_ratio:.2f}x)"
        rows.append(f"| {line.name} | {ours} | {peer} | {ratio} | {peak} |")
    for label, peer, ours_mb, peer_mb in memory:
        rows.append(f"| peak memory, {label} | +{ours_mb:,.0f} MB | {peer}: +{peer_mb:,.0f} MB | "
                    f"{peer_mb / ours_mb:.2f}x | - |")
    return "\n".join(rows)


def _seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1.0 else f"{s:.3f} s"


def skipped(name: str, why: str) -> str:
    return f"{name}: skipped ({why})"


@dataclass
class Context:
    """What a comparison module needs from the command line and the run so far."""

    device: str
    quick: bool
    reps: int
    peak_flops: float
    out: Callable[[str], None] = print
    lines: list[Line] = field(default_factory=list)
    memory: list[tuple[str, str, float, float]] = field(default_factory=list)
    """(comparison, peer, glassformer MB, peer MB) from memory.py."""

    def report(self, line: Line) -> None:
        self.lines.append(line)
        self.out(line.render(self.peak_flops))
