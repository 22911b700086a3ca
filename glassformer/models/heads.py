"""The task heads: masked LM, sequence and token classification (BERT), and the decoder-only
sequence classifiers that read the last real token (GPT-2's and LLaMA's; BART's, through its
decoder). The span head of question answering, which every family may end in, is in qa_head.

The decoders' pre-softmax projection is `glassformer.nn.output.OutputProjection`.
"""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.feedforward import ACTIVATIONS


POOLER_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


class Pooler(nn.Module):
    """BERT's pooler: dense + tanh on the first token's hidden state (+ ReLU with
    config.pooler_activation "relu": DistilBERT's pre_classifier, which its classifier reads the same way)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.activation = POOLER_ACTIVATIONS[config.pooler_activation]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, T, d_model] -> [B, d_model]."""
        return self.activation(self.dense(hidden[:, 0]))


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


def last_real_position(real: torch.Tensor) -> torch.Tensor:
    """The index of the rightmost real token of each row (0 for a row without any).

    Args:
        real: [B, T] bool, True at real tokens.
    Returns:
        [B] int64.
    """
    positions = torch.arange(real.size(-1), device=real.device)
    return (positions * real.long()).argmax(-1)


class LastTokenClassificationHead(nn.Module):
    """Classifies a sequence from its last real token: under the causal mask only that position
    has read the whole text. The layer is named `score` and has no bias, as in Hugging Face's
    GPT2ForSequenceClassification and LlamaForSequenceClassification, which pool the rightmost
    token that is not padding the same way."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.score = nn.Linear(config.d_model, config.n_labels, bias=False)

    def forward(self, hidden: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        """hidden [B, T, d_model], real [B, T] (True at real tokens; None: all) -> logits [B, n_labels]."""
        if real is None:
            last = torch.full((hidden.size(0),), hidden.size(1) - 1, device=hidden.device)
        else:
            last = last_real_position(real)
        return self.score(hidden[torch.arange(hidden.size(0), device=hidden.device), last])


class DecoderClassificationHead(nn.Module):
    """BART's classification_head: the decoder's state at the last real position (the source's
    closing </s> when the decoder reads the source shifted right), then dense + tanh + out_proj."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.out_proj = nn.Linear(config.d_model, config.n_labels)

    def forward(self, hidden: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        """hidden [B, T, d_model], real [B, T] (True at real positions; None: all) -> logits [B, n_labels]."""
        last = last_real_position(real) if real is not None else torch.full(
            (hidden.size(0),), hidden.size(1) - 1, device=hidden.device)
        pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last]
        return self.out_proj(self.dropout(torch.tanh(self.dense(self.dropout(pooled)))))
