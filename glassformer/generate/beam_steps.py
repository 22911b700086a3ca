"""The steps of beam search: pure functions from scores, extensions and beams to new ones.

`beam_search` runs them in this order: `score_extensions` and `best_extensions` over the whole
batch, `advance_source` for each source (`walk_extensions`, then `close_beams` at the length
limit), and `next_beams` to gather the rows, tokens and scores the next step continues.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from glassformer.generate.stopping import END, MAX_LENGTH, MAX_NEW_TOKENS

NEG_INF = float("-inf")


class Extension(NamedTuple):
    """A live hypothesis extended by one token."""

    row: int
    """The batch row [B * K] holding the hypothesis it extends."""
    token: int
    log_prob: float
    """Sum of the log-probabilities of the hypothesis's tokens, this one included."""

    def tokens(self, history: Sequence[list[int]]) -> list[int]:
        """The extended hypothesis's tokens, given each row's tokens so far."""
        return history[self.row] + [self.token]


class Ending(NamedTuple):
    """A finished hypothesis, before the length penalty ranks it."""

    tokens: list[int]
    log_prob: float
    reason: str


@dataclass(frozen=True)
class SourceBeams:
    """One source's search after a step."""

    live: tuple[Extension, ...] = ()
    """The beams the next step extends, best first (at most K)."""
    finished: tuple[Ending, ...] = ()
    done: bool = False


def first_scores(n_sources: int, k: int, device: torch.device) -> torch.Tensor:
    """The summed log-probabilities [B, K] of the beams before the first step."""
    # All K beams start identical; only the first may extend, or the K would stay copies.
    scores = torch.full((n_sources, k), NEG_INF, device=device)
    scores[:, 0] = 0.0
    return scores


def score_extensions(scores: torch.Tensor, logits: torch.Tensor, banned: int | None = None) -> torch.Tensor:
    """The score of every live beam extended by every token, flattened per source.

    Args:
        scores: [B, K] each live beam's summed log-probability (-inf at empty slots).
        logits: [B * K, V] the model's logits for each beam's next token.
        banned: a token no beam may take (the <end> before min_length), or None.
    Returns:
        [B, K * V]; index i extends beam i // V with token i % V.
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    if banned is not None:
        log_probs[:, banned] = NEG_INF
    n_sources, k = scores.shape
    return (scores[:, :, None] + log_probs.view(n_sources, k, -1)).view(n_sources, -1)


def best_extensions(candidates: torch.Tensor, k: int) -> list[list[Extension]]:
    """Each source's 2K best extensions, best first.

    Args:
        candidates: [B, K * V] from `score_extensions`.
    """
    n_sources, width = candidates.shape
    # 2K so that K live beams remain even when K of the best extensions are <end>.
    top_scores, top_index = candidates.topk(min(2 * k, width), dim=-1)  # [B, 2K]
    vocab = width // k
    rows = top_index // vocab + k * torch.arange(n_sources, device=candidates.device)[:, None]
    return [
        [Extension(*extension) for extension in zip(*source)]
        for source in zip(rows.tolist(), (top_index % vocab).tolist(), top_scores.tolist())
    ]


def walk_extensions(
    extensions: Sequence[Extension], k: int, end_id: int
) -> tuple[list[Extension], list[Extension]]:
    """Split one source's best extensions, best first, into ended hypotheses and at most K live beams."""
    ended, live = [], []
    for rank, extension in enumerate(extensions):
        if len(live) == k or extension.log_prob == NEG_INF:
            break
        if extension.token != end_id:
            live.append(extension)
        elif rank < k:
            # Only an <end> good enough to be among the K best extensions closes a hypothesis.
            ended.append(extension)
    return ended, live


def close_beams(
    live: Sequence[Extension], history: Sequence[list[int]], max_new_tokens: int | None
) -> list[Ending]:
    """The live beams ended as they are, at their source's length limit."""
    endings = []
    for beam in live:
        tokens = beam.tokens(history)
        reason = MAX_NEW_TOKENS if len(tokens) == max_new_tokens else MAX_LENGTH
        endings.append(Ending(tokens, beam.log_prob, reason))
    return endings


def advance_source(
    beams: SourceBeams,
    extensions: Sequence[Extension],
    history: Sequence[list[int]],
    k: int,
    end_id: int,
    max_new_tokens: int | None,
    at_limit: bool,
) -> SourceBeams:
    """One source's beams after a step.

    Args:
        extensions: the source's best extensions, from `best_extensions`.
        history: each batch row's tokens after <start> [B * K lists].
        at_limit: the source has no room for another token, so its live beams end here.
    """
    if beams.done:
        # Its rows become padding until the whole batch is done.
        return SourceBeams(finished=beams.finished, done=True)
    ended, live = walk_extensions(extensions, k, end_id)
    finished = beams.finished + tuple(Ending(e.tokens(history), e.log_prob, END) for e in ended)
    if at_limit:
        finished += tuple(close_beams(live, history, max_new_tokens))
    return SourceBeams(tuple(live), finished, at_limit or len(finished) >= k)


def next_beams(
    beams: Sequence[SourceBeams], k: int, end_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows the next step's beams continue, the tokens they append, and their scores.

    A slot without a live beam continues its source's first row with <end> at score -inf, so
    that `walk_extensions` never takes any of its extensions.
    Returns:
        index [B * K], tokens [B * K], scores [B, K].
    """
    slots: list[Extension] = []
    for source, state in enumerate(beams):
        slots += [*state.live, *[Extension(source * k, end_id, NEG_INF)] * (k - len(state.live))]
    index, tokens, scores = zip(*slots)
    return (
        torch.tensor(index, device=device),
        torch.tensor(tokens, device=device),
        torch.tensor(scores, device=device).view(len(beams), k),
    )
