"""nn.Linear laid out and multiplied for fast decoding on CPU, with nn.Linear's parameters.

Decoding feeds one token per sequence through every linear layer: a matrix-vector product that
reads the whole weight for two flops per number read, so it runs at the speed of reading memory.
PyTorch's product for a few rows reaches about a third of what this machine can stream. Two
changes close most of the gap:

- Layout. `Linear` keeps its weight [out, in] column-major, i.e. as [in, out] in memory, the way
  GPT-2's Conv1D stores it: the `out` weights that multiply input feature i are contiguous. The
  parameter's shape, values, name, state dict and gradients are nn.Linear's; only its strides
  differ, and every product PyTorch offers accepts them.
- Kernel. For up to BAG_ROWS rows without gradients, x W^T = sum_i x_i W[:, i] is a weighted sum
  of those contiguous rows: what `F.embedding_bag(mode="sum", per_sample_weights=...)` computes,
  with a kernel that streams rows close to the memory's speed. Each thread gets its own bag, a
  block of input features, and the partial sums are added. For up to SMALL_ROWS rows, one
  `torch.baddbmm` over blocks of output features does the same, one block per thread.

Measured on a 2-core Zen 4 over the 25 products of one decode step of a 6-layer, 384-wide GPT-2
(55 MB of fp32 weights), one row: 5.1 ms as nn.Linear, 1.8 ms here (benchmarks/small_batch_linear.py).
Blocks are views of the weight: nothing is copied.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

BAG_ROWS = 4  # up to this many rows: embedding_bag over input features
SMALL_ROWS = 16  # up to this many rows: baddbmm over blocks of output features
MIN_BLOCK = 64  # output features per block below which splitting does not pay


class Linear(nn.Linear):
    """nn.Linear (same parameters, state dict and hooks) with a column-major weight and the fast
    small-batch CPU paths above."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.weight = nn.Parameter(column_major(self.weight.detach()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def column_major(weight: torch.Tensor) -> torch.Tensor:
    """A copy of weight [out, in] with the same shape, laid out as [in, out] in memory."""
    return weight.t().contiguous().t()


def concat_column_major(weights: list[torch.Tensor]) -> torch.Tensor:
    """Weights [out_i, in] stacked along out into one column-major [sum(out_i), in] tensor."""
    return torch.cat([w.t() for w in weights], dim=1).t()


def tie_column_major(linear_layer: nn.Linear, embedding: nn.Embedding) -> None:
    """Share embedding's table [V, d] as linear_layer's weight, laid out column-major for decoding."""
    shared = nn.Parameter(column_major(embedding.weight.detach()))
    embedding.weight = shared
    linear_layer.weight = shared


def is_column_major(weight: torch.Tensor) -> bool:
    return weight.dim() == 2 and weight.stride() == (1, weight.size(0))


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias), faster for a few rows on CPU without gradients.

    Decoding calls this a few dozen times per token, so the checks are the cheap ones first.
    """
    rows = x.numel() // max(x.shape[-1], 1)
    if rows > SMALL_ROWS or rows == 0 or not x.is_cpu or torch.is_grad_enabled():
        return F.linear(x, weight, bias)
    threads = torch.get_num_threads()
    if (
        rows <= BAG_ROWS
        and x.dtype == weight.dtype == torch.float32
        and is_column_major(weight)
        and not torch.is_autocast_enabled("cpu")
    ):
        return bag_linear(x, weight, bias, threads)
    blocks = min(threads, weight.size(0) // MIN_BLOCK)
    if blocks >= 2:
        return split_linear(x, weight, bias, blocks)
    return F.linear(x, weight, bias)


@functools.lru_cache(maxsize=64)
def _bags(in_features: int, rows: int, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and offsets of `blocks` bags per row, each covering a block of input features."""
    index = torch.arange(in_features).repeat(rows)
    starts = torch.arange(blocks) * (in_features // blocks)  # the remainder joins each row's last bag
    offsets = (torch.arange(rows)[:, None] * in_features + starts).reshape(-1)
    return index, offsets


def bag_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, blocks: int) -> torch.Tensor:
    """F.linear(x, weight, bias) for a column-major fp32 weight, as `blocks` weighted sums per row.

    Args:
        x: [..., in]; weight: [out, in], column-major; bias: [out] or None.
    Returns:
        [..., out].
    """
    out_features, in_features = weight.shape
    blocks = max(1, min(blocks, in_features))
    index, offsets = _bags(in_features, x.numel() // in_features, blocks)
    # [in, out], contiguous: row i holds the weights of input feature i. Detached, so that
    # PyTorch runs its forward-only kernel (no bookkeeping for a backward that cannot come).
    table = weight.detach().t()
    # torch.embedding_bag is what F.embedding_bag calls after checks that cost more here than
    # they can catch: mode 0 is "sum"; the other outputs are bookkeeping for backward.
    sums = torch.embedding_bag(table, index, offsets, False, 0, False, x.reshape(-1))[0]  # [R * blocks, out]
    if blocks > 1:
        y = sums.view(*x.shape[:-1], blocks, out_features).sum(dim=-2)  # add each row's partial sums
    else:
        y = sums.view(*x.shape[:-1], out_features)
    return y if bias is None else y.add_(bias)


def split_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, blocks: int) -> torch.Tensor:
    """F.linear(x, weight, bias) as one batched product over `blocks` slices of the output features.

    Args:
        x: [..., in]; weight: [out, in] in any memory layout; bias: [out] or None.
    Returns:
        [..., out].
    """
    out_features, in_features = weight.shape
    rows = x.reshape(-1, in_features)  # [R, in]
    size = out_features // blocks
    split = blocks * size
    # Block b is weight[b * size : (b + 1) * size].T, [in, size], a view whatever the layout.
    s_out, s_in = weight.stride()
    parts = weight.as_strided((blocks, in_features, size), (size * s_out, s_in, s_out), weight.storage_offset())
    batched = rows.expand(blocks, -1, -1)  # [blocks, R, in], a view
    if bias is None:
        y = torch.bmm(batched, parts)
    else:
        y = torch.baddbmm(bias[:split].reshape(blocks, 1, size), batched, parts)  # [blocks, R, size]
    y = y.transpose(0, 1).reshape(rows.size(0), split)  # [R, split]
    if split < out_features:  # the last few features, fewer than `blocks`
        rest = F.linear(rows, weight[split:], None if bias is None else bias[split:])
        y = torch.cat([y, rest], dim=1)
    return y.reshape(*x.shape[:-1], out_features)
