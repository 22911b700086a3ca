"""The encoder-only task heads: masked LM, sequence and token classification (BERT).

The decoders' pre-softmax projection is `glassformer.nn.output.OutputProjection`.
"""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.feedforward import ACTIVATIONS


class Pooler(nn.Module):
    """BERT's pooler: dense + tanh on the first token's hidden state."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, T, d_model] -> [B, d_model]."""
        return torch.tanh(self.dense(hidden[:, 0]))


class MaskedLMHead(nn.Module):
    """BERT's masked-LM head: dense + activation + LayerNorm, then a projection to the vocabulary."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.activation = ACTIVATIONS[config.activation]
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.decoder = nn.Linear(config.d_model, config.vocab_size, bias=True)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, T, d_model] -> logits [B, T, V]."""
        return self.decoder(self.norm(self.activation(self.dense(hidden))))


class SequenceClassificationHead(nn.Module):
    """Classifies a whole sequence from its first token (pooled when the model has a pooler)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.n_labels)

    def forward(self, first: torch.Tensor) -> torch.Tensor:
        """[B, d_model] -> logits [B, n_labels]."""
        return self.classifier(self.dropout(first))


class TokenClassificationHead(nn.Module):
    """Classifies every token (tagging, named entities)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.n_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, T, d_model] -> logits [B, T, n_labels]."""
        return self.classifier(self.dropout(hidden))
