"""Residual connection + LayerNorm around a sublayer, after the add (paper) or before it (GPT-2)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.hooks import HookPoint

Sublayer = Callable[[torch.Tensor], torch.Tensor]


def apply_dropout(module: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    """module(x), skipping the call when it would return x unchanged (eval mode or p = 0)."""
    return module(x) if module.training and module.p > 0.0 else x


class PostNormResidual(nn.Module):
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


class PreNormResidual(nn.Module):
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
