"""The paper's model (Figure 1): embeddings, an encoder stack, a decoder stack, the output projection
(or, with config.head "classify" or "qa", BART's sequence classifier or span head in its place)."""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.models.heads import DecoderClassificationHead
from glassformer.models.qa_head import SpanHead
from glassformer.nn.decoder import Decoder
from glassformer.nn.embedding import Embeddings
from glassformer.nn.encoder import Encoder
from glassformer.nn.kv_cache import DecoderCache
from glassformer.nn.masks import padding_mask
from glassformer.nn.output import OutputProjection

_HEADS = {"classify": DecoderClassificationHead, "qa": SpanHead}


class EncoderDecoder(nn.Module):
    """Encoder-decoder Transformer for translation and other sequence-to-sequence tasks."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.src_embed = Embeddings(config, config.vocab_size)
        self.tgt_embed = Embeddings(config, config.target_vocab_size)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config, config.decoder_layers, cross=True)
        self.head = _HEADS[config.head](config) if config.head != "none" else None
        if self.head is None:
            scale = config.d_model**-0.5 if config.scale_output else 1.0
            self.lm_head = OutputProjection(config.d_model, config.target_vocab_size, bias=config.output_bias, scale=scale)
            if config.tie_output:
                self.lm_head.proj.weight = self.tgt_embed.token.weight
        if config.tie_embeddings:
            self.src_embed.token.weight = self.tgt_embed.token.weight

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Source ids [B, S] -> encoder output [B, S, d_model].

        Args:
            src_mask: [B, 1, 1, S], True at real tokens; defaults to the tokens that are not pad_id.
        """
        if src_mask is None:
            src_mask = padding_mask(src, self.config.pad_id)
        return self.encoder(self.src_embed(src), src_mask)

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        cache_pos: int = 0,
    ) -> torch.Tensor:
        """Target ids so far [B, T] and the encoder output -> next-token logits [B, T, V].

        Args:
            memory: encoder output [B, S, d_model].
            src_mask: [B, 1, 1, S] source padding (True at real tokens), or None for none.
            tgt_mask: [B, 1, 1, cache_pos + T] target padding, or None: right-padded targets
                need none, since the causal mask already hides what follows each position.
            cache: KV cache from `new_cache` for incremental decoding; tgt then holds the
                tokens at positions cache_pos ... cache_pos + T - 1 only.
        """
        return self.lm_head(self.decoder_states(tgt, memory, src_mask, tgt_mask, cache, cache_pos))

    def decoder_states(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        cache_pos: int = 0,
    ) -> torch.Tensor:
        """The decoder's last layer output [B, T, d_model], which the LM head or classifier reads;
        the arguments are decode's."""
        return self.decoder(self.tgt_embed(tgt, offset=cache_pos), memory, tgt_mask, src_mask, cache, cache_pos)

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits [B, T, V] for source [B, S] and shifted target [B, T]; with the
        classify head, sequence logits [B, n_labels] from the decoder's state at the last position
        tgt_mask marks real (the last one when None); with the span head, answer start/end logits
        [B, 2, T] from the decoder's state at each position. BART classifies and answers from a
        text by feeding the source shifted right as the target (for "classify" with the source's
        padding as tgt_mask; BartForQuestionAnswering gives its decoder no padding mask)."""
        if src_mask is None:
            src_mask = padding_mask(src, self.config.pad_id)
        memory = self.encode(src, src_mask)
        if isinstance(self.head, DecoderClassificationHead):
            real = None if tgt_mask is None else tgt_mask[:, 0, 0, -tgt.size(1):]
            return self.head(self.decoder_states(tgt, memory, src_mask, tgt_mask), real)
        if self.head is not None:
            return self.head(self.decoder_states(tgt, memory, src_mask, tgt_mask))
        return self.decode(tgt, memory, src_mask, tgt_mask)

    def new_cache(self, max_len: int | None = None) -> DecoderCache:
        """An empty KV cache for incremental decoding, up to max_len target positions."""
        return DecoderCache.empty(len(self.decoder.layers), max_len or self.config.max_len, cross=True)
