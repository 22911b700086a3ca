"""The machine's fp32 matmul peak, measured with `torch.mm` at transformer-shaped products.

The best median over the shapes is "the peak" that the other lines are a fraction of: what this
machine's BLAS delivers in this run, not a datasheet figure.
"""

from __future__ import annotations

import statistics

import torch

import common
from common import sync

# (M, K, N): activations [M, K] times a weight [K, N]: the GPT-2 case's QKV, FFN in and out,
# the LM head, and a square product.
SHAPES = [(4096, 384, 1152), (4096, 384, 1536), (4096, 1536, 384), (4096, 384, 8000), (2048, 2048, 2048)]


def matmul_gflops(m: int, k: int, n: int, reps: int, device: str, dtype=torch.float32) -> float:
    """Median GFLOP/s of a [m, k] @ [k, n] product (2 m k n flops), after one warm-up."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    out = torch.empty(m, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(reps):
        sync(device)
        start = common.clock()
        torch.mm(a, b, out=out)
        sync(device)
        times.append(common.clock() - start)
    return 2.0 * m * k * n / statistics.median(times) / 1e9


def measure_peak(device: str, reps: int, out=print) -> float:
    """Print the GFLOP/s of each shape; return the best, in FLOP/s."""
    results = {shape: matmul_gflops(*shape, reps=reps, device=device) for shape in SHAPES}
    shown = ", ".join(f"{m}x{k}x{n} {g:.0f}" for (m, k, n), g in results.items())
    best = max(results.values())
    out(f"fp32 torch.mm GFLOP/s (M x K x N, median of {reps}): {shown}; peak = {best:.0f} GFLOP/s")
    return best * 1e9
