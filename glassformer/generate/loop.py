"""The token-by-token loop both model families share; they differ only in their `Stepper`.

Each step is a small function: `next_tokens` chooses, `record` appends and checks the stops,
`stream` tells the callback, `extend_context` grows what the penalties look at, and the
`Stepper` feeds the tokens back to the model. A stepper that also offers `GreedySteps` (a
decoder-only model prepared by `glassformer.speed.optimize_for_inference`, decoded in C) runs plain
greedy decoding many steps per call, choosing each token itself; the loop then records the tokens
it returns. Streaming and stop strings get one step per call, so that each token is seen as soon as
it is chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


class GreedySteps(Protocol):
    """What a `Stepper` may also offer: several greedy steps in one call (the C decoding of
    `glassformer.speed`), the loop's own choosing and feeding without a return to Python per token."""

    def greedy_steps(
        self, tokens: torch.Tensor, limits: list[int], stop_ids: list[int], n: int
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Append tokens [B], then each step's most probable token, for at most n steps; row r stops
        after limits[r] more tokens (0: it has stopped) or on a token of stop_ids. Returns the tokens
        chosen [B, m] and their log-probabilities [B, m], m <= n, the last column not appended yet;
        None where it cannot (nothing was appended: the loop then steps one token at a time)."""


@dataclass(frozen=True)
class Partial:
    """One row's output so far."""

    tokens: tuple[int, ...] = ()
    log_prob: float = 0.0
    logits: tuple[torch.Tensor, ...] = ()
    """The raw logits [V] of each step, when they are kept."""
    reason: str | None = None
    """Why the row stopped; None while it goes on."""

    def extend(
        self, token: int, log_prob: float, logits: torch.Tensor | None, stopping: Stopping, max_new: int
    ) -> Partial:
        """The row with one more token, stopped if that token stops it."""
        tokens = self.tokens + (token,)
        kept = self.logits if logits is None else self.logits + (logits,)
        return Partial(tokens, self.log_prob + log_prob, kept, stop_reason(tokens, stopping, max_new))

    def generation(self, keep_logits: bool) -> Generation:
        """The stopped row as a `Generation`, its kept logits stacked."""
        logits = torch.stack(self.logits) if keep_logits else None  # [len(tokens), V]
        return Generation(list(self.tokens), self.reason, self.log_prob, logits)


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
    logits = stepper.prefill()
    device = logits.device
    generator = sampling.generator(device) if not sampling.greedy else None
    previous, valid = penalty_context(sampling, previous, valid, len(max_new), device)
    # Plain greedy decoding may run many steps per call; a step at a time where each token must be seen
    # at once (streaming) or stop strings are checked.
    plain_greedy = sampling.greedy and previous is None and not keep_logits
    greedy_steps = getattr(stepper, "greedy_steps", None) if plain_greedy else None
    per_call = 1 if on_token is not None or stopping.stop_strings else max(max_new)
    stop_ids = [i for i in (stopping.end_id, *stopping.stop_ids) if i is not None]
    rows = [Partial()] * len(max_new)
    while True:
        running = [row.reason is None for row in rows]
        # [B], False where the row has stopped; None while none has (no masking: a few cold-cache
        # tensor operations fewer per token, which a small model's decoding notices)
        active = None if all(running) else torch.tensor(running, device=device)
        chosen, log_probs = next_tokens(logits, sampling, active, pad_id, previous, valid, generator)
        rows = take(rows, chosen.tolist(), log_probs.tolist(), logits if keep_logits else None, stopping, max_new,
                    on_token)
        if previous is not None:
            previous, valid = extend_context(previous, valid, chosen, active)
        while greedy_steps is not None and not finished(rows):
            limits = [limit - len(row.tokens) if row.reason is None else 0 for row, limit in zip(rows, max_new)]
            steps = greedy_steps(chosen, limits, stop_ids, min(per_call, max(limits)))
            if steps is None:
                greedy_steps = None  # not for this model or call: one token at a time from here on
                break
            chosen = steps[0][:, -1]
            for tokens, step_log_probs in zip(steps[0].T.tolist(), steps[1].T.tolist()):
                rows = take(rows, tokens, step_log_probs, None, stopping, max_new, on_token)
        if finished(rows):
            return [row.generation(keep_logits) for row in rows]
        logits = stepper.step(chosen)


def finished(rows: Sequence[Partial]) -> bool:
    """Whether every row has stopped."""
    return all(row.reason is not None for row in rows)


def take(
    rows: Sequence[Partial],
    tokens: list[int],
    log_probs: list[float],
    logits: torch.Tensor | None,
    stopping: Stopping,
    max_new: list[int],
    on_token: OnToken | None,
) -> list[Partial]:
    """`stream` this step's tokens, then `record` them."""
    stream(on_token, rows, tokens)
    return record(rows, tokens, log_probs, logits, stopping, max_new)


def penalty_context(
    sampling: Sampling,
    previous: torch.Tensor | None,
    valid: torch.Tensor | None,
    batch: int,
    device: torch.device,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The ids the penalties look at [B, L] and where they are real [B, L]; None, None without penalties.

    Args:
        previous, valid: as `decode_loop`; None means no ids before the output.
    """
    if sampling.repetition_penalty == 1.0 and sampling.no_repeat_ngram == 0:
        return None, None
    previous = torch.zeros(batch, 0, dtype=torch.long, device=device) if previous is None else previous
    valid = torch.ones_like(previous, dtype=torch.bool) if valid is None else valid
    return previous, valid


def next_tokens(
    logits: torch.Tensor,
    sampling: Sampling,
    active: torch.Tensor | None,
    pad_id: int,
    previous: torch.Tensor | None,
    valid: torch.Tensor | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's next token under `sampling`, and its log-probability under the model.

    Args:
        logits: [B, V]; active: [B], False where the row has stopped (it gets pad_id); None: no row has.
        previous, valid: from `penalty_context`.
    Returns:
        tokens [B] and their log-probabilities [B] before any penalty or filter.
    """
    chosen = choose_next(logits, sampling, previous, valid, generator)
    if active is not None:
        chosen = chosen.masked_fill(~active, pad_id)
    return chosen, torch.log_softmax(logits.float(), dim=-1).gather(-1, chosen[:, None])[:, 0]


def stream(on_token: OnToken | None, rows: Sequence[Partial], tokens: list[int]) -> None:
    """Hand each unfinished row's new token to the streaming callback."""
    if on_token is None:
        return
    for index, (row, token) in enumerate(zip(rows, tokens)):
        if row.reason is None:
            on_token(index, token)


def record(
    rows: Sequence[Partial],
    tokens: list[int],
    log_probs: list[float],
    logits: torch.Tensor | None,
    stopping: Stopping,
    max_new: list[int],
) -> list[Partial]:
    """Every unfinished row with its new token appended, stopped where that token stops it.

    Args:
        tokens, log_probs: this step's token of each row and its log-probability.
        logits: this step's raw logits [B, V] to keep, or None.
        max_new: each row's length limit.
    """
    return [
        row.extend(token, log_prob, None if logits is None else logits[i].float().cpu(), stopping, limit)
        if row.reason is None
        else row
        for i, (row, token, log_prob, limit) in enumerate(zip(rows, tokens, log_probs, max_new))
    ]


def extend_context(
    previous: torch.Tensor, valid: torch.Tensor, tokens: torch.Tensor, active: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The penalties' ids [B, L + 1] with this step's tokens [B] appended, padding where a row had stopped
    (active None: none had)."""
    real = torch.ones_like(tokens, dtype=torch.bool) if active is None else active
    return torch.cat([previous, tokens[:, None]], dim=1), torch.cat([valid, real[:, None]], dim=1)
