"""What idle hook points cost: the same model with its HookPoints as they are, and bypassed.

"Bypassed" patches the HookPoint class for the duration of a call: `__call__` becomes a plain
`lambda self, x: x` (the cheapest thing a call site can still call). The difference is what
nn.Module's call machinery costs a hook point with no hook attached. Measured where it weighs
most, one decode step at batch 1 (a small amount of arithmetic per Python call) of the model
prepared by `optimize_for_inference` as the decoding commands run it, and on a training-shaped
forward pass of the plain model.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from common import Context, Line, time_sides
from glassformer.config import get_preset
from glassformer.models import build_model
from glassformer.nn.hooks import HookPoint
from glassformer.speed import optimize_for_inference
from glassformer.speed.lookups import cache_submodule_lookups

TARGET = 0.02
STEPS_PER_CALL = 200  # decode steps per timed call: with each step one C call (~1.4 ms), 20 were too short to see 2%


@contextlib.contextmanager
def hooks_bypassed():
    HookPoint.__call__ = lambda self, x: x
    try:
        yield
    finally:
        del HookPoint.__call__  # nn.Module's again


def count_hook_calls(work) -> int:
    """How many times HookPoints are called during work()."""
    calls = 0
    call = nn.Module.__call__

    def counting(self, x):
        nonlocal calls
        calls += 1
        return call(self, x)

    HookPoint.__call__ = counting
    try:
        work()
    finally:
        del HookPoint.__call__
    return calls


def per_call_cost(n: int = 200_000) -> float:
    """Seconds an idle HookPoint call costs more than the bypassed one, measured on a loop of n calls."""
    point, x = HookPoint(("B",), "probe"), torch.zeros(1)

    def loop() -> None:
        for _ in range(n):
            point(x)

    timing = time_sides({"idle": loop, "bare": bypassed(loop)}, reps=7)
    return max(timing.median("idle") - timing.median("bare"), 0.0) / n


class _Site(nn.Module):
    """A call site as the model has them: `self.hook_x(tensor)`, against one without the call."""

    def __init__(self):
        super().__init__()
        self.hook_x = HookPoint(("B",), "probe")

    def with_hook(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_x(x)

    def without(self, x: torch.Tensor) -> torch.Tensor:
        return x


def per_site_cost(n: int = 200_000) -> float:
    """Seconds a whole idle call site (module attribute lookup + call + check) costs over no call at all,
    with submodules found as the prepared model finds them (`glassformer.speed.lookups`)."""
    site, x = _Site(), torch.zeros(1)
    cache_submodule_lookups(site)

    def loop(method):
        def run() -> None:
            for _ in range(n):
                method(x)

        return run

    timing = time_sides({"site": loop(site.with_hook), "none": loop(site.without)}, reps=7)
    return max(timing.median("site") - timing.median("none"), 0.0) / n


def gpt2_model(device: str):
    torch.manual_seed(0)
    config = get_preset("gpt2-small").replace(
        vocab_size=8000, d_model=384, n_heads=6, d_ff=1536, n_layers=6, max_len=256, dropout=0.0
    )
    return build_model(config).to(device).eval()


def decode_steps(model, device: str, prompt: int = 100):
    """STEPS_PER_CALL single-token steps at position `prompt`, against a filled KV cache."""
    cache = model.new_cache(prompt + 1)
    ids = torch.randint(0, model.config.vocab_size, (1, prompt), device=device)
    with torch.inference_mode():
        model(ids, cache=cache)
    token, position = ids[:, :1], torch.tensor([[prompt]], device=device)

    @torch.inference_mode()
    def steps() -> None:
        for _ in range(STEPS_PER_CALL):
            for layer in cache.layers:
                layer.self_attn.length = prompt  # overwrite the same position each time
            model(token, positions=position, cache=cache, cache_pos=prompt)  # unpadded: no mask, as generate_lm

    return steps


def full_forward(model, device: str, batch: int = 4, length: int = 256):
    ids = torch.randint(0, model.config.vocab_size, (batch, length), device=device)

    @torch.inference_mode()
    def forward() -> None:
        model(ids)

    return forward


def bypassed(work):
    def run() -> None:
        with hooks_bypassed():
            work()

    return run


def run(ctx: Context) -> None:
    per_call = per_call_cost()
    per_site = per_site_cost()
    ctx.out(f"idle HookPoint: the call costs {per_call * 1e9:.0f} ns more than a bare `lambda self, x: x`; "
            f"the whole call site (self.hook_x lookup + call) {per_site * 1e9:.0f} ns more than no call at all")
    model = gpt2_model(ctx.device)
    prepared = gpt2_model(ctx.device)
    optimize_for_inference(prepared)
    cases = [
        (f"idle hook points, {STEPS_PER_CALL} decode steps (GPT-2 6L d384, batch 1, position 100, optimized)",
         decode_steps(prepared, ctx.device), 1),
        ("idle hook points, forward pass (GPT-2 6L d384, batch 4 x 256, inference)",
         full_forward(model, ctx.device), 1),
    ]
    for name, work, per in cases:
        calls = count_hook_calls(work)
        timing = time_sides({"ours": work, "peer": bypassed(work)}, reps=max(ctx.reps, 9), device=ctx.device)
        ours, bare = timing.median("ours"), timing.median("peer")
        # The direct A/B difference is within the machine's noise; calls x per-call cost is not.
        estimate = calls * per_site / ours
        verdict = "within" if estimate <= TARGET else "ABOVE"
        ctx.report(Line(name, ours, bare, "hook points bypassed", ratio_label="glassformer/bypassed",
                        note=f"{calls // per} hook call sites x {per_site * 1e9:.0f} ns = {estimate:.2%} of the time "
                             f"if they were removed outright, {verdict} the {TARGET:.0%} target; "
                             f"measured A/B difference {ours / bare - 1:+.1%}"))
