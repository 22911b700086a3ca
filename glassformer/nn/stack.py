"""Stacks of N encoder or decoder layers, with the final LayerNorm that pre-norm models need."""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.block import DecoderLayer, EncoderLayer
from glassformer.nn.hooks import HookPoint
from glassformer.nn.kv_cache import DecoderCache
from glassformer.nn.module import Module


class Encoder(Module):
    """N encoder layers."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.norm_eps) if config.use_final_norm else None
        self.hook_out = HookPoint(("B", "S", "d_model"), "encoder output")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, S, d_model], mask [B, 1, 1, S] -> [B, S, d_model]."""
        for layer in self.layers:
            x = layer(x, mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.hook_out(x)


class Decoder(Module):
    """N decoder layers; with cross=False they are GPT blocks (no cross-attention).

    Args:
        n_layers: the stack's depth.
        cross: whether the layers attend to an encoder output.
    """

    def __init__(self, config: ModelConfig, n_layers: int, cross: bool):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config, cross=cross) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.norm_eps) if config.use_final_norm else None
        self.hook_out = HookPoint(("B", "T", "d_model"), "decoder output")

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        cache_pos: int = 0,
    ) -> torch.Tensor:
        """Arguments as `DecoderLayer.forward`; cache holds one LayerCache per layer."""
        for i, layer in enumerate(self.layers):
            layer_cache = cache.layers[i] if cache is not None else None
            x = layer(x, memory, self_mask, memory_mask, layer_cache, cache_pos)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.hook_out(x)
