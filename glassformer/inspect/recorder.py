"""Record what passes through a model's HookPoints, from outside.

`record(model)` attaches forward hooks to the selected HookPoints for the duration of a `with`
block and always removes them, also when the block raises. Every firing becomes a `Record`:
its shape always, its value (a detached clone) only where asked, and the step it belongs to
(one step per top-level forward call, or per `Recording.new_step()` in a decoding loop that
calls `model.decode` directly). Recording never changes a value: its hooks return nothing.

Attention's scores and probabilities exist only in the step-by-step mode
(`glassformer.inspect.step_by_step`); `record` turns that mode on for the block when the
selection names one of those points (or when asked to), and the outputs then differ from the
fused path's by rounding only (within 1e-6 in fp32).
"""

from __future__ import annotations

import fnmatch
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, Union

import torch
from torch import nn

from glassformer.inspect.step_by_step import STEP_BY_STEP_POINTS
from glassformer.inspect.step_by_step import step_by_step as step_by_step_mode
from glassformer.nn.hooks import HookPoint

Selector = Union[None, bool, str, Sequence[str], Callable[[str], bool]]


@dataclass(frozen=True)
class Record:
    """One firing of one HookPoint.

    Args:
        name: the HookPoint's module name, e.g. "encoder.layers.0.self_attn.hook_probs".
        step: the forward call (decoding step) it fired in, from 0.
        shape: the tensor's shape.
        dims: the HookPoint's declared dimension names, e.g. ("B", "H", "T", "S").
        what: the HookPoint's one-phrase description.
        value: a detached clone of the tensor, or None when values were not requested.
    """

    name: str
    step: int
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    what: str
    value: torch.Tensor | None = None


@dataclass
class Recording:
    """The records of one `record` block, in the order the HookPoints fired."""

    records: list[Record] = field(default_factory=list)
    step: int = 0

    def new_step(self) -> None:
        """Start the next step, unless the current one is still empty (so calling it twice is safe)."""
        if any(r.step == self.step for r in self.records[-1:]):
            self.step += 1

    @property
    def n_steps(self) -> int:
        """How many steps hold records."""
        return self.records[-1].step + 1 if self.records else 0

    def names(self) -> list[str]:
        """The distinct HookPoint names recorded, in first-firing order."""
        return list(dict.fromkeys(r.name for r in self.records))

    def select(self, pattern: str = "*", step: int | None = None) -> list[Record]:
        """The records whose name matches a glob pattern, in one step or in all (step None)."""
        return [
            r for r in self.records
            if (step is None or r.step == step) and fnmatch.fnmatchcase(r.name, pattern)
        ]

    def get(self, name: str, step: int | None = None) -> Record:
        """The last record of the HookPoint `name` in `step` (default: the last step it fired in)."""
        found = [r for r in self.records if r.name == name and (step is None or r.step == step)]
        if not found:
            where = "" if step is None else f" in step {step}"
            raise KeyError(f"nothing recorded at {name!r}{where}")
        return found[-1]

    def value(self, name: str, step: int | None = None) -> torch.Tensor:
        """The recorded tensor of the HookPoint `name` (see `get`); KeyError when only its shape was kept."""
        found = self.get(name, step)
        if found.value is None:
            raise KeyError(f"{name!r} was recorded without its value (pass values=... to record)")
        return found.value

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)


def matcher(selector: Selector) -> Callable[[str], bool]:
    """Turn a selection into a test on HookPoint names.

    Args:
        selector: None or True (every name), False (none), one glob pattern, a list of glob
            patterns (any may match), or a callable name -> bool.
    """
    if selector is None or selector is True:
        return lambda name: True
    if selector is False:
        return lambda name: False
    if callable(selector):
        return selector
    patterns = [selector] if isinstance(selector, str) else list(selector)
    return lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns)


def hook_points(model: nn.Module) -> list[tuple[str, HookPoint]]:
    """Every HookPoint of model with its module name, in registration order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, HookPoint)]


def _listener(recording: Recording, name: str, point: HookPoint, keep: bool):
    def listen(module, inputs, output):
        value = output.detach().clone() if keep else None
        recording.records.append(
            Record(name, recording.step, tuple(output.shape), tuple(point.dims), point.what, value)
        )

    return listen


@contextmanager
def record(
    model: nn.Module, names: Selector = None, values: Selector = False, step_by_step: bool | None = None
) -> Iterator[Recording]:
    """Record the HookPoints of model while the block runs; every hook is removed on exit.

    Args:
        model: any module containing HookPoints (a whole model or one layer).
        names: which HookPoints to record: None (all), glob pattern(s) on module names such as
            "encoder.layers.*.self_attn.hook_probs", or a callable name -> bool.
        values: which of them also keep a detached clone of their tensor: False (shapes only),
            True (all recorded), or pattern(s) / a callable as for names.
        step_by_step: run attention step by step inside the block; None means exactly when
            a selected point is one only that mode passes through (scores, probabilities).
    Yields:
        the Recording, filled in as the model runs.
    """
    recording = Recording()
    wanted, keep_value = matcher(names), matcher(values)
    points = [(name, point) for name, point in hook_points(model) if wanted(name)]
    if step_by_step is None:
        step_by_step = any(name.rpartition(".")[2] in STEP_BY_STEP_POINTS for name, _ in points)
    handles = [model.register_forward_pre_hook(lambda module, inputs: recording.new_step())]
    try:
        for name, point in points:
            handles.append(point.register_forward_hook(_listener(recording, name, point, keep_value(name))))
        with step_by_step_mode(model, on=step_by_step):
            yield recording
    finally:
        for handle in handles:
            handle.remove()
