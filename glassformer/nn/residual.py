"""Residual connection + LayerNorm around a sublayer, after the add (paper) or before it (GPT-2)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.hooks import HookPoint
from glassformer.nn.module import Module

Sublayer = Callable[[torch.Tensor], torch.Tensor]


def apply_dropout(module: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    """What module(x) computes: zero each element with probability p, scale the rest by 1 / (1 - p).

    Skips the call when nothing would change (eval mode, p = 0). On CPU it draws uniform numbers
    instead of calling torch's Bernoulli sampler, which costs 2.5 times as much per element there:
    forward and backward take about a fifth less time than nn.Dropout's (benchmarks/RESULTS.md).
    """
    p = module.p
    if not module.training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return module(x)
    return _UniformDropout.apply(x, p)


class _UniformDropout(torch.autograd.Function):
    """Dropout with a mask from torch.rand, kept for backward as booleans (1 byte an element, as
    nn.Dropout keeps it) rather than as the scaled float mask (4 bytes)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = torch.rand(x.shape, dtype=torch.float32) >= p
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return _masked(x, keep, ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return _masked(grad, keep, ctx.scale), None


def _masked(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """x where keep, times scale; 0 elsewhere (faster here than torch.where on a bool mask)."""
    return x * keep.to(x.dtype).mul_(scale)


class PostNormResidual(Module):
    """LayerNorm(x + Dropout(sublayer(x))): "add & norm" as in the paper and BERT."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.hook_sum = HookPoint(("B", "T", "d_model"), "residual: x + sublayer(x)")
        self.hook_norm = HookPoint(("B", "T", "d_model"), "LayerNorm (x - mean) / std")

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        total = self.hook_sum(x + apply_dropout(self.dropout, sublayer(x)))
        return self.hook_norm(self.norm(total))


class PreNormResidual(Module):
    """x + Dropout(sublayer(LayerNorm(x))): the norm moves in front of the sublayer (GPT-2)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.hook_norm = HookPoint(("B", "T", "d_model"), "LayerNorm (x - mean) / std")
        self.hook_sum = HookPoint(("B", "T", "d_model"), "residual: x + sublayer(norm(x))")

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        return self.hook_sum(x + apply_dropout(self.dropout, sublayer(self.hook_norm(self.norm(x)))))


def residual(config: ModelConfig) -> nn.Module:
    """The residual wrapper that config.norm names."""
    return {"post": PostNormResidual, "pre": PreNormResidual}[config.norm](config)
