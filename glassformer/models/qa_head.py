"""The span head of extractive question answering: where the answer starts and where it ends."""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig


class SpanHead(nn.Module):
    """One linear map d_model -> 2 per position, giving start and end logits (BERT's SQuAD head).

    The output is [B, 2, T] rather than [B, T, 2]: row 0 scores each position as the answer's
    start, row 1 as its end, so each row is a distribution over positions, and the token
    cross-entropy of the other heads scores (start, end) targets [B, 2] unchanged.
    The layer is named as Hugging Face's ...ForQuestionAnswering classes name it (qa_outputs, with
    start logits in output 0), so its weights map by name. Each family reads it from its last
    hidden states: an encoder's (BERT), a causal decoder's (GPT-2, LLaMA: a position has read only
    what precedes it), or an encoder-decoder's decoder reading the text shifted right (BART).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.qa_outputs = nn.Linear(config.d_model, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, T, d_model] -> logits [B, 2, T] (start, end)."""
        return self.qa_outputs(hidden).transpose(1, 2)
