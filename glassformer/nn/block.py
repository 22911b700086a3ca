"""Encoder and decoder layers, composed from attention, feed-forward and residual parts."""

from __future__ import annotations

import torch

from glassformer.config import ModelConfig
from glassformer.nn.attention import MultiHeadAttention
from glassformer.nn.feedforward import FeedForward
from glassformer.nn.kv_cache import LayerCache
from glassformer.nn.module import Module
from glassformer.nn.residual import residual


class EncoderLayer(Module):
    """Self-attention then feed-forward, each inside residual + LayerNorm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(config)
        self.self_attn_residual = residual(config)
        self.ffn = FeedForward(config)
        self.ffn_residual = residual(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, S, d_model], mask [B, 1, 1, S] (True at real tokens) -> [B, S, d_model]."""
        x = self.self_attn_residual(x, lambda h: self.self_attn(h, mask=mask))
        return self.ffn_residual(x, self.ffn)


class DecoderLayer(Module):
    """Masked self-attention, cross-attention to the encoder output, feed-forward.

    Args:
        cross: build the cross-attention sublayer; a decoder-only model (GPT) has none.
    """

    def __init__(self, config: ModelConfig, cross: bool = True):
        super().__init__()
        self.self_attn = MultiHeadAttention(config)
        self.self_attn_residual = residual(config)
        self.cross_attn = MultiHeadAttention(config) if cross else None
        self.cross_attn_residual = residual(config) if cross else None
        self.ffn = FeedForward(config)
        self.ffn_residual = residual(config)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: LayerCache | None = None,
        cache_pos: int = 0,
    ) -> torch.Tensor:
        """Run one decoder layer.

        Args:
            x: target stream [B, T, d_model], at positions cache_pos ... cache_pos + T - 1.
            memory: encoder output [B, S, d_model] (encoder-decoder only).
            self_mask: key padding of the target [B, 1, 1, cache_pos + T], or None; the causal
                mask is always applied on top.
            memory_mask: key padding of the source [B, 1, 1, S].
            cache: this layer's KV cache when decoding incrementally.
        Returns:
            [B, T, d_model].
        """
        self_kv = cache.self_attn if cache is not None else None
        x = self.self_attn_residual(
            x, lambda h: self.self_attn(h, mask=self_mask, causal=True, cache=self_kv, cache_pos=cache_pos)
        )
        if self.cross_attn is not None:
            cross_kv = cache.cross_attn if cache is not None else None
            x = self.cross_attn_residual(
                x, lambda h: self.cross_attn(h, memory=memory, mask=memory_mask, cache=cross_kv)
            )
        return self.ffn_residual(x, self.ffn)
