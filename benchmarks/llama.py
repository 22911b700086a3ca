"""A LLaMA-shaped model against `transformers.LlamaForCausalLM` on the same weights: a training step
(forward + backward + Adam, B16 x 256) and greedy decoding with a KV cache (200 new tokens).

The shape (benchmarks/models.py LLAMA_SIZES): 6 layers, d_model 384, 6 query heads sharing 2
key/value heads, SwiGLU, rotary positions, RMSNorm, no dropout. glassformer decodes prepared by
`optimize_for_inference`, as the `generate` command runs it; the plain model's time follows.
"""

from __future__ import annotations

import torch

from common import Context, Line, have, skipped, time_sides
from flops import step_flops
from generation import report_generations
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
    report_generations(ctx, name, optimized(plain), plain, peer, DECODE_BATCHES, new_tokens)
