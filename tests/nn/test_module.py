"""glassformer.nn.module.Module: submodules found as plain attributes, always the registered ones."""

import pytest
import torch
from torch import nn

from glassformer.config import get_preset
from glassformer.models import build_model
from glassformer.nn.module import Module


class Holder(Module):
    def __init__(self):
        super().__init__()
        self.child = nn.Linear(2, 2)


def test_submodules_are_instance_attributes_and_registered():
    holder = Holder()
    assert holder.__dict__["child"] is holder._modules["child"] is holder.child
    assert [name for name, _ in holder.named_parameters()] == ["child.weight", "child.bias"]


def test_replacing_setting_to_none_deleting_and_add_module_keep_both_records_equal():
    holder = Holder()
    replacement = nn.Linear(2, 3)
    holder.child = replacement
    assert holder.child is replacement and holder._modules["child"] is replacement
    holder.child = None
    assert holder.child is None and holder._modules["child"] is None
    holder.add_module("child", nn.Identity())
    assert isinstance(holder.child, nn.Identity) and holder.child is holder._modules["child"]
    del holder.child
    assert "child" not in holder._modules
    with pytest.raises(AttributeError):
        holder.child
    holder.child = nn.Parameter(torch.zeros(1))  # a parameter may take the name back
    assert "child" in holder._parameters and "child" not in holder.__dict__


def test_every_model_module_with_children_finds_them_without_getattr():
    model = build_model(get_preset("tiny-seq2seq"))
    mirrored = [m for m in model.modules() if isinstance(m, Module)]
    assert len(mirrored) > 10
    for module in mirrored:
        for name, child in module._modules.items():
            assert module.__dict__[name] is child, f"{type(module).__name__}.{name}"
