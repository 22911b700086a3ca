"""Which small-batch kernel and weight layout is fastest here: measured once, then remembered.

For each weight shape the candidates of `glassformer.speed.kernels` run on random inputs of 1, 4
and 16 rows, interleaved rep by rep, after a warm-up. Each timed call goes through enough
copies of the weight to overflow the CPU's caches, so that every product reads its weight from
memory, as decoding does. F.linear on the row-major weight (what nn.Linear does) stays unless
another candidate beats it by more than MARGIN. The weight layout (row-major, or column-major)
is the one of the winner at 1 row, the case batch-1 decoding lives in. Choices are kept per
machine, PyTorch version, thread count, dtype and shape in a small JSON file
(`GLASSFORMER_CACHE_DIR`, default ~/.cache/glassformer), so only the first use on a machine pays
for the measurement (a second or two for a 124M-parameter model).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from glassformer.speed.kernels import KERNELS, column_major

ROWS = (1, 4, 16)  # a choice per bucket: 1 row, 2-4 rows, 5-16 rows
REPS = 9
TIME_BUDGET_S = 0.02  # per candidate and row count; big weights get fewer reps
STREAM_BYTES = 64 << 20  # more than the caches of the CPUs this runs on
MAX_COPIES = 16
MARGIN = 0.05
DEFAULT = (False, "linear")


@dataclass(frozen=True)
class Choice:
    """The layout and the kernel per row bucket for one weight shape.

    Args:
        column_major: store the weight column-major ([in, out] in memory).
        kernels: kernel name for rows <= 1, <= 4 and <= 16, in that order.
    """

    column_major: bool
    kernels: tuple[str, str, str]

    def kernel_for(self, rows: int) -> str:
        return self.kernels[0 if rows <= 1 else 1 if rows <= 4 else 2]


def cache_file() -> Path:
    root = os.environ.get("GLASSFORMER_CACHE_DIR") or Path.home() / ".cache" / "glassformer"
    return Path(root) / "kernels.json"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}|{torch.backends.cpu.get_cpu_capability()}|torch {torch.__version__}"


def cache_key(out_features: int, in_features: int, bias: bool, dtype: torch.dtype) -> str:
    return f"{_machine()}|threads {torch.get_num_threads()}|{dtype}|{out_features}x{in_features}|bias {bias}"


def _candidates(dtype: torch.dtype) -> list[tuple[bool, str]]:
    """(column-major, kernel) pairs worth timing for weights of this dtype."""
    pairs = [(False, "linear"), (True, "linear")]
    if torch.get_num_threads() > 1:
        pairs += [(False, "split"), (True, "split")]
    if dtype == torch.float32:
        pairs.append((True, "bag"))
    return pairs


def _interleaved_medians(calls: dict, reps: int) -> dict:
    """Median seconds per call of each candidate, timed in turn rep by rep."""
    times: dict = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _fastest(medians: dict, default) -> object:
    """The fastest candidate, unless the default is within MARGIN of it."""
    best = min(medians, key=medians.get)
    if default in medians and medians[default] <= (1 + MARGIN) * medians[best]:
        return default
    return best


@torch.inference_mode()
def measure(out_features: int, in_features: int, bias: bool, dtype: torch.dtype) -> Choice:
    """Time every candidate on this machine and return the fastest layout and kernels."""
    g = torch.Generator().manual_seed(0)
    size = out_features * in_features * torch.finfo(dtype).bits // 8
    copies = max(1, min(MAX_COPIES, STREAM_BYTES // size))
    rows_major = [torch.randn(out_features, in_features, generator=g).to(dtype) for _ in range(copies)]
    layouts = {False: rows_major, True: [column_major(w) for w in rows_major]}
    b = torch.randn(out_features, generator=g).to(dtype) if bias else None
    pairs = _candidates(dtype)
    medians = {}
    for rows in ROWS:
        x = torch.randn(rows, in_features, generator=g).to(dtype)
        calls = {
            pair: (lambda ws=layouts[pair[0]], k=KERNELS[pair[1]]: [k(x, w, b) for w in ws]) for pair in pairs
        }
        once = max(_interleaved_medians(calls, 1).values())  # also the warm-up
        reps = max(3, min(REPS, int(TIME_BUDGET_S / max(once, 1e-6))))
        medians[rows] = _interleaved_medians(calls, reps)
    layout = _fastest(medians[1], DEFAULT)[0]
    kernels = tuple(
        _fastest({p: t for p, t in medians[rows].items() if p[0] == layout}, (layout, "linear"))[1] for rows in ROWS
    )
    return Choice(layout, kernels)


def choose(out_features: int, in_features: int, bias: bool, dtype: torch.dtype) -> Choice:
    """The remembered choice for this shape on this machine, measured now if there is none."""
    key = cache_key(out_features, in_features, bias, dtype)
    path = cache_file()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    try:
        kept = Choice(bool(known[key]["column_major"]), tuple(known[key]["kernels"]))
        if len(kept.kernels) == len(ROWS) and all(k in KERNELS for k in kept.kernels):
            return kept
    except (KeyError, TypeError):
        pass  # not measured yet, or written by another version: measure
    choice = measure(out_features, in_features, bias, dtype)
    known[key] = asdict(choice)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the measurement again next time
    return choice
