"""Beam search for encoder-decoders, batched over sources of different lengths.

Each source keeps `beam_size` live hypotheses as rows of one batch [B * K]. At each step every
live hypothesis is extended by every token; the 2K best extensions per source are walked in
order: an <end> among the first K closes a finished hypothesis, the others refill the K live
beams, and the KV cache is reordered to follow them. A source is done once K hypotheses have
ended, or once its length limit is reached, which closes its live beams as they are. Finished
hypotheses are ranked by log_prob / length_penalty(len(tokens)), <end> counted in the length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.generate.encoder_decoder import decode_step, encode_sources, target_limits
from glassformer.generate.results import Hypothesis
from glassformer.generate.stopping import END, MAX_LENGTH, MAX_NEW_TOKENS, Stopping

LENGTH_PENALTIES = ("gnmt", "average", "none")
NEG_INF = float("-inf")


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
    n_sources, k = len(sources), beam_size
    limits = target_limits(model, sources, Stopping(max_new_tokens=max_new_tokens), length_margin)

    memory, src_mask = encode_sources(model, sources)
    memory = memory.repeat_interleave(k, dim=0)  # [B * K, S, d_model]
    src_mask = src_mask.repeat_interleave(k, dim=0)
    device = memory.device
    tgt = torch.full((n_sources * k, 1), start_id, dtype=torch.long, device=device)
    cache = model.new_cache(1 + max(limits)) if use_cache else None
    # All K beams start identical; only the first may extend, or the K would stay copies.
    scores = torch.full((n_sources, k), NEG_INF, device=device)
    scores[:, 0] = 0.0
    finished: list[list[Hypothesis]] = [[] for _ in range(n_sources)]
    done = [False] * n_sources

    logits = decode_step(model, tgt, memory, src_mask, cache)  # [B * K, V]
    for step in range(max(limits)):
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        if step < min_length:
            log_probs[:, end_id] = NEG_INF
        vocab = log_probs.size(-1)
        candidates = (scores.view(-1, 1) + log_probs).view(n_sources, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=-1)  # [B, 2K]
        history = tgt[:, 1:].tolist()  # each row's tokens after <start>
        # Sources already done keep dead beams (score -inf) until the whole batch is done.
        new_scores = [[NEG_INF] * k for _ in range(n_sources)]
        new_rows = [[b * k] * k for b in range(n_sources)]
        new_tokens = [[end_id] * k for _ in range(n_sources)]
        for b in range(n_sources):
            if done[b]:
                continue
            alive = 0
            for rank, (score, index) in enumerate(zip(top_scores[b].tolist(), top_index[b].tolist())):
                if alive == k or score == NEG_INF:
                    break
                row, token = b * k + index // vocab, index % vocab
                if token == end_id:
                    # Only an <end> good enough to be among the K best extensions closes a hypothesis.
                    if rank < k:
                        finished[b].append(_hypothesis(history[row] + [end_id], score, END, penalty, alpha))
                    continue
                new_scores[b][alive], new_rows[b][alive], new_tokens[b][alive] = score, row, token
                alive += 1
            if step == limits[b] - 1:
                # No room for another token: the live beams end here as they are.
                for beam in range(alive):
                    tokens = history[new_rows[b][beam]] + [new_tokens[b][beam]]
                    reason = MAX_NEW_TOKENS if len(tokens) == max_new_tokens else MAX_LENGTH
                    finished[b].append(_hypothesis(tokens, new_scores[b][beam], reason, penalty, alpha))
                done[b] = True
            done[b] = done[b] or len(finished[b]) >= k
        if all(done):
            break
        index = torch.tensor(new_rows, device=device).view(-1)  # [B * K] rows the new beams continue
        tgt = torch.cat([tgt.index_select(0, index), torch.tensor(new_tokens, device=device).view(-1, 1)], dim=1)
        if cache is not None:
            cache.reorder(index)
        scores = torch.tensor(new_scores, device=device)
        logits = decode_step(model, tgt, memory, src_mask, cache)
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[:nbest] for hyps in finished]


def _hypothesis(tokens: list[int], log_prob: float, reason: str, penalty: str, alpha: float) -> Hypothesis:
    return Hypothesis(tokens, log_prob / length_penalty(len(tokens), penalty, alpha), log_prob, reason)
