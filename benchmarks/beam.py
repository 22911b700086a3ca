"""Beam search (beam 5) on a small encoder-decoder: `glassformer.generate.beam_search` vs HF `generate`.

Both sides hold the same random BART weights (built by `transformers`, loaded into glassformer
through its BART importer). Every hypothesis has exactly NEW_TOKENS tokens on both sides: the end
token is ruled out before that length (our min_length, HF's min_new_tokens) and the length limit
is the same (max_new_tokens), so both do the same number of decoder steps. glassformer runs
prepared by `optimize_for_inference`, as `translate` runs it, and plain.
"""

from __future__ import annotations

import torch

from common import Context, Line, have, skipped, time_sides
from flops import count_flops
from glassformer.generate import beam_search
from models import BART_BOS, BART_EOS, VOCAB, bart_pair, optimized

BEAM = 5
SOURCES, SOURCE_LEN = 4, 24
NEW_TOKENS = 64


def sources() -> list[list[int]]:
    """SOURCES framed sources <s> ... </s> of SOURCE_LEN random tokens."""
    g = torch.Generator().manual_seed(4)
    body = torch.randint(5, VOCAB, (SOURCES, SOURCE_LEN - 2), generator=g).tolist()
    return [[BART_BOS, *row, BART_EOS] for row in body]


def ours_fn(model, srcs: list[list[int]], new_tokens: int):
    def search() -> list[list[int]]:
        best = beam_search(model, srcs, start_id=BART_EOS, end_id=BART_EOS, beam_size=BEAM, penalty="none",
                           min_length=new_tokens, max_new_tokens=new_tokens)
        return [hyps[0].tokens for hyps in best]

    return search


def peer_fn(model, srcs: list[list[int]], new_tokens: int, device: str):
    ids = torch.tensor(srcs, device=device)
    mask = torch.ones_like(ids)

    @torch.inference_mode()
    def search() -> list[list[int]]:
        out = model.generate(
            ids, attention_mask=mask, num_beams=BEAM, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, length_penalty=0.0, early_stopping=False, no_repeat_ngram_size=0, use_cache=True,
            decoder_start_token_id=BART_EOS,
        )
        return out[:, 1:].tolist()  # after the decoder start token

    return search


def make(case: str, side: str, device: str):
    ours, peer = bart_pair(device)
    srcs = sources()
    return ours_fn(optimized(ours), srcs, NEW_TOKENS) if side == "ours" else peer_fn(peer, srcs, NEW_TOKENS, device)


def run(ctx: Context) -> None:
    name = (f"beam search {BEAM}, BART-shaped d256 h4 3+3 ff1024 vocab {VOCAB}, {SOURCES} sources x {SOURCE_LEN} "
            f"tokens, {NEW_TOKENS} new tokens each")
    if not have("transformers"):
        ctx.out(skipped(name, "transformers is not installed"))
        return
    plain, peer = bart_pair(ctx.device)
    srcs = sources()
    sides = {"ours": ours_fn(optimized(plain), srcs, NEW_TOKENS), "plain": ours_fn(plain, srcs, NEW_TOKENS),
             "peer": peer_fn(peer, srcs, NEW_TOKENS, ctx.device)}
    ours_best, peer_best = sides["ours"](), sides["peer"]()
    assert all(len(t) == NEW_TOKENS for t in ours_best + peer_best), "a side ended a hypothesis early"
    same = sum(a == b for a, b in zip(ours_best, peer_best)) / len(srcs)
    flops = count_flops(sides["ours"])
    timing = time_sides(sides, reps=ctx.reps, device=ctx.device)
    ctx.report(Line(name, timing.median("ours"), timing.median("peer"), "HF generate(num_beams=5)", flops=flops,
                    work=SOURCES * NEW_TOKENS, unit="tok", plain_s=timing.median("plain"),
                    note=f"same best hypothesis for {same:.0%} of sources; {timing.noise()}"))
