"""bf16 weights with fp32 activations: the weights read at half the bytes, everything else in fp32.

Batch-1 decoding reads every weight once per token, so storing the weights of the linear layers
in bf16 halves what a token costs to read. On a CPU without native bf16 arithmetic only some bf16
products are fast (a 1 x 768 x 50,257 F.linear took 2.8 ms against 12.1 ms in fp32 on a quiet AVX2
EPYC) while others are emulated and many times slower, so `glassformer.speed.choice` measures,
per weight shape, whether bf16 storage wins, and which kernel then runs each row count; where
it does not win, the weight stays fp32. Only the products change: the activations, norms,
softmax, residual stream, biases and the KV cache stay fp32. An embedding table that shares its
weight with a bf16 output projection becomes bf16 too and widens its rows back to fp32.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.hardware import native_bf16
from glassformer.speed.kernels import KERNELS
from glassformer.speed.native import native_linear


def mixed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel: str) -> torch.Tensor:
    """F.linear(x, weight, bias) for a bf16 weight and fp32 x and bias, with an fp32 result.

    Args:
        x: [..., in] fp32; weight: [out, in] bf16; bias: [out] fp32 or None.
        kernel: a name of `glassformer.speed.kernels.KERNELS`, run in bf16 (x rounded to bf16,
            fp32 accumulation inside the kernel), or "upcast": the weight widened to fp32 first,
            which pays for many rows on a CPU that multiplies bf16 slowly. "native" takes x in fp32
            and widens the weight in registers instead (`glassformer.speed.native`).
    Returns:
        [..., out] fp32.
    """
    if kernel == "upcast":
        return F.linear(x, weight.to(x.dtype), bias)
    if kernel == "native":
        return native_linear(x, weight, bias)
    y = KERNELS[kernel](x.to(weight.dtype), weight, None)  # bf16
    # The sum promotes y to the bias's fp32 (exactly) in the same operation: one pass, not two.
    return y.to(x.dtype) if bias is None else torch.add(bias, y)


@lru_cache(maxsize=8)
def wide_kernel(device_type: str) -> str:
    """The kernel for more rows than the measured buckets: bf16 where the device computes it natively."""
    return "linear" if native_bf16(device_type) else "upcast"


class WidenedEmbedding(nn.Embedding):
    """nn.Embedding over a bf16 table (shared with a bf16 output projection) that returns fp32 rows."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids).float()


def widen_bf16_embeddings(model: nn.Module) -> int:
    """Make every nn.Embedding whose table is now bf16 return fp32 rows; returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.weight.dtype == torch.bfloat16:
            module.__class__ = WidenedEmbedding
            count += 1
    return count
