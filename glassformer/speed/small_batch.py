"""A linear layer that multiplies a few rows with the kernel measured fastest on this machine.

With `weights="bf16"` the choice may also store the weight in bf16 (`glassformer.speed.bf16_weights`):
its products then take fp32 rows and give fp32 results at every row count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.speed.bf16_weights import mixed_linear, wide_kernel
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
    if x.dtype != weight.dtype and weight.dtype == torch.bfloat16 and choice is not None:
        fits = 0 < rows <= MAX_ROWS and x.is_cpu
        return mixed_linear(x, weight, bias, choice.kernel_for(rows) if fits else wide_kernel(x.device.type))
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


def use_small_batch_kernels(
    linear: nn.Linear,
    weights: str = "fp32",
    choice: Choice | None = None,
    only: tuple[tuple[bool, str], ...] | None = None,
) -> Choice:
    """Give linear the storage, layout and kernels measured fastest for its shape; returns the choice.

    Args:
        weights: "bf16" lets the weight be stored in bf16 where that measures faster.
        choice: use this choice instead of the measured one (a GPU's bf16 weights).
        only: measure only these (column-major, kernel) pairs (`choice.choose`).
    """
    weight = linear.weight
    if choice is None:
        choice = choose(linear.out_features, linear.in_features, linear.bias is not None, weight.dtype, weights,
                        only)
    if choice.dtype != str(weight.dtype).removeprefix("torch."):
        # In place, so that a weight shared with an embedding (tied) stays one tensor.
        weight.data = weight.data.to(getattr(torch, choice.dtype))
    if choice.column_major and not weight.stride() == (1, weight.size(0)):
        # In place, so that a weight shared with an embedding (tied) stays one tensor.
        weight.data = column_major(weight.data)
    elif not choice.column_major and not weight.is_contiguous():
        weight.data = weight.data.contiguous()
    linear.__class__ = SmallBatchLinear
    linear.choice = choice
    return choice
