"""Record what passes through a model's HookPoints, from outside, without changing a single bit.

`record(model)` attaches forward hooks to the selected HookPoints for the duration of a `with`
block and always removes them, also when the block raises. Every firing becomes a `Record`:
its shape always, its value (a detached clone) only where asked, and the step it belongs to
(one step per top-level forward call, or per `Recording.new_step()` in a decoding loop that
calls `model.decode` directly).

Why attention runs twice where its scores are recorded: a listener on hook_scores / _scaled /
_masked / _probs makes MultiHeadAttention take its step-by-step path, whose floating-point
rounding differs from the fused kernel it uses otherwise (by about 1e-7). So that recording
changes no output bit, the recorder then runs that attention module once more with those
listeners detached and passes the fused result on; the scores and probabilities it records are
the step-by-step path's, and everything from hook_context on is the fused path's, which is what
the rest of the model really receives. (In training mode the extra run also draws dropout
masks, so bit-identity is promised in eval mode, or with dropout 0.)
"""

from __future__ import annotations

import fnmatch
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, Union

import torch
from torch import nn

from glassformer.nn.attention import MultiHeadAttention
from glassformer.nn.hooks import HookPoint

Selector = Union[None, bool, str, Sequence[str], Callable[[str], bool]]

# The HookPoints whose listeners switch attention to its step-by-step path ...
STEP_BY_STEP = ("hook_scores", "hook_scaled", "hook_masked", "hook_probs")
# ... and those that come after the path splits, recorded from the fused path's run.
AFTER_SPLIT = ("hook_context", "hook_merged", "hook_out")


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


class _Recorder:
    """The hooks of one `record` block and the bookkeeping for attention's second run."""

    def __init__(self, model: nn.Module, names: Selector, values: Selector):
        self.model = model
        self.recording = Recording()
        self.wanted = matcher(names)
        self.keep_value = matcher(values)
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        # Attention modules whose step-by-step listeners we attach, with those HookPoints.
        self.tapped: dict[str, list[tuple[str, HookPoint]]] = {}
        self.tap_handles: dict[str, list[torch.utils.hooks.RemovableHandle]] = {}
        # For an attention module mid-forward: "tapped" (step-by-step run) or "fused" (second run).
        self.phase: dict[str, str] = {}

    # Attaching and removing ----------------------------------------------------------------------
    def attach(self) -> None:
        points = [(n, p) for n, p in hook_points(self.model) if self.wanted(n)]
        for name, point in points:
            owner, _, suffix = name.rpartition(".")
            if suffix in STEP_BY_STEP and isinstance(self.model.get_submodule(owner), MultiHeadAttention):
                self.tapped.setdefault(owner, []).append((name, point))
            else:
                self.handles.append(point.register_forward_hook(self._listener(name, point)))
        for owner in self.tapped:
            self._attach_taps(owner)
            attn = self.model.get_submodule(owner)
            self.handles.append(attn.register_forward_pre_hook(self._enter_attention(owner)))
            self.handles.append(attn.register_forward_hook(self._rerun_fused(owner), with_kwargs=True))
        self.handles.append(self.model.register_forward_pre_hook(self._enter_model))

    def _attach_taps(self, owner: str) -> None:
        self.tap_handles[owner] = [
            point.register_forward_hook(self._listener(name, point)) for name, point in self.tapped[owner]
        ]

    def _detach_taps(self, owner: str) -> None:
        for handle in self.tap_handles.pop(owner, []):
            handle.remove()

    def detach(self) -> None:
        for owner in list(self.tap_handles):
            self._detach_taps(owner)
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.phase.clear()

    # Hooks -------------------------------------------------------------------------------------------
    def _listener(self, name: str, point: HookPoint):
        owner, _, suffix = name.rpartition(".")
        keep = self.keep_value(name)

        def listen(module, inputs, output):
            phase = self.phase.get(owner)
            if phase == "tapped" and suffix in AFTER_SPLIT:
                return None  # recorded from the fused run that follows
            if phase == "fused" and suffix not in AFTER_SPLIT:
                return None  # already recorded in the step-by-step run
            value = output.detach().clone() if keep else None
            self.recording.records.append(
                Record(name, self.recording.step, tuple(output.shape), tuple(point.dims), point.what, value)
            )
            return None  # a forward hook that returns a tensor would replace the output

        return listen

    def _enter_model(self, module, inputs):
        self.recording.new_step()
        return None

    def _enter_attention(self, owner: str):
        def enter(module, inputs):
            self.phase[owner] = "tapped"
            return None

        return enter

    def _rerun_fused(self, owner: str):
        def rerun(module, args, kwargs, output):
            # Run the module again as it runs unobserved, and pass that output on instead.
            self._detach_taps(owner)
            self.phase[owner] = "fused"
            try:
                fused = module.forward(*args, **kwargs)
            finally:
                self.phase.pop(owner, None)
                self._attach_taps(owner)
            return fused

        return rerun


@contextmanager
def record(model: nn.Module, names: Selector = None, values: Selector = False) -> Iterator[Recording]:
    """Record the HookPoints of model while the block runs; every hook is removed on exit.

    Args:
        model: any module containing HookPoints (a whole model or one layer).
        names: which HookPoints to record: None (all), glob pattern(s) on module names such as
            "encoder.layers.*.self_attn.hook_probs", or a callable name -> bool.
        values: which of them also keep a detached clone of their tensor: False (shapes only),
            True (all recorded), or pattern(s) / a callable as for names.
    Yields:
        the Recording, filled in as the model runs.
    """
    recorder = _Recorder(model, names, values)
    try:
        recorder.attach()
        yield recorder.recording
    finally:
        recorder.detach()
