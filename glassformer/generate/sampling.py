"""How the next token is chosen from the model's logits: greedy, or sampled after filtering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from glassformer.errors import UserError
from glassformer.generate.logits import (
    apply_temperature,
    min_p_filter,
    no_repeat_ngram_filter,
    repetition_penalty,
    top_k_filter,
    top_p_filter,
)


@dataclass(frozen=True)
class Sampling:
    """The choice of the next token; the defaults are greedy decoding."""

    greedy: bool = True
    """Take the most probable token (after penalties); temperature and filters are then unused."""
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    """> 1 makes tokens already in the prompt or output less likely (CTRL's penalty)."""
    no_repeat_ngram: int = 0
    """Never produce an n-gram of this size twice; 0 allows repeats."""
    seed: int | None = None
    """Seed of the sampler's own torch.Generator; None draws from torch's global generator."""

    def __post_init__(self) -> None:
        checks = (
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature} (use greedy for 0)"),
            (self.top_k is None or self.top_k >= 1, f"top-k must be >= 1, got {self.top_k}"),
            (self.top_p is None or 0 < self.top_p <= 1, f"top-p must be in (0, 1], got {self.top_p}"),
            (self.min_p is None or 0 <= self.min_p <= 1, f"min-p must be in [0, 1], got {self.min_p}"),
            (self.repetition_penalty > 0, f"repetition penalty must be > 0, got {self.repetition_penalty}"),
            (self.no_repeat_ngram >= 0, f"no-repeat n-gram size must be >= 0, got {self.no_repeat_ngram}"),
        )
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator | None:
        """A fresh generator seeded with `seed` (None when unseeded)."""
        if self.seed is None:
            return None
        return torch.Generator(device=device).manual_seed(self.seed)


def logits_to_probs(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
) -> torch.Tensor:
    """Temperature, then top-k, top-p and min-p, then softmax.

    Args:
        logits: [B, V].
    Returns:
        probabilities [B, V], zero outside the kept tokens.
    """
    logits = apply_temperature(logits.float(), temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    if min_p is not None:
        logits = min_p_filter(logits, min_p)
    return torch.softmax(logits, dim=-1)


def sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row.

    Args:
        probs: [B, V], rows summing to 1.
    Returns:
        token ids [B].
    """
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def penalise(
    logits: torch.Tensor,
    sampling: Sampling,
    previous: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """The repetition and no-repeat n-gram penalties of `sampling`, applied to raw logits.

    Args:
        logits: [B, V].
        previous: ids so far [B, L] (prompt and output); valid [B, L] is False at padding.
    """
    if previous is None:
        return logits
    logits = repetition_penalty(logits, previous, sampling.repetition_penalty, valid)
    if sampling.no_repeat_ngram > 0:
        keep = torch.ones_like(previous, dtype=torch.bool) if valid is None else valid
        rows: Sequence[list[int]] = [row[mask].tolist() for row, mask in zip(previous, keep)]
        logits = no_repeat_ngram_filter(logits, rows, sampling.no_repeat_ngram)
    return logits


def choose_next(
    logits: torch.Tensor,
    sampling: Sampling,
    previous: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The next token of every row under `sampling`.

    Args:
        logits: the model's last-position logits [B, V].
        previous, valid: as `penalise`.
    Returns:
        token ids [B].
    """
    logits = raw = logits.float()
    if previous is not None:
        logits = penalise(raw, sampling, previous, valid)
        # Bans can rule out a whole row (n-gram blocking on a tiny vocabulary); such a row falls
        # back to its unpenalised logits rather than producing NaN.
        dead = torch.isinf(logits).all(dim=-1, keepdim=True)
        logits = torch.where(dead, raw, logits)
    if sampling.greedy:
        return logits.argmax(dim=-1)
    probs = logits_to_probs(logits, sampling.temperature, sampling.top_k, sampling.top_p, sampling.min_p)
    return sample(probs, generator)
