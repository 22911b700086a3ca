"""Options a user can turn on or off, each measured against glassformer's default on the same work.

- the parts of `optimize_for_inference` (fused Q/K/V, small-batch kernels), each turned off in turn,
  on greedy generation at batch 1: what each part contributes;
- bf16 autocast: `torch.autocast(device, dtype=torch.bfloat16)` around the forward pass (glassformer
  training only turns it on where the device has native bf16, see `glassformer.train.precision`).
- torch.compile (optional, not in --quick: a cold compile takes about 45 s on 2 CPU cores).
Each line shows glassformer with the option first, then without it ("default"); the ratio is
default time / option time: above 1 means the option makes glassformer faster.
"""

from __future__ import annotations

import copy
import time

import torch

from common import Context, Line, sync, time_sides
from glassformer.hardware import native_bf16
from generation import ours_fn, prompts
from models import gpt2_pair
from train_step import GPT2_DROPOUT, gpt2_batch, step_fn

NEW_TOKENS = 200


def prepared(model, **switches):
    """A copy of model after optimize_for_inference(**switches)."""
    from glassformer.speed import optimize_for_inference

    twin = copy.deepcopy(model)
    optimize_for_inference(twin, **switches)
    return twin


def autocast_step(model, ids, labels, device: str):
    step = step_fn(model, (ids,), labels)

    def run() -> None:
        with torch.autocast(device, dtype=torch.bfloat16):
            step()

    return run


def run(ctx: Context) -> None:
    ours, _ = gpt2_pair(ctx.device, dropout=GPT2_DROPOUT)
    ids, labels = gpt2_batch(ctx.device)
    train = "GPT-2 6L d384 train step (B16 x 256)"

    def report(name: str, timing, note: str = "") -> None:
        note = f"{note}; {timing.noise()}" if note else timing.noise()
        ctx.report(Line(name, timing.median("option"), timing.median("default"), "default",
                        ratio_label="default/option", note=note))

    batch_prompts = prompts(1)
    default = ours_fn(prepared(ours), batch_prompts, NEW_TOKENS)
    for part in ("fused_qkv", "small_batch"):
        timing = time_sides({"default": default, "option": ours_fn(prepared(ours, **{part: False}), batch_prompts,
                                                                   NEW_TOKENS)}, reps=ctx.reps, device=ctx.device)
        report(f"option optimize_for_inference({part}=False), greedy generation batch 1, {NEW_TOKENS} new tokens",
               timing, note="below 1: the part pays")

    if native_bf16(ctx.device):
        timing = time_sides({"default": step_fn(ours.train(), (ids,), labels),
                             "option": autocast_step(ours.train(), ids, labels, ctx.device)},
                            reps=ctx.reps, device=ctx.device)
        report(f"option bf16 autocast, {train}", timing, note="autocast: bf16 matmuls, fp32 weights and optimizer")
    else:  # emulated bf16: one step took 69 s against 2.9 s in fp32 on an AVX2 EPYC
        ctx.out(f"option bf16 autocast, {train}: skipped (this {ctx.device} has no native bf16 arithmetic, "
                "so `train --bf16` trains in fp32 here)")

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
