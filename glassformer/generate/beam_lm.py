"""Beam search for decoder-only models: the encoder-decoder's search, continuing prompts.

The prompts are left-padded (as for sampling, `glassformer.generate.decoder_only`) and each is
repeated K times, one row per beam. The prompt is prefilled once into the KV cache, then each
step extends every live beam by every token with the same pure steps as
`glassformer.generate.beam` (`glassformer.generate.beam_steps`), and the ids, the padding
mask and the cache follow the beams that survive. Hypotheses hold the generated tokens only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.generate.beam import length_penalty, nbest_list
from glassformer.generate.beam_steps import (
    SourceBeams,
    advance_source,
    best_extensions,
    first_scores,
    next_beams,
    score_extensions,
)
from glassformer.generate.decoder_only import decode_one_token, prefill
from glassformer.generate.loop import model_device
from glassformer.generate.padding import left_pad
from glassformer.generate.results import Hypothesis
from glassformer.generate.stopping import Stopping, check_prompt_length, room


@torch.inference_mode()
def beam_search_lm(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    end_id: int,
    beam_size: int = 4,
    nbest: int = 1,
    penalty: str = "gnmt",
    alpha: float = 0.6,
    min_length: int = 0,
    max_new_tokens: int | None = None,
    use_cache: bool = True,
) -> list[list[Hypothesis]]:
    """The nbest highest-scoring continuations of each prompt, best first.

    Args:
        model: a decoder-only model (in eval mode).
        prompts: B id lists, special tokens included (see `glassformer.framing.sequence_ids`).
        end_id: the end-of-sequence token that closes a hypothesis.
        beam_size, nbest, penalty, alpha, min_length: as `glassformer.generate.beam_search`.
        max_new_tokens: longest continuation; None means what the model's positions allow.
        use_cache: keep keys and values between steps (reordered with the beams); False
            recomputes every beam's whole sequence each step (same scores, quadratic cost).
    """
    if beam_size < 1:
        raise UserError(f"beam size must be at least 1, got {beam_size}")
    if not 1 <= nbest <= beam_size:
        raise UserError(f"n-best of {nbest} needs a beam of at least {nbest} (beam is {beam_size})")
    length_penalty(1, penalty, alpha)  # validates the kind before any work
    if not prompts:
        return []
    max_len = model.config.max_len
    for prompt in prompts:
        if not prompt:
            raise UserError("empty prompt: a decoder-only model needs at least one token to continue")
        check_prompt_length(len(prompt), max_len)
    k = beam_size
    limits = [room(len(p), max_len, Stopping(max_new_tokens=max_new_tokens)) for p in prompts]
    ids, valid = left_pad(prompts, model.config.pad_id, model_device(model))
    ids, valid = ids.repeat_interleave(k, dim=0), valid.repeat_interleave(k, dim=0)  # [B * K, L]
    width = ids.size(1)
    padded = not bool(valid.all())
    cache = model.new_cache(width + max(limits)) if use_cache else None
    scores = first_scores(len(prompts), k, ids.device)  # [B, K]
    beams = [SourceBeams() for _ in prompts]

    logits = prefill(model, ids, valid, cache, padded)  # [B * K, V]
    for step in range(max(limits)):
        candidates = score_extensions(scores, logits, end_id if step < min_length else None)
        history = ids[:, width:].tolist()  # each row's generated tokens
        beams = [
            advance_source(state, extensions, history, k, end_id, max_new_tokens, step == limit - 1)
            for state, extensions, limit in zip(beams, best_extensions(candidates, k), limits)
        ]
        if all(state.done for state in beams):
            break
        index, tokens, scores = next_beams(beams, k, end_id, ids.device)
        cache_pos = ids.size(1)
        ids = torch.cat([ids.index_select(0, index), tokens[:, None]], dim=1)
        valid = torch.cat([valid.index_select(0, index), torch.ones_like(valid[:, :1])], dim=1)
        if cache is None:
            logits = prefill(model, ids, valid, padded=padded)
            continue
        cache.reorder(index)  # the keys and values follow their beams
        # Rows past their own limit are padding slots; the clamp keeps their positions in range.
        position = (valid.long().sum(dim=-1, keepdim=True) - 1).clamp(max=max_len - 1)
        logits = decode_one_token(model, tokens[:, None], valid, position, cache, cache_pos, padded)
    return [nbest_list(state.finished, nbest, penalty, alpha) for state in beams]
