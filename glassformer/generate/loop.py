"""The token-by-token loop both model families share; they differ only in their `Stepper`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from glassformer.generate.results import Generation
from glassformer.generate.sampling import Sampling, choose_next
from glassformer.generate.stopping import Stopping, stop_reason

OnToken = Callable[[int, int], None]
"""Streaming callback: on_token(batch_index, token_id), called as soon as a token is chosen."""


class Stepper(Protocol):
    """Runs the model: the whole prompt once, then one new token per row at a time."""

    def prefill(self) -> torch.Tensor:
        """Logits [B, V] for the token after the prompt."""

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append tokens [B] to every row; logits [B, V] for the token after them."""


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a model without any)."""
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def decode_loop(
    stepper: Stepper,
    max_new: list[int],
    sampling: Sampling,
    stopping: Stopping,
    pad_id: int,
    previous: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    on_token: OnToken | None = None,
    keep_logits: bool = False,
) -> list[Generation]:
    """Prefill, then choose, record and feed one token per unfinished row until every row stops.

    Args:
        max_new: each row's length limit (from `stopping.room`), >= 1.
        pad_id: fed to rows that have stopped (their outputs are ignored).
        previous: ids before the output [B, L] that the penalties look at; valid [B, L] is
            False at their padding.
        keep_logits: return each row's raw logits per step in Generation.logits.
    """
    batch = len(max_new)
    penalties = sampling.repetition_penalty != 1.0 or sampling.no_repeat_ngram > 0
    logits = stepper.prefill()
    device = logits.device
    generator = sampling.generator(device) if not sampling.greedy else None
    if penalties:
        previous = torch.zeros(batch, 0, dtype=torch.long, device=device) if previous is None else previous
        valid = torch.ones_like(previous, dtype=torch.bool) if valid is None else valid
    tokens: list[list[int]] = [[] for _ in range(batch)]
    log_probs = [0.0] * batch
    kept: list[list[torch.Tensor]] = [[] for _ in range(batch)]
    reasons: list[str | None] = [None] * batch
    for _ in range(max(max_new)):
        active = torch.tensor([r is None for r in reasons], device=device)
        chosen = choose_next(logits, sampling, previous if penalties else None, valid, generator)
        chosen = chosen.masked_fill(~active, pad_id)  # [B]
        chosen_log_probs = torch.log_softmax(logits.float(), dim=-1).gather(-1, chosen[:, None])[:, 0]
        for row, (token, log_prob) in enumerate(zip(chosen.tolist(), chosen_log_probs.tolist())):
            if reasons[row] is not None:
                continue
            tokens[row].append(token)
            log_probs[row] += log_prob
            if keep_logits:
                kept[row].append(logits[row].float().cpu())
            if on_token is not None:
                on_token(row, token)
            reasons[row] = stop_reason(tokens[row], stopping, max_new[row])
        if all(r is not None for r in reasons):
            break
        if penalties:
            previous = torch.cat([previous, chosen[:, None]], dim=1)
            valid = torch.cat([valid, active[:, None]], dim=1)
        logits = stepper.step(chosen)
    return [
        Generation(tokens[row], reasons[row], log_probs[row], torch.stack(kept[row]) if keep_logits else None)
        for row in range(batch)
    ]
