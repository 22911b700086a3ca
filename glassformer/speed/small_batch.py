"""A linear layer that multiplies a few rows with the kernel measured fastest on this machine."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.speed.choice import Choice, choose
from glassformer.speed.kernels import KERNELS, column_major

MAX_ROWS = 16  # beyond this many rows the product is compute-bound and F.linear is the kernel


def small_batch_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, choice: Choice | None
) -> torch.Tensor:
    """F.linear(x, weight, bias), through choice's kernel for up to MAX_ROWS rows on CPU without gradients.

    Args:
        x: [..., in]; weight: [out, in]; bias: [out] or None.
        choice: the measured choice for weight's shape, or None for F.linear always.
    """
    rows = x.numel() // weight.size(1)
    if (
        choice is None
        or rows > MAX_ROWS
        or rows == 0
        or torch.is_grad_enabled()
        or not x.is_cpu
        or x.dtype != weight.dtype
        or torch.is_autocast_enabled("cpu")
    ):
        return F.linear(x, weight, bias)
    return KERNELS[choice.kernel_for(rows)](x, weight, bias)


class SmallBatchLinear(nn.Linear):
    """nn.Linear whose products of up to MAX_ROWS rows on CPU, without gradients, use `choice`.

    `use_small_batch_kernels` turns an existing nn.Linear into one in place, as FSDP2's
    `fully_shard` does with its modules: same parameters, state dict and hooks.
    """

    choice: Choice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return small_batch_linear(x, self.weight, self.bias, self.choice)


def use_small_batch_kernels(linear: nn.Linear) -> Choice:
    """Give linear the layout and kernels measured fastest for its shape; returns the choice."""
    weight = linear.weight
    choice = choose(linear.out_features, linear.in_features, linear.bias is not None, weight.dtype)
    if choice.column_major and not weight.stride() == (1, weight.size(0)):
        # In place, so that a weight shared with an embedding (tied) stays one tensor.
        weight.data = column_major(weight.data)
    elif not choice.column_major and not weight.is_contiguous():
        weight.data = weight.data.contiguous()
    linear.__class__ = SmallBatchLinear
    linear.choice = choice
    return choice
