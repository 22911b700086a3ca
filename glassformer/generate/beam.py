"""Beam search for encoder-decoders, batched over sources of different lengths.

Each source keeps `beam_size` live hypotheses as rows of one batch [B * K]. At each step every
live hypothesis is extended by every token; the 2K best extensions per source are walked in
order: an <end> among the first K closes a finished hypothesis, the others refill the K live
beams, and the KV cache is reordered to follow them. A source is done once K hypotheses have
ended, or once its length limit is reached, which closes its live beams as they are. Finished
hypotheses are ranked by log_prob / length_penalty(len(tokens)), <end> counted in the length.

Each step of the loop is a pure function in `glassformer.generate.beam_steps`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.generate.beam_steps import (
    Ending,
    SourceBeams,
    advance_source,
    best_extensions,
    first_scores,
    next_beams,
    score_extensions,
)
from glassformer.generate.encoder_decoder import decode_step, encode_sources, target_limits
from glassformer.generate.results import Hypothesis
from glassformer.generate.stopping import Stopping

LENGTH_PENALTIES = ("gnmt", "average", "none")


def length_penalty(length: int, kind: str = "gnmt", alpha: float = 0.6) -> float:
    """The divisor of a hypothesis's log-probability.

    "gnmt" is ((5 + length) / 6) ** alpha (Wu et al. 2016, used by the paper with alpha 0.6),
    "average" is length (mean log-probability per token), "none" is 1.
    """
    if kind == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    if kind == "average":
        return float(max(length, 1))
    if kind == "none":
        return 1.0
    raise UserError(f"unknown length penalty {kind!r}; choose one of: {', '.join(LENGTH_PENALTIES)}")


@torch.inference_mode()
def beam_search(
    model: nn.Module,
    sources: Sequence[Sequence[int]],
    start_id: int,
    end_id: int,
    beam_size: int = 4,
    nbest: int = 1,
    penalty: str = "gnmt",
    alpha: float = 0.6,
    min_length: int = 0,
    max_new_tokens: int | None = None,
    length_margin: int | None = None,
    use_cache: bool = True,
) -> list[list[Hypothesis]]:
    """The nbest highest-scoring targets of each source, best first (fewer, even none, only when
    the model gives every longer continuation probability 0).

    Args:
        model: anything with the encoder-decoder's encode / decode / new_cache and a config
            giving max_len and pad_id.
        sources: B id lists (see `glassformer.framing.source_ids`).
        start_id, end_id: the decoder's first token and its end-of-sequence token.
        beam_size: live hypotheses per source (K); 1 is greedy decoding.
        nbest: hypotheses returned per source, at most beam_size.
        penalty, alpha: length penalty, see `length_penalty`.
        min_length: hypotheses hold at least this many tokens before their <end>.
        max_new_tokens: longest target; None means what the model's positions allow.
        length_margin: also at most len(source) + length_margin tokens (the paper used 50).
        use_cache: keep keys and values between steps (reordered with the beams).
    """
    if beam_size < 1:
        raise UserError(f"beam size must be at least 1, got {beam_size}")
    if not 1 <= nbest <= beam_size:
        raise UserError(f"n-best of {nbest} needs a beam of at least {nbest} (beam is {beam_size})")
    length_penalty(1, penalty, alpha)  # validates the kind before any work
    if not sources:
        return []
    k = beam_size
    limits = target_limits(model, sources, Stopping(max_new_tokens=max_new_tokens), length_margin)
    memory, src_mask = encode_sources(model, sources)
    memory = memory.repeat_interleave(k, dim=0)  # [B * K, S, d_model]
    src_mask = src_mask.repeat_interleave(k, dim=0)
    tgt = torch.full((len(sources) * k, 1), start_id, dtype=torch.long, device=memory.device)
    cache = model.new_cache(1 + max(limits)) if use_cache else None
    scores = first_scores(len(sources), k, memory.device)  # [B, K]
    beams = [SourceBeams() for _ in sources]

    logits = decode_step(model, tgt, memory, src_mask, cache)  # [B * K, V]
    for step in range(max(limits)):
        candidates = score_extensions(scores, logits, end_id if step < min_length else None)
        history = tgt[:, 1:].tolist()  # each row's tokens after <start>
        beams = [
            advance_source(state, extensions, history, k, end_id, max_new_tokens, step == limit - 1)
            for state, extensions, limit in zip(beams, best_extensions(candidates, k), limits)
        ]
        if all(state.done for state in beams):
            break
        index, tokens, scores = next_beams(beams, k, end_id, tgt.device)
        tgt = torch.cat([tgt.index_select(0, index), tokens[:, None]], dim=1)
        if cache is not None:
            cache.reorder(index)  # the keys and values follow their beams
        logits = decode_step(model, tgt, memory, src_mask, cache)
    return [nbest_list(state.finished, nbest, penalty, alpha) for state in beams]


def nbest_list(finished: Sequence[Ending], nbest: int, penalty: str, alpha: float) -> list[Hypothesis]:
    """The nbest finished hypotheses with the highest length-penalised score, best first."""
    hypotheses = [
        Hypothesis(tokens, log_prob / length_penalty(len(tokens), penalty, alpha), log_prob, reason)
        for tokens, log_prob, reason in finished
    ]
    return sorted(hypotheses, key=lambda h: h.score, reverse=True)[:nbest]
