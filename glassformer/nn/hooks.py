"""Named identity points that activations pass through, so tools can watch and change them from outside.

The model only calls `self.hook_x(tensor)`. A HookPoint is a plain `nn.Module` whose forward
returns its input, so every kind of PyTorch hook works on it as on any module: a forward hook
sees the value and may return a replacement that flows on downstream, a forward-pre hook may
replace the input, and a full backward hook sees the gradient. Recording, interventions and
traces live in `glassformer.inspect`, which attaches hooks only for as long as it needs them.
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"[{', '.join(self.dims)}] {self.what}"
