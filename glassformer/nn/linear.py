"""nn.Linear that multiplies a few rows at a time faster on CPU, with the same parameters.

Decoding feeds one token per sequence through every linear layer: a matrix-vector product that
reads the whole weight for little arithmetic. MKL's fp32 product on x86 streams a weight laid
out [in, out] in memory (column-major for the [out, in] shape) faster than nn.Linear's row-major
[out, in]: on a Zen 4 core the 36 products of one decode step of a 6-layer, 384-wide model took
2.86 -> 2.55 ms, an 8000 x 384 one 0.66 -> 0.38 ms; the gain fades by a few dozen rows
(benchmarks/RESULTS.md).
So when no gradient is needed and at most SMALL_ROWS rows come in, `Linear` multiplies by a
column-major copy of its weight, made once and made again only after the weight changes (its
version counter moves) or is replaced. The copy costs the weight's memory once more, only in
processes that decode on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SMALL_ROWS = 16


class Linear(nn.Linear):
    """nn.Linear (same parameters, state dict and hooks), with the small-batch CPU path above."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._copy: tuple[tuple, torch.Tensor] | None = None  # (weight's identity and version, copy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not torch.is_grad_enabled() and x.numel() <= SMALL_ROWS * self.in_features:
            weight = self._column_major()
            if weight is not None:
                return F.linear(x, weight, self.bias)
        return F.linear(x, self.weight, self.bias)

    def _column_major(self) -> torch.Tensor | None:
        """The weight [out, in] stored as [in, out]; None for inference tensors (no version to check)."""
        weight = self.weight
        try:
            key = (id(weight), weight.data_ptr(), weight._version, weight.dtype)
        except RuntimeError:
            return None
        if self._copy is None or self._copy[0] != key:
            self._copy = (key, column_major(weight.detach()))
        return self._copy[1]


def column_major(weight: torch.Tensor) -> torch.Tensor:
    """A copy of weight [out, in] with the same shape, laid out as [in, out] in memory."""
    return weight.t().contiguous().t()


def concat_column_major(weights: list[torch.Tensor]) -> torch.Tensor:
    """Weights [out_i, in] stacked along out into one column-major [sum(out_i), in] tensor."""
    return torch.cat([w.t() for w in weights], dim=1).t()
