"""Pure filters on next-token logits [B, V]: each returns new logits, with -inf where a token is ruled out.

Order used by `glassformer.generate.sampling.logits_to_probs`: penalties (repetition,
no-repeat n-gram) on the raw logits, then temperature, then top-k, top-p and min-p.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

NEG_INF = float("-inf")

# Cumulative mass within this of p counts as reaching p, so that rounding in the softmax
# (0.5 + 0.3 summing to 0.79999995) does not pull one more token into the nucleus.
_MASS_TOLERANCE = 1e-6


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide by the temperature: below 1 sharpens the distribution, above 1 flattens it.

    Args:
        logits: [B, V].
        temperature: > 0 (greedy decoding is the limit at 0; ask for it instead).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; use greedy decoding for 0")
    return logits if temperature == 1.0 else logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest logits of each row (and any tied with the k-th).

    Args:
        logits: [B, V].
        k: >= 1; a k at or above V keeps everything.
    """
    if k < 1:
        raise ValueError(f"top-k must be >= 1, got {k}")
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # [B, 1]
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose total probability reaches p (nucleus).

    Args:
        logits: [B, V].
        p: in (0, 1]; 1 keeps everything.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top-p must be in (0, 1], got {p}")
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits.double(), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # mass of the tokens ranked above each one
    # A token is needed while the tokens above it have not yet reached p; the first always is.
    drop_sorted = mass_before >= p - _MASS_TOLERANCE
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, NEG_INF)


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens whose probability is at least min_p times the most probable token's.

    Args:
        logits: [B, V].
        min_p: in [0, 1]; 0 keeps everything.
    """
    if not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min-p must be in [0, 1], got {min_p}")
    if min_p == 0.0:
        return logits
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p): no softmax needed.
    threshold = logits.max(dim=-1, keepdim=True).values + math.log(min_p)
    return logits.masked_fill(logits < threshold, NEG_INF)


def repetition_penalty(
    logits: torch.Tensor, previous: torch.Tensor, penalty: float, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Make tokens already present less likely (CTRL): positive logits / penalty, negative ones * penalty.

    Args:
        logits: [B, V].
        previous: ids seen so far [B, L] (prompt and generated tokens).
        penalty: >= 1 discourages repeats; 1 changes nothing.
        valid: [B, L], False at padding, which must not count as seen.
    """
    if penalty <= 0:
        raise ValueError(f"repetition penalty must be > 0, got {penalty}")
    if penalty == 1.0 or previous.numel() == 0:
        return logits
    weight = torch.ones_like(previous, dtype=logits.dtype) if valid is None else valid.to(logits.dtype)
    seen = torch.zeros_like(logits).scatter_add_(-1, previous, weight) > 0  # [B, V]
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def banned_ngram_tokens(sequence: Sequence[int], n: int) -> set[int]:
    """The tokens that would complete an n-gram already present in sequence.

    Args:
        sequence: the ids so far of one row, without padding.
        n: n-gram size >= 1 (n = 1 bans every token already used).
    """
    if n < 1 or len(sequence) < n - 1:
        return set()
    prefix = tuple(sequence[len(sequence) - (n - 1):]) if n > 1 else ()
    banned = set()
    for start in range(len(sequence) - n + 1):
        if tuple(sequence[start:start + n - 1]) == prefix:
            banned.add(sequence[start + n - 1])
    return banned


def no_repeat_ngram_filter(logits: torch.Tensor, sequences: Sequence[Sequence[int]], n: int) -> torch.Tensor:
    """Rule out every token that would repeat an n-gram of its row.

    Args:
        logits: [B, V].
        sequences: B id lists (prompt and generated so far, without padding).
        n: n-gram size; 0 disables the filter.
    """
    if n <= 0:
        return logits
    rows, cols = [], []
    for row, sequence in enumerate(sequences):
        for token in banned_ngram_tokens(list(sequence), n):
            rows.append(row)
            cols.append(token)
    if not rows:
        return logits
    logits = logits.clone()
    logits[torch.tensor(rows), torch.tensor(cols)] = NEG_INF
    return logits
