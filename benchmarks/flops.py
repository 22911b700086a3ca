"""Floating-point operations of one unit of work, counted by PyTorch rather than by formula.

`torch.utils.flop_counter.FlopCounterMode` counts matrix products (mm, addmm, bmm, attention, and
the weighted embedding_bag sums that `glassformer.speed`'s small-batch kernels may multiply with);
elementwise work, softmax and the optimiser are not counted. Attention runs through the math
kernel while counting, so causal attention is counted in full (the usual convention: kernels
that skip the masked half do not get credit for it). Work that scales with the batch is counted
on one row and multiplied, to keep the count cheap. Work done in C (`glassformer.speed.native`)
is not seen: decoding lines count the plain model's generation, which does the same products.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def _weighted_bag_flops(weight_shape, indices_shape, *args, out_shape=None, **kwargs) -> int:
    """A weighted embedding_bag sum (`glassformer.speed.kernels.bag_linear`): a multiply and an add per
    element of every row it gathers, as a matrix product of the same size is counted."""
    return 2 * indices_shape[0] * weight_shape[1]


BAG_FLOPS = {op: _weighted_bag_flops for op in (torch.ops.aten._embedding_bag, torch.ops.aten._embedding_bag_forward_only)}


def count_flops(work: Callable[[], object]) -> int:
    """Matmul FLOPs of one call of work."""
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False, custom_mapping=BAG_FLOPS) as counter:
        work()
    return counter.get_total_flops()


def step_flops(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor) -> int:
    """FLOPs of a training step's forward and backward on the whole batch (counted on row 0).

    Args:
        model: returns logits [B, T, V] (or an object with .logits).
        inputs: the model's positional inputs, each [B, ...]; targets [B, T].
    """
    one = tuple(x[:1] for x in inputs)

    def forward_backward() -> None:
        out = model(*one)
        logits = getattr(out, "logits", out)
        F.cross_entropy(logits.flatten(0, 1), targets[:1].flatten()).backward()

    flops = count_flops(forward_backward)
    model.zero_grad(set_to_none=True)
    return flops * targets.size(0)
