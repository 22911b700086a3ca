"""A decoder-only Transformer language model (GPT): masked self-attention blocks and an LM head."""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.decoder import Decoder
from glassformer.nn.embedding import Embeddings
from glassformer.nn.kv_cache import DecoderCache
from glassformer.nn.output import OutputProjection
from glassformer.nn.rotary import RotaryEmbedding


class DecoderOnly(nn.Module):
    """Next-token prediction over one stream of tokens."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = Embeddings(config, config.vocab_size)
        self.rotary = RotaryEmbedding(config) if config.positions == "rotary" else None
        self.decoder = Decoder(config, config.n_layers, cross=False)
        self.lm_head = OutputProjection(config.d_model, config.vocab_size, bias=config.output_bias)
        if config.tie_output:
            self.lm_head.proj.weight = self.embed.token.weight

    def forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        cache_pos: int = 0,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Token ids [B, T] -> next-token logits [B, T, V] ([B, 1, V] with last_only).

        Args:
            mask: key padding [B, 1, 1, cache_pos + T], True at real tokens, or None when there
                is no padding before real tokens (right padding is hidden by the causal mask).
            positions: [B, T] position ids (left-padded batches count from each first real token).
            cache: KV cache from `new_cache`; ids then hold positions cache_pos ... cache_pos + T - 1.
            last_only: project only the last position onto the vocabulary (generation needs no
                other, and a [B, T, V] product over a whole prompt is the largest one there is).
        """
        x = self.embed(ids, positions=positions, offset=cache_pos)
        rope = None
        if self.rotary is not None:
            if positions is None:
                positions = torch.arange(cache_pos, cache_pos + ids.size(1), device=ids.device)[None]
            rope = self.rotary(positions)  # cos, sin [B|1, 1, T, D], shared by every layer
        hidden = self.decoder(x, None, mask, None, cache, cache_pos, rope)
        if last_only:
            hidden = hidden[:, -1:]
        return self.lm_head(hidden)

    def new_cache(self, max_len: int | None = None) -> DecoderCache:
        """An empty KV cache for incremental decoding, up to max_len positions."""
        return DecoderCache.empty(len(self.decoder.layers), max_len or self.config.max_len, cross=False)
