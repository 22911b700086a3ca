"""The encoder (paper 3.1): N identical layers of self-attention and feed-forward, each inside add & norm."""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.add_norm import residual
from glassformer.nn.gated_feedforward import feed_forward
from glassformer.nn.hooks import HookPoint
from glassformer.nn.multi_head_attention import SelfAttention
from glassformer.nn.relative_position_bias import RelativePositionBias
from glassformer.nn.rms_norm import norm_layer


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each inside residual + LayerNorm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self_attn = SelfAttention(config)
        self.self_attn_residual = residual(config)
        self.ffn = feed_forward(config)
        self.ffn_residual = residual(config)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, position_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, S, d_model], mask [B, 1, 1, S] (True at real tokens) -> [B, S, d_model].

        Args:
            position_bias: [1, H, S, S] added to the attention scores (T5's relative positions).
        """
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, mask=mask, position_bias=position_bias))
        return self.ffn_residual(x, self.ffn)


class Encoder(nn.Module):
    """N encoder layers, with the final LayerNorm that pre-norm models need, and T5's relative
    position bias, computed once here and shared by the layers."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        relative = config.positions == "relative"
        self.position_bias = RelativePositionBias(config, bidirectional=True) if relative else None
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        self.final_norm = norm_layer(config) if config.use_final_norm else None
        self.hook_out = HookPoint(("B", "S", "d_model"), "encoder output")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, S, d_model], mask [B, 1, 1, S] -> [B, S, d_model]."""
        bias = self.position_bias(x.size(1), x.size(1)) if self.position_bias is not None else None  # [1, H, S, S]
        for layer in self.layers:
            x = layer(x, mask, bias)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.hook_out(x)
