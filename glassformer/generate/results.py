"""What decoding returns: plain dataclasses holding token ids without padding, scores and why each stopped."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Generation:
    """One generated sequence (greedy or sampled)."""

    tokens: list[int]
    """The generated ids, ending with the token that stopped it (<end> included)."""
    finish_reason: str
    """Why it stopped: end, stop_token, stop_string, max_new_tokens or max_length (see `stopping`)."""
    log_prob: float
    """Sum of the model's log-probabilities of `tokens` (before any penalty or filter)."""
    logits: torch.Tensor | None = None
    """The model's raw logits at each step [len(tokens), V], when asked for."""


@dataclass
class Hypothesis:
    """One entry of a beam search n-best list."""

    tokens: list[int]
    """The generated ids, ending with <end> unless the length limit came first."""
    score: float
    """log_prob divided by the length penalty; the n-best list is sorted on it."""
    log_prob: float
    """Sum of the model's log-probabilities of `tokens`."""
    finish_reason: str


@dataclass
class MaskFill:
    """The most probable tokens at one masked position."""

    position: int
    """Index of the mask token in the input ids."""
    tokens: list[int]
    probs: list[float]
    """Softmax probabilities of `tokens`, highest first."""
