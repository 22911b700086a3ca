"""Submodules found at the speed of an ordinary attribute.

nn.Module keeps submodules only in `_modules`, so `self.w_q` or `self.hook_q` is found by
`nn.Module.__getattr__`, which Python calls after its normal lookup has failed: about 1 us a
time on a 2-core EPYC, against 0.05 us for an instance attribute. A batch-1 decode step of a
6-layer model looks up about 280 submodules, a hundred of them hook points. Copying each
submodule into its parent's `__dict__` lets the normal lookup find it first.

`_modules` stays the record that everything else reads (state dict, hooks, `.to()`,
`named_modules()`). Replacing a submodule by assignment (`parent.child = new`, as peft does)
drops the copy, since nn.Module's `__setattr__` removes the name from `__dict__`; deleting one
or setting it to None does not, so do either before the model is prepared.
"""

from __future__ import annotations

from torch import nn


def cache_submodule_lookups(model: nn.Module) -> int:
    """Put every submodule of model into its parent's `__dict__`; returns how many."""
    count = 0
    for module in model.modules():
        for name, child in module._modules.items():
            if child is not None and module.__dict__.get(name) is not child:
                module.__dict__[name] = child
                count += 1
    return count
