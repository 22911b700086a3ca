"""Change what flows through a model's hook points, from outside: `intervene(model, {pattern: fn})`.

Inside the block every hook point whose name matches a pattern passes its value through
`fn(value, hook)`; a tensor returned replaces the value downstream, None keeps it. It works in
any forward pass and during decoding, where it fires at every step (steering: add a vector to
the residual stream while generating), on the plain model and on one prepared by
`glassformer.speed.optimize_for_inference` alike. Every hook is removed on exit, also when the
block raises. Attention's scores and probabilities exist only in the step-by-step mode, which is
turned on for the block when a pattern names one of them.

Interventions and `record` compose in the order they are entered: a recording started inside an
`intervene` block sees the changed values.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.inspect.recorder import hook_points
from glassformer.inspect.step_by_step import STEP_BY_STEP_POINTS
from glassformer.inspect.step_by_step import step_by_step as step_by_step_mode
from glassformer.nn.hooks import HookPoint


@dataclass(frozen=True)
class Hook:
    """Where an intervention fires: the hook point's name, its declared dims and what it holds."""

    name: str
    dims: tuple[str, ...]
    what: str


Intervention = Callable[[torch.Tensor, Hook], "torch.Tensor | None"]


def _matches(points: list[tuple[str, HookPoint]], pattern: str) -> list[tuple[str, HookPoint]]:
    found = [(name, point) for name, point in points if fnmatch.fnmatchcase(name, pattern)]
    if not found:
        near = [name for name, _ in points if name.rsplit(".", 1)[-1] == pattern.rsplit(".", 1)[-1]][:3]
        hint = f"; e.g. {', '.join(near)}" if near else ""
        raise UserError(f"no hook point matches {pattern!r}{hint}")
    return found


def _hook(fn: Intervention, at: Hook):
    def forward_hook(module, inputs, output):
        changed = fn(output, at)
        if changed is None:
            return None
        if not isinstance(changed, torch.Tensor) or changed.shape != output.shape:
            got = tuple(changed.shape) if isinstance(changed, torch.Tensor) else type(changed).__name__
            raise ValueError(f"intervention at {at.name} returned {got}; expected a tensor of shape {tuple(output.shape)}")
        return changed

    return forward_hook


@contextmanager
def intervene(
    model: nn.Module, interventions: Mapping[str, Intervention], step_by_step: bool | None = None
) -> Iterator[list[str]]:
    """Pass the values of matching hook points through their functions while the block runs.

    Args:
        model: any module containing hook points.
        interventions: glob pattern on hook point names (e.g. "decoder.layers.3.ffn_residual.hook_sum",
            "*.self_attn.hook_probs") -> fn(value, hook) returning the replacement or None. A pattern
            that matches nothing is a UserError; several patterns may match one point, applied in
            the order given.
        step_by_step: run attention step by step; None means when a pattern names a point only
            that mode passes through.
    Yields:
        the names of the hook points intervened on.
    """
    points = hook_points(model)
    chosen = [(pattern, _matches(points, pattern), fn) for pattern, fn in interventions.items()]
    names = list(dict.fromkeys(name for _, found, _ in chosen for name, _ in found))
    if step_by_step is None:
        step_by_step = any(name.rpartition(".")[2] in STEP_BY_STEP_POINTS for name in names)
    handles = []
    try:
        for _, found, fn in chosen:
            for name, point in found:
                handles.append(point.register_forward_hook(_hook(fn, Hook(name, tuple(point.dims), point.what))))
        with step_by_step_mode(model, on=step_by_step):
            yield names
    finally:
        for handle in handles:
            handle.remove()
