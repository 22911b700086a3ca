"""The gated feed-forward network: FFN(x) = (act(x W_gate) * x W_up) W_down (Shazeer 2020).

One projection, through the activation, gates another element-wise. With SiLU it is SwiGLU
(LLaMA, Mistral, Qwen), with GELU it is GEGLU (T5 v1.1). It has three matrices where the
paper's network has two, so models using it shrink d_ff (LLaMA-7B: 11008 = 2/3 * 4 * 4096,
rounded up to a multiple of 256) to keep the parameter count.
"""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.feedforward import ACTIVATIONS, FeedForward
from glassformer.nn.hooks import HookPoint


class GatedFeedForward(nn.Module):
    """act(x W_gate) * (x W_up), then W_down, applied to each position alike."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        bias = config.use_ffn_bias
        self.w_gate = nn.Linear(config.d_model, config.d_ff, bias=bias)
        self.w_up = nn.Linear(config.d_model, config.d_ff, bias=bias)
        self.w_down = nn.Linear(config.d_ff, config.d_model, bias=bias)
        self.activation = ACTIVATIONS[config.activation]
        self.dropout = nn.Dropout(config.dropout)
        self.hook_gate = HookPoint(("B", "T", "d_ff"), f"gate {config.activation}(x W_gate)")
        self.hook_up = HookPoint(("B", "T", "d_ff"), "up projection x W_up")
        self.hook_hidden = HookPoint(("B", "T", "d_ff"), "gated hidden: gate * up")
        self.hook_out = HookPoint(("B", "T", "d_model"), "feed-forward output h W_down")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d_model] -> [B, T, d_model]."""
        gate = self.hook_gate(self.activation(self.w_gate(x)))  # [B, T, d_ff]
        hidden = self.hook_hidden(gate * self.hook_up(self.w_up(x)))
        return self.hook_out(self.w_down(self.dropout(hidden)))


def feed_forward(config: ModelConfig) -> nn.Module:
    """The feed-forward network config names: the paper's, or the gated one."""
    if config.gated_ffn:
        return GatedFeedForward(config)
    return FeedForward(config)
