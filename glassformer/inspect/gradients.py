"""Gradients at hook points, and attribution patching: activation patching estimated to first order.

`gradients(model, names)` attaches a full backward hook to each matching hook point for the
length of a `with` block; after a backward pass run inside it, the gradient of what was
differentiated with respect to each point's value is there to read. A point whose value needs
no gradient (a fixed sinusoidal position table) gets none.

Attribution patching uses them to estimate every patch of `glassformer.inspect.patch` from two
forward passes and one backward pass instead of one forward pass per patch: patching a value
from a to b changes the metric by about (b - a) . d metric / d value, taken in the corrupted run.
The estimate is exact where the metric is linear in the value and drifts from it where
LayerNorms, softmaxes and activations bend between the value and the metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.inspect.patch import (
    Inputs,
    Metric,
    Patching,
    attention_modules,
    check_same_shape,
    clean_values,
    fraction_restored,
    residual_points,
)
from glassformer.inspect.recorder import hook_points, matcher, record


@contextmanager
def gradients(model: nn.Module, names) -> Iterator[dict[str, torch.Tensor]]:
    """Collect d(what is differentiated)/d(value) at the matching hook points during the block.

    Args:
        names: glob pattern(s) on hook point names, as `record` takes them.
    Yields:
        a dict, filled in by the backward pass: hook point name -> gradient, the value's shape
        (the last firing's, when a point fires more than once).
    """
    wanted = matcher(names)
    points = [(name, point) for name, point in hook_points(model) if wanted(name)]
    if not points:
        raise UserError(f"no hook point matches {names!r}")
    found: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module, grad_input, grad_output):
            if grad_output[0] is not None:
                found[name] = grad_output[0].detach().clone()

        return hook

    handles = [point.register_full_backward_hook(keep(name)) for name, point in points]
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()


def attribution_patching(
    model: nn.Module, clean: Inputs, corrupt: Inputs, metric: Metric, side: str | None = None
) -> Patching:
    """The first-order estimate of `activation_patching`, with the same arguments and result layout.

    Residual cells sum (clean - corrupt) * gradient over d_model at one position; head cells over
    the head's positions and width. Both are divided by metric(clean) - metric(corrupt).
    """
    check_same_shape(clean, corrupt)
    points = residual_points(model, side)
    kinds = attention_modules(model)
    contexts = [f"{path}.hook_context" for paths in kinds.values() for path in paths]
    names = points + contexts
    seen = clean_values(model, clean, names)
    with torch.no_grad():
        clean_score = float(metric(model(*clean)))
    was_training = model.training
    model.eval()
    try:
        with gradients(model, names) as grads, torch.enable_grad():
            with record(model, names=names, values=True, step_by_step=False) as rec:
                corrupt_metric = metric(model(*corrupt))
            corrupt_metric.backward()
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    corrupt_score = float(corrupt_metric.detach())
    change = {name: (seen[name] - rec.value(name, step=0)) * grads[name] for name in names}
    residual = torch.stack([change[name].sum(dim=tuple(i for i in range(change[name].dim()) if i != 1))
                            for name in points])  # [L + 1, T]
    heads = {kind: torch.stack([change[f"{path}.hook_context"].sum(dim=(0, 2, 3)) for path in paths])
             for kind, paths in kinds.items()}  # [L, H]
    return Patching(
        clean_score, corrupt_score, points,
        fraction_restored(residual + corrupt_score, clean_score, corrupt_score),
        {kind: fraction_restored(grid + corrupt_score, clean_score, corrupt_score) for kind, grid in heads.items()},
    )
