"""Cross-attention (paper 3.2.3): the decoder's queries attend to the encoder's output."""

from __future__ import annotations

import torch

from glassformer.nn.kv_cache import MemoryKV
from glassformer.nn.multi_head_attention import MultiHeadAttention


class CrossAttention(MultiHeadAttention):
    """Queries from the decoder stream, keys and values from the encoder output ("memory")."""

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: MemoryKV | None = None,
    ) -> torch.Tensor:
        """x [B, T, d_model] attends to memory [B, S, d_model] -> [B, T, d_model].

        Args:
            mask: source padding [B, 1, 1, S], True at real tokens.
            cache: keeps the memory's keys and values after the first decoding step.
        """
        q = self.split_heads(self.hook_q(self.w_q(x)))  # [B, H, T, D]
        if cache is not None and cache.filled:
            k, v = cache.k, cache.v
        else:
            k = self.split_heads(self.hook_k(self.w_k(memory)))  # [B, H, S, D]
            v = self.split_heads(self.hook_v(self.w_v(memory)))
            if cache is not None:
                cache.store(k, v)
        return self.attend(q, k, v, mask)
