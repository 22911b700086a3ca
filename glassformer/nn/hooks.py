"""Named identity points that activations pass through, so tools can watch them from outside.

The model only calls `self.hook_x(tensor)`; recording lives in `glassformer.inspect`, which
attaches forward hooks to these modules and always removes them. With no hook attached a
HookPoint returns its input after one attribute check, so an idle model pays almost nothing.
"""

from __future__ import annotations

import torch
from torch import nn


class HookPoint(nn.Module):
    """Identity on a tensor, declared with the named dimensions of what passes through it.

    Args:
        dims: the dimension names, e.g. ("B", "H", "T", "S"), shown by shape traces.
        what: one short phrase saying what this activation is, shown by shape traces.
    """

    def __init__(self, dims: tuple[str, ...], what: str):
        super().__init__()
        self.dims = dims
        self.what = what

    @property
    def active(self) -> bool:
        """Whether anything listens here (callers may skip work that only listeners need)."""
        return bool(self._forward_hooks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self._forward_hooks:
            return x
        return super().__call__(x)

    def extra_repr(self) -> str:
        return f"[{', '.join(self.dims)}] {self.what}"
