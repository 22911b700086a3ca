"""Options a user can turn on, each measured against glassformer's default on the same work.

- fused_qkv (ModelConfig): Q, K and V from one matmul over the concatenated weights.
- bf16 autocast: `torch.autocast(device, dtype=torch.bfloat16)` around the forward pass.
- torch.compile (optional, not in --quick: a cold compile takes about 45 s on 2 CPU cores).
Each line shows glassformer with the option first, then without it ("default"); the ratio is
default time / option time: above 1 means the option makes glassformer faster.
"""

from __future__ import annotations

import time

import torch

from common import Context, Line, sync, time_sides
from generation import ours_fn, prompts
from models import gpt2_pair
from train_step import GPT2_DROPOUT, gpt2_batch, step_fn

NEW_TOKENS = 200


def with_config(model, **changes):
    """A copy of model built with changed config fields, holding the same weights."""
    from glassformer.models import build_model

    twin = build_model(model.config.replace(**changes), init=False)
    twin.load_state_dict(model.state_dict())
    return twin.to(next(model.parameters()).device)


def autocast_step(model, ids, labels, device: str):
    step = step_fn(model, (ids,), labels)

    def run() -> None:
        with torch.autocast(device, dtype=torch.bfloat16):
            step()

    return run


def run(ctx: Context) -> None:
    ours, _ = gpt2_pair(ctx.device, dropout=GPT2_DROPOUT)
    fused = with_config(ours, fused_qkv=True)
    ids, labels = gpt2_batch(ctx.device)
    train = "GPT-2 6L d384 train step (B16 x 256)"

    def report(name: str, timing, note: str = "") -> None:
        note = f"{note}; {timing.noise()}" if note else timing.noise()
        ctx.report(Line(name, timing.median("option"), timing.median("default"), "default",
                        ratio_label="default/option", note=note))

    timing = time_sides({"default": step_fn(ours.train(), (ids,), labels),
                         "option": step_fn(fused.train(), (ids,), labels)}, reps=ctx.reps, device=ctx.device)
    report(f"option fused_qkv, {train}", timing)

    batch_prompts = prompts(1)
    timing = time_sides({"default": ours_fn(ours.eval(), batch_prompts, NEW_TOKENS),
                         "option": ours_fn(fused.eval(), batch_prompts, NEW_TOKENS)}, reps=ctx.reps, device=ctx.device)
    report(f"option fused_qkv, greedy generation batch 1, {NEW_TOKENS} new tokens", timing)

    timing = time_sides({"default": step_fn(ours.train(), (ids,), labels),
                         "option": autocast_step(ours.train(), ids, labels, ctx.device)},
                        reps=ctx.reps, device=ctx.device)
    report(f"option bf16 autocast, {train}", timing, note="autocast: bf16 matmuls, fp32 weights and optimizer")

    name = f"option torch.compile (inductor), {train}"
    if ctx.quick:
        ctx.out(f"{name}: skipped in --quick (a cold compile takes ~45 s on 2 CPU cores)")
        return
    compiled = torch.compile(ours)
    step = step_fn(compiled.train(), (ids,), labels)
    sync(ctx.device)
    start = time.perf_counter()
    try:
        step()
    except Exception as error:  # a compiler that cannot build here (no C++ compiler, ...) skips the line
        ctx.out(f"{name}: skipped (torch.compile failed: {type(error).__name__}: {str(error).splitlines()[0][:200]})")
        return
    sync(ctx.device)
    cold = time.perf_counter() - start
    timing = time_sides({"default": step_fn(ours.train(), (ids,), labels), "option": step}, reps=ctx.reps,
                        device=ctx.device)
    report(name, timing, note=f"first (compiling) step {cold:.0f} s, not timed")
