"""Build a model from its configuration, initialise it, and count its parameters."""

from __future__ import annotations

import math

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.models.decoder_only import DecoderOnly
from glassformer.models.encoder_decoder import EncoderDecoder
from glassformer.models.encoder_only import EncoderOnly
from glassformer.nn.multi_head_attention import MultiHeadAttention
from glassformer.nn.positional_encoding import LearnedPositions
from glassformer.nn.rms_norm import RMSNorm

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
    sqrt(d_model) (so the scaled embedding has unit variance), else N(0, 0.02) as GPT-2/BERT.

    A linear layer that shares its weight with an embedding (a tied output projection) keeps the
    embedding's initialisation. Without the 1/sqrt(d_head) in attention (T5), Wq starts that
    much smaller instead, so that the first scores are no larger than the paper's.
    """
    embed_std = 1.0 / math.sqrt(config.d_model) if config.scale_embeddings else 0.02
    tables = {id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)}
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if id(module.weight) not in tables:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=embed_std)
        elif isinstance(module, LearnedPositions):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)
        if isinstance(module, MultiHeadAttention) and not config.attn_scale:
            with torch.no_grad():
                module.w_q.weight.mul_(config.d_head**-0.5)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
