"""Add & Norm: the residual connection and LayerNorm around each sublayer (paper 3.1, 5.4).

The paper normalises after the add, LayerNorm(x + Dropout(sublayer(x))); GPT-2 and most modern
models normalise the sublayer's input instead, x + Dropout(sublayer(LayerNorm(x))).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.hooks import HookPoint

Sublayer = Callable[[torch.Tensor], torch.Tensor]


class PostNormResidual(nn.Module):
    """LayerNorm(x + Dropout(sublayer(x))): "add & norm" as in the paper and BERT."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.hook_sum = HookPoint(("B", "T", "d_model"), "residual: x + sublayer(x)")
        self.hook_norm = HookPoint(("B", "T", "d_model"), "LayerNorm (x - mean) / std")

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        """x [B, T, d_model] -> [B, T, d_model]."""
        total = self.hook_sum(x + self.dropout(sublayer(x)))
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
        """x [B, T, d_model] -> [B, T, d_model]."""
        return self.hook_sum(x + self.dropout(sublayer(self.hook_norm(self.norm(x)))))


def residual(config: ModelConfig) -> nn.Module:
    """The add & norm wrapper that config.norm names."""
    return {"post": PostNormResidual, "pre": PreNormResidual}[config.norm](config)
