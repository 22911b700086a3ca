"""Induction heads: a head that finds the earlier occurrence of the current token and copies what followed it.

Shown on sequences of random tokens repeated once, <start> r1 ... rn r1 ... rn, where the second
half can be predicted only by looking back: at a position i of the second copy (token r), the
next token is the one after r's first occurrence, at i - n + 1.

- the prefix-matching score of a head is the mean attention from each second-copy position i to
  i - n + 1, the token after the earlier occurrence (an induction head puts most of its weight there);
- the previous-token score is the mean attention from each position to the one before it (the
  head of the layer below that an induction head builds on);
- `repeat_loss` is the model's loss on the second copy, which an ablated induction head raises.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.inspect.recorder import record


def repeated_tokens(
    batch: int, length: int, low: int, high: int, start_id: int, generator: torch.Generator
) -> torch.Tensor:
    """<start> followed by `length` random tokens in [low, high), twice: [batch, 1 + 2 * length]."""
    half = torch.randint(low, high, (batch, length), generator=generator)
    return torch.cat([torch.full((batch, 1), start_id), half, half], dim=1)


def _probs(model: nn.Module, ids: torch.Tensor) -> dict[int, torch.Tensor]:
    """Every self-attention's probabilities by layer: {layer: [B, H, T, T]}."""
    with torch.no_grad(), record(model, names="decoder.layers.*.self_attn.hook_probs", values=True) as rec:
        model(ids)
    return {int(r.name.split(".")[2]): r.value for r in rec.select("*")}


def prefix_matching_score(model: nn.Module, ids: torch.Tensor, length: int) -> torch.Tensor:
    """Mean attention from each second-copy position to the token after its first occurrence.

    Args:
        ids: from `repeated_tokens`, [B, 1 + 2 * length].
    Returns:
        [n_layers, H].
    """
    queries = torch.arange(length + 1, 2 * length + 1)  # the second copy
    keys = queries - length + 1
    probs = _probs(model, ids)
    return torch.stack([probs[layer][:, :, queries, keys].mean(dim=(0, 2)) for layer in sorted(probs)])


def previous_token_score(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Mean attention from each position (but the first) to the one before it: [n_layers, H]."""
    queries = torch.arange(1, ids.size(1))
    probs = _probs(model, ids)
    return torch.stack([probs[layer][:, :, queries, queries - 1].mean(dim=(0, 2)) for layer in sorted(probs)])


def repeat_loss(model: nn.Module, ids: torch.Tensor, length: int) -> float:
    """Cross-entropy of the predictions of the second copy's tokens (all but its first, which is random)."""
    with torch.no_grad():
        logits = model(ids)[:, length + 1:-1]  # position i predicts token i + 1
    return float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, length + 2:].reshape(-1)))
