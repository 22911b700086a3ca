"""Activation patching: which activations carry the difference between a clean and a corrupted input?

Run the model on a clean input and on a corrupted one of the same length (one token changed, say)
that it answers differently. Then run the corrupted input again with one activation taken from
the clean run, and see how much of the answer comes back, as a fraction of a metric (by default
the logit difference between the correct answer and a wrong one):

    restored = (metric(patched) - metric(corrupt)) / (metric(clean) - metric(corrupt))

1 means that activation alone carries what the corruption took away; 0 means it carries none of
it. Two kinds of activation are patched:

- the residual stream at each (layer, position): the embeddings' output and each layer's output,
  at one position at a time (`residual_points` names the hook points);
- each attention head's output (its slice of `hook_context`), at every position at once, for
  every attention module of the model (encoder self, decoder self, cross).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.inspect.intervene import Hook, intervene
from glassformer.inspect.recorder import record

Metric = Callable[[torch.Tensor], torch.Tensor]
Inputs = Sequence[torch.Tensor]


def logit_difference(answer: int, wrong: int, position: int = -1) -> Metric:
    """A metric: logit of `answer` minus logit of `wrong` at one position, averaged over the batch.

    The model's output is [B, T, V] (a language model, a decoder, a masked-LM head) or
    [B, n_labels] (a sequence classifier, where position is unused).
    """

    def metric(logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 2:
            return (logits[:, answer] - logits[:, wrong]).mean()
        return (logits[:, position, answer] - logits[:, position, wrong]).mean()

    return metric


def default_side(model: nn.Module) -> str:
    """The stack whose residual stream is patched by default: the decoder, or an encoder-only model's encoder."""
    return "encoder" if model.config.family == "encoder-only" else "decoder"


def embeddings_output(embed: nn.Module, name: str) -> str:
    """The hook point an `Embeddings` module named name hands on: its norm's, else the sum with positions or
    segments, else (rotary and relative positions add nothing) the token embeddings'."""
    if embed.norm is not None:
        return f"{name}.hook_norm"
    if embed.position is not None or embed.segment is not None:
        return f"{name}.hook_sum"
    return f"{name}.hook_tokens"


def residual_points(model: nn.Module, side: str | None = None) -> list[str]:
    """The hook points the residual stream of one stack passes between layers.

    Returns:
        n_layers + 1 names: the embeddings' output, then the output of each layer (after its last
        residual add in a pre-norm model, after its last LayerNorm in a post-norm one).
    """
    side = side or default_side(model)
    family = model.config.family
    if side not in ("encoder", "decoder") or (family != "encoder-decoder" and side != default_side(model)):
        raise UserError(f"a {family} model has no {side!r} side to patch; it has: {default_side(model)}"
                        if family != "encoder-decoder" else f"side must be 'encoder' or 'decoder', got {side!r}")
    embed = "embed" if family != "encoder-decoder" else ("src_embed" if side == "encoder" else "tgt_embed")
    first = embeddings_output(model.get_submodule(embed), embed)
    last = "hook_sum" if model.config.norm == "pre" else "hook_norm"
    layers = model.get_submodule(side).layers
    return [first] + [f"{side}.layers.{i}.ffn_residual.{last}" for i in range(len(layers))]


def attention_modules(model: nn.Module) -> dict[str, list[str]]:
    """Every attention module, grouped by kind: {"encoder.self_attn" | "decoder.self_attn" |
    "decoder.cross_attn": [module path per layer]}."""
    kinds: dict[str, list[str]] = {}
    for side in ("encoder", "decoder"):
        stack = getattr(model, side, None)
        if stack is None:
            continue
        for name in ("self_attn", "cross_attn"):
            paths = [f"{side}.layers.{i}.{name}" for i, layer in enumerate(stack.layers)
                     if getattr(layer, name, None) is not None]
            if paths:
                kinds[f"{side}.{name}"] = paths
    return kinds


@dataclass
class Patching:
    """What patching restored.

    Args:
        clean, corrupt: the metric on the clean and on the corrupted run.
        points: the residual stream's hook points (rows of `residual`).
        residual: [n_layers + 1, T] fraction restored by patching each point at each position.
        heads: attention kind -> [n_layers, H] fraction restored by patching each head's output.
    """

    clean: float
    corrupt: float
    points: list[str]
    residual: torch.Tensor
    heads: dict[str, torch.Tensor]


def check_same_shape(clean: Inputs, corrupt: Inputs) -> None:
    """UserError unless the clean and corrupted inputs have the same shapes, tensor by tensor."""
    shapes = [tuple(t.shape) for t in clean], [tuple(t.shape) for t in corrupt]
    if shapes[0] != shapes[1]:
        raise UserError(f"clean and corrupted inputs must have the same length: got {shapes[0]} and {shapes[1]}")


def fraction_restored(value: torch.Tensor | float, clean: float, corrupt: float) -> torch.Tensor | float:
    """(value - corrupt) / (clean - corrupt); UserError when the two runs score the same."""
    if abs(clean - corrupt) < 1e-6:
        raise UserError(f"the clean and corrupted inputs score the same ({clean:.4g}): there is nothing to restore")
    return (value - corrupt) / (clean - corrupt)


def _put_position(clean: torch.Tensor, position: int):
    def patch(value: torch.Tensor, hook: Hook) -> torch.Tensor:
        out = value.clone()
        out[:, position] = clean[:, position]
        return out

    return patch


def _put_head(clean: torch.Tensor, index: int):
    def patch(value: torch.Tensor, hook: Hook) -> torch.Tensor:
        out = value.clone()
        out[:, index] = clean[:, index]  # [B, H, T, D]: one head at every position
        return out

    return patch


def clean_values(model: nn.Module, clean: Inputs, names: list[str]) -> dict[str, torch.Tensor]:
    """The values at the named hook points in the clean run (its first forward call)."""
    with torch.no_grad(), record(model, names=names, values=True, step_by_step=False) as rec:
        model(*clean)
    return {name: rec.value(name, step=0) for name in names}


@torch.no_grad()
def activation_patching(
    model: nn.Module, clean: Inputs, corrupt: Inputs, metric: Metric, side: str | None = None
) -> Patching:
    """Patch the residual stream at each (layer, position) and each head's output, clean into corrupt.

    Args:
        clean, corrupt: what model(*inputs) takes, the same shapes: ids [B, T] (LM, encoder), or
            source [B, S] and target [B, T] (encoder-decoder).
        metric: the model's output -> a scalar, e.g. `logit_difference(answer, wrong)`.
        side: the stack whose residual stream is patched, "encoder" or "decoder" (an
            encoder-decoder; default the decoder). Heads are patched in every stack.
    """
    check_same_shape(clean, corrupt)
    points = residual_points(model, side)
    kinds = attention_modules(model)
    contexts = [f"{path}.hook_context" for paths in kinds.values() for path in paths]
    seen = clean_values(model, clean, points + contexts)
    clean_score, corrupt_score = float(metric(model(*clean))), float(metric(model(*corrupt)))
    fraction_restored(0.0, clean_score, corrupt_score)  # fail early when there is nothing to restore

    def score(name: str, patch) -> float:
        with intervene(model, {name: patch}, step_by_step=False):
            return float(metric(model(*corrupt)))

    length = seen[points[0]].size(1)
    residual = torch.tensor([[score(name, _put_position(seen[name], p)) for p in range(length)] for name in points])
    heads = {
        kind: torch.tensor([[score(f"{path}.hook_context", _put_head(seen[f"{path}.hook_context"], h))
                             for h in range(seen[f"{path}.hook_context"].size(1))] for path in paths])
        for kind, paths in kinds.items()
    }
    return Patching(
        clean_score, corrupt_score, points,
        fraction_restored(residual, clean_score, corrupt_score),
        {kind: fraction_restored(grid, clean_score, corrupt_score) for kind, grid in heads.items()},
    )
