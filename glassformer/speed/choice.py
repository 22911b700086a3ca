"""Which small-batch kernel and weight layout is fastest here: measured once, then remembered.

For each weight shape the candidates of `glassformer.speed.kernels` run on random inputs of 1, 4
and 16 rows, interleaved rep by rep, after a warm-up; each is judged by its best rep, since
whatever else runs on the machine only ever makes a rep slower (medians measured on a busy
2-core machine once kept a slow kernel for a shape for good). Each timed call goes through enough
copies of the weight to overflow the CPU's caches, so that every product reads its weight from
memory, as decoding does. F.linear on the row-major weight (what nn.Linear does) stays unless
another candidate beats it by more than MARGIN (among the C kernels only: the row-major C
kernel). The weight layout (row-major, or column-major) is the one of the winner at 1 row, the
case batch-1 decoding lives in. With `weights="bf16"` bf16
copies of the weight compete too (multiplied with fp32 rows, `glassformer.speed.bf16_weights`),
and the 1-row winner also decides the storage dtype. A candidate more than PRUNE times slower
than the best on its first call is not timed again. Choices are kept per machine, PyTorch
version, thread count, dtype, shape, weights setting and build of the C kernels (changed C code
is measured again) in a small JSON file (`GLASSFORMER_CACHE_DIR`, default ~/.cache/glassformer),
so only the first use on a machine pays for the measurement (a second or two for a
124M-parameter model). A choice measured while other processes used more than BUSY_SHARE of the
CPUs (`machine_load.others_share`) serves this process only and is not written: the next run
measures again (a bf16 choice measured while the test suite ran kept fp32 for half of gpt2-small's
products, and its decoding 0.95x fp32, until the file was deleted).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from glassformer.files import cache_dir
from glassformer.speed import native
from glassformer.speed.bf16_weights import mixed_linear
from glassformer.speed.kernels import KERNELS, column_major
from glassformer.speed.machine_load import others_share

KERNEL_NAMES = (*KERNELS, "upcast")

ROWS = (1, 4, 16)  # a choice per bucket: 1 row, 2-4 rows, 5-16 rows
REPS = 9
TIME_BUDGET_S = 0.02  # per candidate and row count; big weights get fewer reps
STREAM_BYTES = 64 << 20  # more than the caches of the CPUs this runs on
MAX_COPIES = 16
MARGIN = 0.05
PRUNE = 2.0
BUSY_SHARE = 0.25
VERSION = 4  # bump when the candidates change, so that old choices are measured again
Layout = tuple[bool, str]  # (column-major, kernel)
LAYOUTS = {False: "row-major", True: "column-major"}
NATIVE_ONLY: tuple[Layout, ...] = ((False, "native"),)
"""The products of a model whose decoding steps run in C (`native_layers`) run on the C kernels, on the
weight as it is stored: the choice for them is between fp32 and bf16 (with `weights="bf16"`) for the
row-major C kernel. Row-major, because the column-major C kernel read no faster on any shape measured
(2-core AMD EPYC, one row, weights streamed from memory: 1152 x 384 25.3 GB/s row-major against 21.4,
1536 x 384 20.3 against 15.6, 384 x 1536 20.2 against 20.0, 8,000 x 384 35.6 against 26.3), while
measuring both in a few reps on a busy machine picked column-major for the feed-forward products of
a 6-layer GPT-2 once and for its Q/K/V the next time: decoding it ran 1.22x slower than row-major."""
WEIGHTS = ("fp32", "bf16")
"""What `weights` may ask for: fp32 only, or bf16 storage where its products measure faster."""


@dataclass(frozen=True)
class Choice:
    """The storage dtype, the layout and the kernel per row bucket for one weight shape.

    Args:
        column_major: store the weight column-major ([in, out] in memory).
        kernels: kernel name for rows <= 1, <= 4 and <= 16, in that order.
        dtype: the weight's storage dtype, "float32" or "bfloat16" (then the activations stay
            fp32 and only the product runs in bf16, see `glassformer.speed.bf16_weights`).
    """

    column_major: bool
    kernels: tuple[str, str, str]
    dtype: str = "float32"

    def kernel_for(self, rows: int) -> str:
        return self.kernels[0 if rows <= 1 else 1 if rows <= 4 else 2]


Candidate = tuple[str, bool, str]  # (storage dtype, column-major, kernel)


def cache_file() -> Path:
    return cache_dir() / "kernels.json"


def machine() -> str:
    """The CPU's name, PyTorch's kernel level and version: what a measured choice depends on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}|{torch.backends.cpu.get_cpu_capability()}|torch {torch.__version__}"


def cache_key(
    out_features: int, in_features: int, bias: bool, dtype: torch.dtype, weights: str = "fp32",
    only: tuple[Layout, ...] | None = None,
) -> str:
    return (f"v{VERSION}|{machine()}|threads {torch.get_num_threads()}|{dtype}|{out_features}x{in_features}"
            f"|bias {bias}|weights {weights}|native {native.build_key() or 'none'}"
            + (f"|only {','.join(f'{kernel} {LAYOUTS[cm]}' for cm, kernel in only)}" if only else ""))


def _candidates(
    dtype: torch.dtype, weights: str, rows: int, only: tuple[Layout, ...] | None = None
) -> list[Candidate]:
    """The (storage dtype, column-major, kernel) triples worth timing for rows rows: of the (column-major,
    kernel) pairs in only, if given and any of them runs on this dtype here; else of all."""
    pairs = [(False, "linear"), (True, "linear")]
    if rows == 1:
        pairs += [(False, "mv"), (True, "mv")]
    if torch.get_num_threads() > 1:
        pairs += [(False, "split"), (True, "split")]
    name = str(dtype).removeprefix("torch.")
    found = [(name, layout, kernel) for layout, kernel in pairs]
    if dtype == torch.float32:
        found.append((name, True, "bag"))
        if native.available():
            found += [(name, layout, "native") for layout in (False, True)]
        if weights == "bf16":
            found += [("bfloat16", layout, kernel) for layout, kernel in pairs]
            if native.available():
                found += [("bfloat16", layout, "native") for layout in (False, True)]
            if rows > 1:  # converting the weight back pays only when several rows share it
                found += [("bfloat16", layout, "upcast") for layout in (False, True)]
    return [c for c in found if c[1:] in only] or found if only else found


def _interleaved_best(calls: dict, reps: int) -> dict:
    """The fewest seconds per call of each candidate over reps, timed in turn rep by rep."""
    times: dict = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def _fastest(seconds: dict, default) -> object:
    """The fastest candidate, unless the default is within MARGIN of it."""
    best = min(seconds, key=seconds.get)
    if default in seconds and seconds[default] <= (1 + MARGIN) * seconds[best]:
        return default
    return best


@torch.inference_mode()
def measure(
    out_features: int, in_features: int, bias: bool, dtype: torch.dtype, weights: str = "fp32",
    only: tuple[Layout, ...] | None = None,
) -> Choice:
    """Time every candidate on this machine and return the fastest storage, layout and kernels.

    Args:
        weights: "bf16" also times bf16 copies of an fp32 weight, multiplied with fp32 activations.
        only: time only these (column-major, kernel) pairs (and choose among their dtypes).
    """
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(out_features, in_features, generator=g).to(dtype)
    b = torch.randn(out_features, generator=g).to(dtype) if bias else None
    copies: dict = {}  # (storage dtype, column-major) -> copies of the weight, enough to overflow the caches

    def stored(kind: str, layout: bool) -> list[torch.Tensor]:
        if (kind, layout) not in copies:
            w = weight.to(getattr(torch, kind))
            n = max(1, min(MAX_COPIES, STREAM_BYTES // (w.numel() * w.element_size())))
            copies[kind, layout] = [column_major(w) if layout else w.clone() for _ in range(n)]
        return copies[kind, layout]

    def call(candidate: Candidate, x: torch.Tensor):
        kind, layout, kernel = candidate
        ws = stored(kind, layout)
        if getattr(torch, kind) == dtype:
            return lambda: [KERNELS[kernel](x, w, b) for w in ws]
        return lambda: [mixed_linear(x, w, b, kernel) for w in ws]

    best = {}
    for rows in ROWS:
        x = torch.randn(rows, in_features, generator=g).to(dtype)
        candidates = _candidates(dtype, weights, rows, only)
        calls = {c: call(c, x) for c in candidates}
        first = _interleaved_best(calls, 1)  # also the warm-up
        # A candidate PRUNE times slower per product than the best on its first call is not timed
        # again, unless it is F.linear or the fastest of its storage and layout: the kind and layout
        # chosen on one row need a kernel for every row count.
        per_product = {c: t / len(stored(*c[:2])) for c, t in first.items()}
        fastest = min(per_product.values())
        own_best = {c[:2]: min(t for d, t in per_product.items() if d[:2] == c[:2]) for c in per_product}
        calls = {c: f for c, f in calls.items()
                 if per_product[c] <= PRUNE * fastest or c[2] == "linear" or per_product[c] == own_best[c[:2]]}
        once = max(first[c] for c in calls)
        reps = max(3, min(REPS, int(TIME_BUDGET_S / max(once, 1e-6))))
        # Per product: a candidate stores as many copies as fit in STREAM_BYTES, bf16 twice as many.
        best[rows] = {c: t / len(stored(*c[:2])) for c, t in _interleaved_best(calls, reps).items()}
    # What stays unless beaten by MARGIN: F.linear on the row-major weight, or the first of only's pairs.
    layout, kernel = only[0] if only and any(c[1:] == only[0] for c in best[1]) else (False, "linear")
    kind, layout, _ = _fastest(best[1], (str(dtype).removeprefix("torch."), layout, kernel))
    kernels = tuple(
        _fastest({c: t for c, t in best[rows].items() if c[:2] == (kind, layout)}, (kind, layout, kernel))[2]
        for rows in ROWS
    )
    return Choice(layout, kernels, kind)


_UNSAVED: dict[str, Choice] = {}
"""Choices measured on a busy machine by this process, by cache key."""


def choose(
    out_features: int, in_features: int, bias: bool, dtype: torch.dtype, weights: str = "fp32",
    only: tuple[Layout, ...] | None = None,
) -> Choice:
    """The remembered choice for this shape on this machine, measured now if there is none.

    Args:
        weights: "fp32" keeps the weight's dtype; "bf16" lets bf16 storage win where it measures faster.
        only: choose among these (column-major, kernel) pairs only (`NATIVE_ONLY` for the products the C
            layers run).
    """
    key = cache_key(out_features, in_features, bias, dtype, weights, only)
    path = cache_file()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    try:
        entry = known[key]
        kept = Choice(bool(entry["column_major"]), tuple(entry["kernels"]), str(entry.get("dtype", "float32")))
        if len(kept.kernels) == len(ROWS) and all(k in KERNEL_NAMES for k in kept.kernels):
            return kept
    except (KeyError, TypeError):
        pass  # not measured yet, or written by another version: measure
    if key in _UNSAVED:
        return _UNSAVED[key]
    choice, busy = others_share(lambda: measure(out_features, in_features, bias, dtype, weights, only))
    if busy is not None and busy > BUSY_SHARE:
        _UNSAVED[key] = choice  # judged on a busy machine: for this process only
        return choice
    known[key] = asdict(choice)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the measurement again next time
    return choice
