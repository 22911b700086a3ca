"""The position-wise feed-forward network: FFN(x) = W2 act(W1 x + b1) + b2 (paper 3.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.hooks import HookPoint

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,  # x * sigmoid(x), "swish" in Marian's opus-mt models
}


class FeedForward(nn.Module):
    """Two linear layers with ReLU (paper) or GELU between, applied to each position alike."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.w_1 = nn.Linear(config.d_model, config.d_ff, bias=config.use_ffn_bias)
        self.w_2 = nn.Linear(config.d_ff, config.d_model, bias=config.use_ffn_bias)
        self.activation = ACTIVATIONS[config.activation]
        self.dropout = nn.Dropout(config.dropout)
        self.hook_hidden = HookPoint(("B", "T", "d_ff"), "feed-forward hidden act(x W1 + b1)")
        self.hook_out = HookPoint(("B", "T", "d_model"), "feed-forward output h W2 + b2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d_model] -> [B, T, d_model]."""
        hidden = self.hook_hidden(self.activation(self.w_1(x)))  # [B, T, d_ff]
        return self.hook_out(self.w_2(self.dropout(hidden)))
