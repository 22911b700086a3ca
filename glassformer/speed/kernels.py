"""Products of a few rows without gradients on CPU: the kernels decoding can choose between.

Decoding feeds one token per sequence through every linear layer: a matrix-vector product that
reads the whole weight for two flops per number read, so its speed is the speed of reading the
weight. PyTorch's own product is not always the fastest reader for a few rows; which kernel is
depends on the CPU, so `glassformer.speed.choice` measures them. Each computes F.linear(x, W, b):

- `linear`: F.linear itself, on the weight in either layout.
- `bag`: for a column-major weight (stored as [in, out], like GPT-2's Conv1D), x Wᵀ = Σ_i x_i W[:, i]
  is a weighted sum of contiguous rows: `embedding_bag(mode="sum", per_sample_weights=x)`, one bag
  of input features per thread, partial sums added.
- `split`: one batched product over per-thread blocks of output features (`baddbmm`), in any layout.
- `mv`: one row as a matrix-vector product (`addmv`, BLAS gemv), which some BLAS libraries read
  the weight with faster than the general product F.linear calls; more rows go to F.linear.
- `native`: C compiled on this machine at first use (`glassformer.speed.native`), for fp32 x and an
  fp32 or bf16 weight in either layout; where it cannot be built, F.linear.

The others work on weights of any floating dtype, as long as x has the weight's dtype.

Blocks are views of the weight: nothing is copied.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F

from glassformer.speed.native import native_linear

MIN_BLOCK = 64  # output features per block below which splitting does not pay

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def column_major(weight: torch.Tensor) -> torch.Tensor:
    """A copy of weight [out, in] with the same shape and values, laid out as [in, out] in memory."""
    return weight.t().contiguous().t()


def is_column_major(weight: torch.Tensor) -> bool:
    return weight.dim() == 2 and weight.stride() == (1, weight.size(0))


@functools.lru_cache(maxsize=64)
def _bags(in_features: int, rows: int, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and offsets of `blocks` bags per row, each covering a block of input features."""
    index = torch.arange(in_features).repeat(rows)
    starts = torch.arange(blocks) * (in_features // blocks)  # the remainder joins each row's last bag
    offsets = (torch.arange(rows)[:, None] * in_features + starts).reshape(-1)
    return index, offsets


def bag_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias) for a column-major fp32 weight, as one weighted sum per row and thread.

    Args:
        x: [..., in]; weight: [out, in], column-major; bias: [out] or None.
    Returns:
        [..., out].
    """
    out_features, in_features = weight.shape
    blocks = max(1, min(torch.get_num_threads(), in_features))
    index, offsets = _bags(in_features, x.numel() // in_features, blocks)
    # [in, out], contiguous: row i holds the weights of input feature i. Detached, so that
    # PyTorch runs its forward-only kernel.
    table = weight.detach().t()
    # torch.embedding_bag is what F.embedding_bag calls after checks that cost more here than
    # they can catch: mode 0 is "sum"; the other outputs are bookkeeping for backward.
    sums = torch.embedding_bag(table, index, offsets, False, 0, False, x.reshape(-1))[0]  # [R * blocks, out]
    if blocks > 1:
        y = sums.view(*x.shape[:-1], blocks, out_features).sum(dim=-2)  # add each row's partial sums
    else:
        y = sums.view(*x.shape[:-1], out_features)
    return y if bias is None else y.add_(bias)


def split_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias) as one batched product over per-thread blocks of the output features.

    Args:
        x: [..., in]; weight: [out, in] in any memory layout; bias: [out] or None.
    Returns:
        [..., out].
    """
    out_features, in_features = weight.shape
    blocks = max(1, min(torch.get_num_threads(), out_features // MIN_BLOCK))
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


def mv_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias), as a matrix-vector product when x holds one row.

    Args:
        x: [..., in]; weight: [out, in] in any memory layout; bias: [out] or None.
    Returns:
        [..., out].
    """
    out_features, in_features = weight.shape
    if x.numel() != in_features:
        return F.linear(x, weight, bias)
    row = x.reshape(in_features)
    y = torch.mv(weight, row) if bias is None else torch.addmv(bias, weight, row)
    return y.view(*x.shape[:-1], out_features)


KERNELS: dict[str, Kernel] = {
    "linear": F.linear, "bag": bag_linear, "split": split_linear, "mv": mv_linear, "native": native_linear
}
"""Every kernel by name; `bag` needs a column-major fp32 weight, `native` fp32 x."""
