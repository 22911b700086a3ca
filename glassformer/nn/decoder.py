"""The decoder (paper 3.1): N layers of masked self-attention, cross-attention and feed-forward.

A decoder-only model (GPT) uses the same layers without cross-attention.
"""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.add_norm import residual
from glassformer.nn.cross_attention import CrossAttention
from glassformer.nn.gated_feedforward import feed_forward
from glassformer.nn.hooks import HookPoint
from glassformer.nn.kv_cache import DecoderCache, LayerCache
from glassformer.nn.multi_head_attention import Rope, SelfAttention
from glassformer.nn.relative_position_bias import RelativePositionBias
from glassformer.nn.rms_norm import norm_layer


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder output, feed-forward.

    Args:
        cross: build the cross-attention sublayer; a decoder-only model (GPT) has none.
    """

    def __init__(self, config: ModelConfig, cross: bool = True):
        super().__init__()
        self.self_attn = SelfAttention(config)
        self.self_attn_residual = residual(config)
        self.cross_attn = CrossAttention(config) if cross else None
        self.cross_attn_residual = residual(config) if cross else None
        self.ffn = feed_forward(config)
        self.ffn_residual = residual(config)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: LayerCache | None = None,
        cache_pos: int = 0,
        rope: Rope | None = None,
        position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run one decoder layer.

        Args:
            x: target stream [B, T, d_model], at positions cache_pos ... cache_pos + T - 1.
            memory: encoder output [B, S, d_model] (encoder-decoder only).
            self_mask: key padding of the target [B, 1, 1, cache_pos + T], or None; the causal
                mask is always applied on top.
            memory_mask: key padding of the source [B, 1, 1, S].
            cache: this layer's KV cache when decoding incrementally.
            rope: cos and sin of the rotary angles of x's positions (models with rotary positions).
            position_bias: [1, H, T, cache_pos + T] added to the self-attention scores (T5).
        Returns:
            [B, T, d_model].
        """
        self_kv = cache.self_attn if cache is not None else None
        x = self.self_attn_residual(
            x, lambda h: self.self_attn(
                h, mask=self_mask, causal=True, cache=self_kv, cache_pos=cache_pos, rope=rope, position_bias=position_bias,
            )
        )
        if self.cross_attn is not None:
            cross_kv = cache.cross_attn if cache is not None else None
            x = self.cross_attn_residual(x, lambda h: self.cross_attn(h, memory, mask=memory_mask, cache=cross_kv))
        return self.ffn_residual(x, self.ffn)


class Decoder(nn.Module):
    """N decoder layers, with the final LayerNorm that pre-norm models need, and T5's causal
    relative position bias, computed once here for the new positions and shared by the layers.

    Args:
        n_layers: the stack's depth.
        cross: whether the layers attend to an encoder output.
    """

    def __init__(self, config: ModelConfig, n_layers: int, cross: bool):
        super().__init__()
        relative = config.positions == "relative"
        self.position_bias = RelativePositionBias(config, bidirectional=False) if relative else None
        self.layers = nn.ModuleList(DecoderLayer(config, cross=cross) for _ in range(n_layers))
        self.final_norm = norm_layer(config) if config.use_final_norm else None
        self.hook_out = HookPoint(("B", "T", "d_model"), "decoder output")

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        cache_pos: int = 0,
        rope: Rope | None = None,
    ) -> torch.Tensor:
        """Arguments as `DecoderLayer.forward`; cache holds one LayerCache per layer."""
        bias = None
        if self.position_bias is not None:
            t = x.size(1)
            bias = self.position_bias(t, cache_pos + t, offset=cache_pos)  # [1, H, T, cache_pos + T]
        for i, layer in enumerate(self.layers):
            layer_cache = cache.layers[i] if cache is not None else None
            x = layer(x, memory, self_mask, memory_mask, layer_cache, cache_pos, rope, bias)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.hook_out(x)
