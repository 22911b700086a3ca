"""The parts of the Transformer, one file each: embedding, positional encoding, attention, masks,
add & norm, feed-forward, cross-attention, encoder and decoder layers, output projection; and
the modern decoder's: RMSNorm, rotary positions, the gated feed-forward network; and T5's
relative position bias."""

from glassformer.nn.add_norm import PostNormResidual, PreNormResidual
from glassformer.nn.attention import scaled_dot_product_attention, softmax_over_keys
from glassformer.nn.cross_attention import CrossAttention
from glassformer.nn.decoder import Decoder, DecoderLayer
from glassformer.nn.embedding import Embeddings
from glassformer.nn.encoder import Encoder, EncoderLayer
from glassformer.nn.feedforward import FeedForward
from glassformer.nn.gated_feedforward import GatedFeedForward
from glassformer.nn.hooks import HookPoint
from glassformer.nn.kv_cache import DecoderCache, KVCache, LayerCache, MemoryKV
from glassformer.nn.masks import causal_mask, combine, padding_mask
from glassformer.nn.multi_head_attention import MultiHeadAttention, SelfAttention
from glassformer.nn.output import OutputProjection
from glassformer.nn.positional_encoding import LearnedPositions, SinusoidalPositions, sinusoidal_table
from glassformer.nn.relative_position_bias import RelativePositionBias, relative_bucket
from glassformer.nn.rms_norm import RMSNorm
from glassformer.nn.rotary import RotaryEmbedding, apply_rotary

__all__ = [
    "CrossAttention", "Decoder", "DecoderCache", "DecoderLayer", "Embeddings", "Encoder", "EncoderLayer",
    "FeedForward", "GatedFeedForward", "HookPoint", "KVCache", "LayerCache", "LearnedPositions", "MemoryKV", "MultiHeadAttention",
    "OutputProjection", "PostNormResidual", "PreNormResidual", "RMSNorm", "RelativePositionBias", "RotaryEmbedding",
    "SelfAttention",
    "SinusoidalPositions", "apply_rotary", "causal_mask", "combine", "padding_mask", "scaled_dot_product_attention", "sinusoidal_table",
    "relative_bucket", "softmax_over_keys",
]
