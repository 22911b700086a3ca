"""Named identity points that activations pass through, so tools can watch and change them from outside.

The model only calls `self.hook_x(tensor)`. A HookPoint is a plain `nn.Module` whose forward
returns its input, so every kind of PyTorch hook works on it as on any module: a forward hook
sees the value and may return a replacement that flows on downstream, a forward-pre hook may
replace the input, a full backward hook sees the gradient, and global module hooks see it too.
Recording, interventions and traces live in `glassformer.inspect`, which attaches hooks only
for as long as it needs them.

A model has about a hundred hook points, and decoding calls them once per token each. When no
hook of any kind is attached, here or globally, nn.Module's call would only call `forward`;
HookPoint then returns its input directly, which costs half as much.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as _module

# nn.Module's global hook registries: dicts that torch.nn.modules.module.register_module_*_hook
# fill in place, so these names always see the current hooks.
_GLOBAL_FORWARD = getattr(_module, "_global_forward_hooks", {})
_GLOBAL_FORWARD_PRE = getattr(_module, "_global_forward_pre_hooks", {})
_GLOBAL_BACKWARD = getattr(_module, "_global_backward_hooks", {})
_GLOBAL_BACKWARD_PRE = getattr(_module, "_global_backward_pre_hooks", {})


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

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self._forward_hooks or self._forward_pre_hooks or self._backward_hooks or self._backward_pre_hooks
            or _GLOBAL_FORWARD or _GLOBAL_FORWARD_PRE or _GLOBAL_BACKWARD or _GLOBAL_BACKWARD_PRE
        ):
            return super().__call__(x)
        return x

    def extra_repr(self) -> str:
        return f"[{', '.join(self.dims)}] {self.what}"
