"""An encoder-only Transformer (BERT): bidirectional self-attention, then a task head."""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.models.heads import (
    MaskedLMHead,
    Pooler,
    SequenceClassificationHead,
    TokenClassificationHead,
)
from glassformer.models.qa_head import SpanHead
from glassformer.nn.embedding import Embeddings
from glassformer.nn.encoder import Encoder
from glassformer.nn.masks import padding_mask

_HEADS = {
    "mlm": MaskedLMHead, "classify": SequenceClassificationHead, "tag": TokenClassificationHead, "qa": SpanHead,
}


class EncoderOnly(nn.Module):
    """Encoder stack with the head config.head names ("none" returns the hidden states).

    Output of forward: hidden [B, T, d_model] ("none"), token logits [B, T, V] ("mlm"),
    sequence logits [B, n_labels] ("classify"), token logits [B, T, n_labels] ("tag") or answer
    start/end logits [B, 2, T] ("qa").
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = Embeddings(config, config.vocab_size)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config) if config.pooler else None
        self.head = _HEADS[config.head](config) if config.head != "none" else None
        if config.head == "mlm" and config.tie_output:
            self.head.decoder.weight = self.embed.token.weight

    def encode(
        self, ids: torch.Tensor, mask: torch.Tensor | None = None, segments: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token ids [B, T] -> hidden states [B, T, d_model].

        Args:
            mask: [B, 1, 1, T], True at real tokens; defaults to the tokens that are not pad_id.
            segments: [B, T] segment ids for models with segment embeddings.
        """
        if mask is None:
            mask = padding_mask(ids, self.config.pad_id)
        return self.encoder(self.embed(ids, segments=segments), mask)

    def pooled(self, hidden: torch.Tensor) -> torch.Tensor:
        """The sequence summary [B, d_model]: the pooler's output, or the first token's state."""
        return self.pooler(hidden) if self.pooler is not None else hidden[:, 0]

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor | None = None, segments: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.encode(ids, mask, segments)
        if self.head is None:
            return hidden
        if isinstance(self.head, SequenceClassificationHead):
            return self.head(self.pooled(hidden))
        return self.head(hidden)
