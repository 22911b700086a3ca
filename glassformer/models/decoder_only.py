"""A decoder-only Transformer language model (GPT): masked self-attention blocks and an LM head
(or, with config.head, a sequence or token classifier or an answer-span head in its place)."""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.models.heads import LastTokenClassificationHead, TokenClassificationHead
from glassformer.models.qa_head import SpanHead
from glassformer.nn.decoder import Decoder
from glassformer.nn.embedding import Embeddings
from glassformer.nn.kv_cache import DecoderCache
from glassformer.nn.output import OutputProjection
from glassformer.nn.rotary import RotaryEmbedding

_HEADS = {"classify": LastTokenClassificationHead, "tag": TokenClassificationHead, "qa": SpanHead}


class DecoderOnly(nn.Module):
    """Next-token prediction over one stream of tokens, or a label for the sequence ("classify")
    or for each token ("tag"), or an answer's start and end ("qa": GPT-2's and LLaMA's
    ...ForQuestionAnswering, which score each position from the causal hidden states) when
    config.head names a head (the model then has no LM head)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = Embeddings(config, config.vocab_size)
        self.rotary = RotaryEmbedding(config) if config.positions == "rotary" else None
        self.decoder = Decoder(config, config.n_layers, cross=False)
        self.head = _HEADS[config.head](config) if config.head != "none" else None
        if self.head is None:
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
        """Token ids [B, T] -> next-token logits [B, T, V] ([B, 1, V] with last_only); with a
        classifier head, sequence logits [B, n_labels] ("classify": the last real token, as the
        mask says) or token logits [B, T, n_labels] ("tag"); with the span head, answer
        start/end logits [B, 2, T] ("qa").

        Args:
            mask: key padding [B, 1, 1, cache_pos + T], True at real tokens, or None when there
                is no padding before real tokens (right padding is hidden by the causal mask).
            positions: [B, T] position ids (left-padded batches count from each first real token).
            cache: KV cache from `new_cache`; ids then hold positions cache_pos ... cache_pos + T - 1.
            last_only: project only the last position onto the vocabulary (generation needs no
                other, and a [B, T, V] product over a whole prompt is the largest one there is).
        """
        hidden = self.hidden_states(ids, mask, positions, cache, cache_pos)
        if isinstance(self.head, LastTokenClassificationHead):
            real = None if mask is None else mask[:, 0, 0, -ids.size(1):]  # [B, T]
            return self.head(hidden, real)
        if self.head is not None:
            return self.head(hidden)
        if last_only:
            hidden = hidden[:, -1:]
        return self.lm_head(hidden)

    def hidden_states(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        cache_pos: int = 0,
    ) -> torch.Tensor:
        """Token ids [B, T] -> the last layer's output [B, T, d_model] (after the final norm), which
        the LM head or classifier reads; the arguments are forward's."""
        x = self.embed(ids, positions=positions, offset=cache_pos)
        rope = None
        if self.rotary is not None:
            if positions is None:
                positions = torch.arange(cache_pos, cache_pos + ids.size(1), device=ids.device)[None]
            rope = self.rotary(positions)  # cos, sin [B|1, 1, T, D], shared by every layer
        return self.decoder(x, None, mask, None, cache, cache_pos, rope)

    def new_cache(self, max_len: int | None = None) -> DecoderCache:
        """An empty KV cache for incremental decoding, up to max_len positions."""
        return DecoderCache.empty(len(self.decoder.layers), max_len or self.config.max_len, cross=False)
