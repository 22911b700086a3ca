"""The top of Figure 1: the pre-softmax linear projection onto the vocabulary, then softmax (paper 3.4).

The model returns the logits: losses and decoding work on them (log-softmax, sampling filters).
The softmax itself is computed only when asked for from outside (`step_by_step`, set by
`glassformer.inspect.step_by_step`), where it passes through `hook_probs` to be looked at.
"""

from __future__ import annotations

import torch
from torch import nn

from glassformer.nn.hooks import HookPoint


class OutputProjection(nn.Module):
    """Logits = x W_out (+ b): one score per vocabulary entry at every position.

    Args:
        d_model: width of the decoder output.
        vocab_size: number of (target) tokens V.
        bias: a bias per token (the paper has none).
        scale: a factor on the decoder output before the projection (T5 v1.0: d_model**-0.5).
    """

    def __init__(self, d_model: int, vocab_size: int, bias: bool = False, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.proj = nn.Linear(d_model, vocab_size, bias=bias)
        self.step_by_step = False
        self.hook_logits = HookPoint(("B", "T", "V"), "logits: decoder output x W_out")
        self.hook_probs = HookPoint(("B", "T", "V"), "softmax over the vocabulary")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder output [B, T, d_model] -> logits [B, T, V]."""
        if self.scale != 1.0:
            x = x * self.scale
        logits = self.hook_logits(self.proj(x))
        if self.step_by_step:
            self.hook_probs(torch.softmax(logits.float(), dim=-1))
        return logits
