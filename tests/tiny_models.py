"""Tiny seeded models and inputs with padding, shared by the tests of hook points, interventions and speed."""

import torch

from glassformer.config import get_preset
from glassformer.models import build_model


def tiny_model(preset: str, **changes):
    """A seeded tiny preset in eval mode, vocabulary 40, 64 positions."""
    torch.manual_seed(0)
    return build_model(get_preset(preset).replace(vocab_size=40, max_len=64, **changes)).eval()


def tiny_inputs(model, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Fixed ids of 7 tokens (the second row padded after 5) and, for an encoder-decoder, 5 target ids."""
    g = torch.Generator().manual_seed(1)
    v = model.config.vocab_size
    ids = torch.randint(5, v, (batch, 7), generator=g)
    if batch > 1:
        ids[1, 5:] = model.config.pad_id
    if model.config.family == "encoder-decoder":
        return ids, torch.randint(5, v, (batch, 5), generator=g)
    return (ids,)
