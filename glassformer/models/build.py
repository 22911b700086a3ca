"""Build a model from its configuration, initialise it, and count its parameters."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.models.decoder_only import DecoderOnly
from glassformer.models.encoder_decoder import EncoderDecoder
from glassformer.models.encoder_only import EncoderOnly
from glassformer.nn.embedding import LearnedPositions

MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "encoder-decoder": EncoderDecoder,
    "encoder-only": EncoderOnly,
    "decoder-only": DecoderOnly,
}

Model = EncoderDecoder | EncoderOnly | DecoderOnly


def build_model(config: ModelConfig, init: bool = True) -> Model:
    """The model of config.family, with freshly initialised weights unless init is False."""
    model = MODEL_CLASSES[config.family](config)
    if init:
        init_weights(model, config)
    return model


def init_weights(model: nn.Module, config: ModelConfig) -> None:
    """Xavier-uniform linear layers with zero biases; embeddings N(0, 1/d_model) when scaled by
    sqrt(d_model) (so the scaled embedding has unit variance), else N(0, 0.02) as GPT-2/BERT."""
    embed_std = 1.0 / math.sqrt(config.d_model) if config.scale_embeddings else 0.02
    for module in model.modules():
        if isinstance(module, nn.Linear):
            fill(module.weight, nn.init.xavier_uniform_)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            fill(module.weight, nn.init.normal_, std=embed_std)
        elif isinstance(module, LearnedPositions):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    # Tied weights are initialised as embeddings (the loop may have reached the Linear last).
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            fill(module.weight, nn.init.normal_, std=embed_std)


def fill(weight: torch.Tensor, init: Callable[..., torch.Tensor], **kwargs) -> None:
    """init(weight, **kwargs) with the random numbers drawn in row-major order whatever weight's
    memory layout (`glassformer.nn.linear.Linear` is column-major), so that a seed gives the
    values it gives an nn.Linear."""
    values = init(torch.empty(weight.shape, dtype=weight.dtype, device=weight.device), **kwargs)
    with torch.no_grad():
        weight.copy_(values)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
