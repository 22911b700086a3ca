"""Embeddings (paper 3.4): token vectors scaled by sqrt(d_model), plus positions and optional segments."""

from __future__ import annotations

import math

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.nn.hooks import HookPoint
from glassformer.nn.positional_encoding import LearnedPositions, SinusoidalPositions
from glassformer.nn.rms_norm import norm_layer


class Embeddings(nn.Module):
    """Token embedding (times sqrt(d_model) if configured) + position (+ segment), then norm/dropout.

    Args:
        vocab_size: rows of the token table (source or target vocabulary).
    """

    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.max_len = config.max_len
        self.scale = math.sqrt(config.d_model) if config.scale_embeddings else 1.0
        self.token = nn.Embedding(vocab_size, config.d_model)
        # Rotary positions are not added here: they rotate queries and keys inside attention.
        tables = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions}
        table = tables.get(config.positions)
        self.position = table(config.max_len, config.d_model) if table is not None else None
        self.segment = nn.Embedding(config.n_segments, config.d_model) if config.n_segments else None
        self.norm = norm_layer(config) if config.embedding_norm else None
        self.dropout = nn.Dropout(config.dropout)
        self.hook_tokens = HookPoint(("B", "T", "d_model"), "token embedding lookup")
        self.hook_positions = HookPoint(("B", "T", "d_model"), "positional encoding")
        self.hook_sum = HookPoint(("B", "T", "d_model"), "embedding + position")
        self.hook_norm = HookPoint(("B", "T", "d_model"), "embedding LayerNorm")

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
        offset: int = 0,
    ) -> torch.Tensor:
        """Embed token ids.

        Args:
            ids: [B, T] token ids.
            positions: [B, T] position ids; defaults to offset, ..., offset + T - 1.
            segments: [B, T] segment ids (models with segment embeddings; default all 0).
            offset: first position when positions is None (incremental decoding).
        Returns:
            [B, T, d_model].
        """
        t = ids.size(1)
        if positions is None:
            if offset + t > self.max_len:
                raise UserError(
                    f"sequence of {offset + t} tokens is longer than the model's maximum of {self.max_len}"
                )
            positions = torch.arange(offset, offset + t, device=ids.device)[None]
        tokens = self.token(ids)
        tokens = self.hook_tokens(tokens * self.scale if self.scale != 1.0 else tokens)
        if self.position is None:
            x = tokens
        else:
            x = tokens + self.hook_positions(self.position(positions).expand_as(tokens))
        if self.segment is not None:
            x = x + self.segment(torch.zeros_like(ids) if segments is None else segments)
        if self.position is not None or self.segment is not None:
            x = self.hook_sum(x)
        if self.norm is not None:
            x = self.hook_norm(self.norm(x))
        return self.dropout(x)
