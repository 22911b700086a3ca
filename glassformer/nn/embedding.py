"""Token embeddings, positions (sinusoidal or learned) and optional segments (paper 3.4, 3.5)."""

from __future__ import annotations

import math

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.nn.hooks import HookPoint
from glassformer.nn.module import Module
from glassformer.nn.residual import apply_dropout


def sinusoidal_table(n_positions: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).

    Returns:
        [n_positions, d_model] float32; row 0 is [0, 1, 0, 1, ...].
    """
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, two_i / d_model)  # [L, ceil(d/2)]
    table = torch.zeros(n_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table.float()


class SinusoidalPositions(Module):
    """The paper's fixed positional encodings, looked up by position id."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]


class LearnedPositions(Module):
    """One learned vector per position (GPT-2, BERT)."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.weight[positions]


class Embeddings(Module):
    """Token embedding (times sqrt(d_model) if configured) + position (+ segment), then norm/dropout.

    Args:
        vocab_size: rows of the token table (source or target vocabulary).
    """

    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.max_len = config.max_len
        self.scale = math.sqrt(config.d_model) if config.scale_embeddings else 1.0
        self.token = nn.Embedding(vocab_size, config.d_model)
        positions = SinusoidalPositions if config.positions == "sinusoidal" else LearnedPositions
        self.position = positions(config.max_len, config.d_model)
        self.segment = nn.Embedding(config.n_segments, config.d_model) if config.n_segments else None
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps) if config.embedding_norm else None
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
        x = tokens + self.hook_positions(self.position(positions).expand_as(tokens))
        if self.segment is not None:
            x = x + self.segment(torch.zeros_like(ids) if segments is None else segments)
        x = self.hook_sum(x)
        if self.norm is not None:
            x = self.hook_norm(self.norm(x))
        return apply_dropout(self.dropout, x)
