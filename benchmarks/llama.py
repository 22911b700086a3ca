"""A LLaMA-shaped model against `transformers.LlamaForCausalLM` on the same weights: a training step
(forward + backward + Adam, B16 x 256) and greedy decoding with a KV cache (200 new tokens).

The shape (benchmarks/models.py LLAMA_SIZES): 6 layers, d_model 384, 6 query heads sharing 2
key/value heads, SwiGLU, rotary positions, RMSNorm, no dropout. glassformer decodes prepared by
`optimize_for_inference`, as the `generate` command runs it; the plain model's time follows.
"""

from __future__ import annotations

import torch

from common import Context, Line, have, skipped, time_sides
from flops import count_flops, step_flops
from generation import PROMPT_LEN, agreement, generation_bytes, ours_fn, peer_fn, prompts, read_note
from glassformer.speed.bandwidth import read_bandwidth
from models import VOCAB, llama_pair, optimized
from train_step import MIN_TRAIN_REPS, check_same_logits, step_fn

BATCH, LENGTH = 16, 256
DECODE_BATCHES = (1, 8)


def train_batch(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(0, VOCAB, (BATCH, LENGTH + 1), generator=g)
    return ids[:, :-1].to(device), ids[:, 1:].to(device)


def run(ctx: Context, new_tokens: int = 200, train_reps: int | None = None) -> None:
    name = "LLaMA-shaped 6L d384 6H/2KV SwiGLU RoPE"
    if not have("transformers"):
        ctx.out(skipped(name, "transformers is not installed: pip install transformers"))
        return
    ours, peer = llama_pair(ctx.device)
    ids, labels = train_batch(ctx.device)
    diff = check_same_logits(ours, peer, (ids,), lambda out: out.logits)
    flops = step_flops(ours, (ids,), labels)
    timing = time_sides(
        {"ours": step_fn(ours.train(), (ids,), labels),
         "peer": step_fn(peer.train(), (ids,), labels, logits_of=lambda out: out.logits)},
        reps=train_reps or max(ctx.reps, MIN_TRAIN_REPS), device=ctx.device,
    )
    ctx.report(Line(f"train step {name} (B{BATCH} x {LENGTH}, vocab {VOCAB})", timing.median("ours"),
                    timing.median("peer"), "HF LlamaForCausalLM(sdpa)", flops=flops, work=BATCH * LENGTH, unit="tok",
                    note=f"same weights, max |logit diff| {diff:.1e}; {timing.noise()}"))

    # The training steps above changed both sides alike; decode from fresh, equal weights.
    plain, peer = llama_pair(ctx.device)
    plain.eval(), peer.eval()
    fast = optimized(plain)
    bandwidth = read_bandwidth(device=ctx.device)
    for batch in DECODE_BATCHES:
        batch_prompts = prompts(batch)
        sides = {"ours": ours_fn(fast, batch_prompts, new_tokens),
                 "plain": ours_fn(plain, batch_prompts, new_tokens),
                 "peer": peer_fn(peer, batch_prompts, new_tokens, ctx.device)}
        ours_tokens, plain_tokens, peer_tokens = sides["ours"](), sides["plain"](), sides["peer"]()
        assert all(len(t) == new_tokens for t in ours_tokens + peer_tokens), "a side stopped early"
        same, same_plain = agreement(ours_tokens, peer_tokens), agreement(ours_tokens, plain_tokens)
        flops = count_flops(sides["plain"])  # the same products: the C code's are hidden from the counter
        timing = time_sides(sides, reps=ctx.reps, device=ctx.device)
        read = read_note(generation_bytes(fast, batch, new_tokens), batch * new_tokens,
                         {"glassformer": timing.median("ours"), "HF generate": timing.median("peer")}, bandwidth)
        ctx.report(Line(
            f"greedy generation {name}, batch {batch}, {PROMPT_LEN}-token prompt + {new_tokens} new, KV cache",
            timing.median("ours"), timing.median("peer"), "HF generate", flops=flops, work=batch * new_tokens,
            unit="tok", plain_s=timing.median("plain"),
            note=f"identical outputs in {same:.0%} of rows (optimized vs plain: {same_plain:.0%}); {read}; "
                 f"{timing.noise()}",
        ))
