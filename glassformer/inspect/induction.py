"""Induction heads: a head that finds the earlier occurrence of the current token and copies what followed it.

Shown on sequences of random tokens repeated once, <start> r1 ... rn r1 ... rn, where the second
half can be predicted only by looking back: at a position i of the second copy (token r), the
next token is the one after r's first occurrence, at i - n + 1.

- the prefix-matching score of a head is the mean attention from each second-copy position i to
  i - n + 1, the token after the earlier occurrence (an induction head puts most of its weight there);
- the previous-token score is the mean attention from each position to the one before it (the
  head of the layer below that an induction head builds on);
- with `shift` and `distance` the two scores also find a shifted circuit: a layer-0 head looking
  s + 1 back puts the token r at position j + s + 1 (j: r's first occurrence), another looking s
  back puts the token after it there, and the layer-1 head attends to j + 1 + s instead of j + 1;
- `repeat_loss` is the model's loss on the second copy, which an ablated induction head raises.

`repeated_segments` makes training data on which only induction works: with the whole sequence
repeated at a fixed length, a first-layer head can learn to look a fixed distance back instead.
Here a segment of random length is repeated at a random later offset among random tokens, so
the distance back to the earlier occurrence differs in every row; `in_context_accuracy` scores
the predictions that only the earlier occurrence makes possible.
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


def prefix_matching_score(model: nn.Module, ids: torch.Tensor, length: int, shift: int = 0) -> torch.Tensor:
    """Mean attention from each second-copy position to the token after its first occurrence.

    Args:
        ids: from `repeated_tokens`, [B, 1 + 2 * length].
        shift: look that many positions further on (0: the textbook score). An induction head can
            also read the next token where a layer-0 head looking shift + 1 back has copied it to.
    Returns:
        [n_layers, H].
    """
    if not 0 <= shift < length - 1:
        raise ValueError(f"shift {shift} must be in 0-{length - 2} for copies of {length} tokens")
    queries = torch.arange(length + 1 + shift, 2 * length + 1)  # the second copy, where the key exists
    keys = queries - length + 1 + shift
    probs = _probs(model, ids)
    return torch.stack([probs[layer][:, :, queries, keys].mean(dim=(0, 2)) for layer in sorted(probs)])


def previous_token_score(model: nn.Module, ids: torch.Tensor, distance: int = 1) -> torch.Tensor:
    """Mean attention from each position to the one `distance` before it (1: the previous token): [n_layers, H]."""
    queries = torch.arange(distance, ids.size(1))
    probs = _probs(model, ids)
    return torch.stack([probs[layer][:, :, queries, queries - distance].mean(dim=(0, 2)) for layer in sorted(probs)])


def repeat_loss(model: nn.Module, ids: torch.Tensor, length: int) -> float:
    """Cross-entropy of the predictions of the second copy's tokens (all but its first, which is random)."""
    with torch.no_grad():
        logits = model(ids)[:, length + 1:-1]  # position i predicts token i + 1
    return float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, length + 2:].reshape(-1)))


def repeated_segments(
    batch: int, length: int, low: int, high: int, start_id: int, generator: torch.Generator,
    min_segment: int = 4, max_segment: int = 12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens in which one segment of random length appears twice, at random places.

    Row b: <start>, then `length - 1` random tokens in [low, high); a segment of L tokens
    (min_segment <= L <= max_segment) starting at s1 is copied to start at s2 >= s1 + L.
    Returns:
        ids [batch, length] and a mask [batch, length], True at the tokens that the earlier
        occurrence predicts (the second copy but its first token, which is random).
    """
    if not 1 < min_segment <= max_segment or 2 * max_segment + 1 > length:
        raise ValueError(f"segments of {min_segment}-{max_segment} tokens do not fit twice in {length}")
    ids = torch.randint(low, high, (batch, length), generator=generator)
    ids[:, 0] = start_id
    predictable = torch.zeros(batch, length, dtype=torch.bool)
    for b in range(batch):
        size = int(torch.randint(min_segment, max_segment + 1, (1,), generator=generator))
        second = int(torch.randint(size + 1, length - size + 1, (1,), generator=generator))
        first = int(torch.randint(1, second - size + 1, (1,), generator=generator))
        ids[b, second:second + size] = ids[b, first:first + size]
        predictable[b, second + 1:second + size] = True
    return ids, predictable


def in_context_accuracy(model: nn.Module, ids: torch.Tensor, predictable: torch.Tensor) -> float:
    """Fraction of the predictable tokens (from `repeated_segments`) that the model predicts greedily."""
    with torch.no_grad():
        guesses = model(ids[:, :-1]).argmax(dim=-1)  # position i predicts token i + 1
    wanted = predictable[:, 1:]
    return float((guesses[wanted] == ids[:, 1:][wanted]).float().mean())
