"""Ablation: take one part of a model out and see what changes (zero, mean or resample).

A part is one attention head's output (its slice of `hook_context`, before the heads are merged
and projected by Wo), one feed-forward network's output, or a whole layer (its attention and
feed-forward outputs: a pre-norm layer then passes its input through unchanged). Its values are
replaced, for the length of a `with ablate(...)` block, by

- "zero": zeros;
- "mean": their mean over a reference run (over the batch and the positions);
- "resample": their values in a reference run on other inputs of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.inspect.intervene import Hook, intervene
from glassformer.inspect.recorder import record

HOW = ("zero", "mean", "resample")


@dataclass(frozen=True)
class Part:
    """Hook points whose values make up one part's output, and the head when the part is one head.

    Args:
        points: full hook point names, e.g. ("decoder.layers.1.self_attn.hook_context",).
        head: the head index in dim 1 of hook_context [B, H, T, D], or None for the whole value.
    """

    points: tuple[str, ...]
    head: int | None = None


def head(attention: str, index: int) -> Part:
    """One head of an attention module, e.g. head("decoder.layers.1.cross_attn", 2)."""
    return Part((f"{attention}.hook_context",), index)


def feedforward(ffn: str) -> Part:
    """One feed-forward network's output, e.g. feedforward("encoder.layers.0.ffn")."""
    return Part((f"{ffn}.hook_out",))


def layer(model: nn.Module, path: str) -> Part:
    """Everything one layer adds to the residual stream: its attention and feed-forward outputs."""
    try:
        module = model.get_submodule(path)
    except AttributeError:
        raise UserError(f"the model has no layer {path!r}") from None
    sublayers = [name for name in ("self_attn", "cross_attn", "ffn") if getattr(module, name, None) is not None]
    return Part(tuple(f"{path}.{name}.hook_out" for name in sublayers))


def _reference_values(model: nn.Module, part: Part, reference: Callable[[], object]) -> dict[str, torch.Tensor]:
    with torch.no_grad(), record(model, names=list(part.points), values=True, step_by_step=False) as rec:
        reference()
    return {name: rec.value(name, step=0) for name in part.points}


def _replacement(how: str, part: Part, seen: torch.Tensor | None):
    def replace(value: torch.Tensor, hook: Hook) -> torch.Tensor:
        source = value if seen is None else seen
        if how == "zero":
            new = torch.zeros_like(source)
        elif how == "mean":
            dims = (0, 2) if part.head is not None else tuple(range(source.dim() - 1))
            new = source.mean(dim=dims, keepdim=True).expand_as(value)  # [1, H, 1, D] or [1, 1, d]
        elif source.shape != value.shape:
            raise ValueError(f"resample ablation at {hook.name}: the reference run gave {tuple(source.shape)}, "
                             f"this run {tuple(value.shape)}; give reference inputs of the same shape")
        else:
            new = source
        if part.head is None:
            return new.to(value.dtype).expand_as(value)
        out = value.clone()
        out[:, part.head] = new.expand_as(value)[:, part.head]
        return out

    return replace


@contextmanager
def ablate(
    model: nn.Module, part: Part, how: str = "zero", reference: Callable[[], object] | None = None
) -> Iterator[Part]:
    """Replace the part's output as `how` says while the block runs.

    Args:
        part: from `head`, `feedforward` or `layer`.
        how: "zero", "mean" or "resample".
        reference: for "mean" and "resample", a function running the model on the reference inputs
            (e.g. `lambda: model(other_ids)`); its first forward call is the one recorded.
    """
    if how not in HOW:
        raise UserError(f"unknown ablation {how!r}; choose one of: {', '.join(HOW)}")
    if how != "zero" and reference is None:
        raise UserError(f"{how} ablation needs reference inputs to take values from")
    if part.head is not None:
        n_heads = model.get_submodule(part.points[0].rpartition(".")[0]).n_heads
        if not 0 <= part.head < n_heads:
            raise UserError(f"head {part.head} does not exist: {part.points[0].rpartition('.')[0]} has heads 0-{n_heads - 1}")
    seen = _reference_values(model, part, reference) if how != "zero" else {}
    with intervene(model, {name: _replacement(how, part, seen.get(name)) for name in part.points}):
        yield part
