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
from glassformer.nn.rms_norm import norm_layer

Sublayer = Callable[[torch.Tensor], torch.Tensor]
_NORM_WHAT = {"layernorm": "LayerNorm (x - mean) / std", "rmsnorm": "RMSNorm x / rms(x)"}


class PostNormResidual(nn.Module):
    """LayerNorm(x + Dropout(sublayer(x))): "add & norm" as in the paper and BERT."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = norm_layer(config)
        self.dropout = nn.Dropout(config.dropout)
        self.hook_sum = HookPoint(("B", "T", "d_model"), "residual: x + sublayer(x)")
        self.hook_norm = HookPoint(("B", "T", "d_model"), _NORM_WHAT[config.norm_type])

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        """x [B, T, d_model] -> [B, T, d_model]."""
        total = self.hook_sum(x + self.dropout(sublayer(x)))
        return self.hook_norm(self.norm(total))


class PreNormResidual(nn.Module):
    """x + Dropout(sublayer(LayerNorm(x))): the norm moves in front of the sublayer (GPT-2)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = norm_layer(config)
        self.dropout = nn.Dropout(config.dropout)
        self.hook_norm = HookPoint(("B", "T", "d_model"), _NORM_WHAT[config.norm_type])
        self.hook_sum = HookPoint(("B", "T", "d_model"), "residual: x + sublayer(norm(x))")

    def forward(self, x: torch.Tensor, sublayer: Sublayer) -> torch.Tensor:
        """x [B, T, d_model] -> [B, T, d_model]."""
        return self.hook_sum(x + self.dropout(sublayer(self.hook_norm(self.norm(x)))))


def residual(config: ModelConfig) -> nn.Module:
    """The add & norm wrapper that config.norm names."""
    return {"post": PostNormResidual, "pre": PreNormResidual}[config.norm](config)
