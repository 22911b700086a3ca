"""The parts of the Transformer: attention, masks, embeddings, feed-forward, residuals, layers."""

from glassformer.nn.attention import MultiHeadAttention, attention, fast_attention
from glassformer.nn.block import DecoderLayer, EncoderLayer
from glassformer.nn.embedding import Embeddings, LearnedPositions, SinusoidalPositions, sinusoidal_table
from glassformer.nn.feedforward import FeedForward
from glassformer.nn.hooks import HookPoint
from glassformer.nn.kv_cache import DecoderCache, KVCache, LayerCache, MemoryKV
from glassformer.nn.masks import causal_mask, combine, padding_mask
from glassformer.nn.residual import PostNormResidual, PreNormResidual
from glassformer.nn.stack import Decoder, Encoder

__all__ = [
    "MultiHeadAttention", "attention", "fast_attention", "DecoderLayer", "EncoderLayer", "Embeddings",
    "LearnedPositions", "SinusoidalPositions", "sinusoidal_table", "FeedForward", "HookPoint",
    "DecoderCache", "KVCache", "LayerCache", "MemoryKV", "causal_mask", "combine", "padding_mask",
    "PostNormResidual", "PreNormResidual", "Decoder", "Encoder",
]
