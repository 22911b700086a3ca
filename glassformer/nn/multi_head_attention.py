"""Multi-head attention (paper 3.2.2): project, split into heads, attend, merge, project back.

`MultiHeadAttention` holds what every use shares; `SelfAttention` attends from a sequence to
itself (masked with `causal=True` in a decoder), `glassformer.nn.cross_attention.CrossAttention`
from the decoder to the encoder output.

Modern decoders change three things here, each chosen by the config: grouped-query attention
(n_kv_heads < n_heads: K and V have fewer heads, each shared by a group of query heads, and the
KV cache holds only those), rotary positions (queries and keys rotated by position before the
product, `glassformer.nn.rotary`) and a sliding window (each query sees its last
`sliding_window` keys only). T5 adds a relative position bias to the scores of self-attention
and does not divide them by sqrt(D) (`glassformer.nn.relative_position_bias`, attn_scale).

By default attention runs PyTorch's fused kernel. With `step_by_step` set (from outside, by
`glassformer.inspect.step_by_step`) it runs one operation at a time and passes the scores, the
scaled and masked scores and the probabilities through their hook points; both paths agree to
within 1e-6 in fp32.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.attention import scaled_dot_product_attention, softmax_over_keys
from glassformer.nn.hooks import HookPoint
from glassformer.nn.kv_cache import KVCache
from glassformer.nn.masks import causal_mask, combine
from glassformer.nn.rms_norm import RMSNorm
from glassformer.nn.rotary import apply_rotary

Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin [B|1, 1, T, D]


class MultiHeadAttention(nn.Module):
    """Q, K and V projections shared by all heads, scaled dot-product attention per head, and Wo.

    Heads are a logical split of the attention width A = H * D, which may differ from d_model
    (article A: 768 in, 512 attention, 8 heads of 64, output projection back to 768).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        d_model, width, kv_width = config.d_model, config.attn_width, config.kv_width
        self.n_heads = config.n_heads
        self.n_kv_heads = config.kv_heads
        self.d_head = config.d_head
        self.sliding_window = config.sliding_window
        self.attn_scale = config.attn_scale
        self.w_q = nn.Linear(d_model, width, bias=config.use_qkv_bias)
        self.w_k = nn.Linear(d_model, kv_width, bias=config.use_qkv_bias)
        self.w_v = nn.Linear(d_model, kv_width, bias=config.use_qkv_bias)
        self.w_o = nn.Linear(width, d_model, bias=config.use_attn_out_bias)
        self.attn_dropout = nn.Dropout(config.attention_dropout)
        self.step_by_step = False
        self.hook_q = HookPoint(("B", "T", "A"), "queries Q = X Wq")
        # Grouped-query attention: K and V have their own, smaller, width and head count.
        a_kv, h_kv = ("A", "H") if self.n_kv_heads == self.n_heads else ("A_kv", "H_kv")
        self.hook_k = HookPoint(("B", "S", a_kv), "keys K = X Wk")
        self.hook_v = HookPoint(("B", "S", a_kv), "values V = X Wv")
        self.hook_q_heads = HookPoint(("B", "H", "T", "D"), "split heads: reshape [B,T,H,D], transpose")
        self.hook_k_heads = HookPoint(("B", h_kv, "S", "D"), "keys split into heads")
        self.hook_v_heads = HookPoint(("B", h_kv, "S", "D"), "values split into heads")
        self.hook_scores = HookPoint(("B", "H", "T", "S"), "scores Q K^T")
        scaled = "scaled by 1/sqrt(D)" if config.attn_scale else "not scaled (T5)"
        if config.positions == "relative":
            scaled += "; self-attention adds the relative position bias"
        self.hook_scaled = HookPoint(("B", "H", "T", "S"), scaled)
        self.hook_masked = HookPoint(("B", "H", "T", "S"), "masked: -inf where not allowed")
        self.hook_probs = HookPoint(("B", "H", "T", "S"), "softmax over keys")
        self.hook_context = HookPoint(("B", "H", "T", "D"), "per-head context: probs V")
        self.hook_merged = HookPoint(("B", "T", "A"), "merge heads: transpose, reshape")
        self.hook_out = HookPoint(("B", "T", "d_model"), "output projection Wo")

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, A] -> [B, H, T, D] (or K, V [B, T, A_kv] -> [B, H_kv, T, D])."""
        b, t, width = x.shape
        return x.view(b, t, width // self.d_head, self.d_head).transpose(1, 2)

    def share_kv_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Keys or values [B, H_kv, S, D] -> [B, H, S, D]: each kv head repeated for its query group."""
        groups = self.n_heads // x.size(1)
        if groups == 1:
            return x
        b, h_kv, s, d = x.shape
        return x[:, :, None].expand(b, h_kv, groups, s, d).reshape(b, h_kv * groups, s, d)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False,
        position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention per head, heads merged, then Wo.

        Args:
            q: queries [B, H, T, D]; k, v: keys and values [B, H|H_kv, S, D].
            mask: boolean [B|1, 1, T|1, S], True where attending is allowed.
            causal: also forbid keys after each query; the T queries are the last T positions.
                With a sliding window, also keys `sliding_window` or more positions back.
            position_bias: float [1, H, T, S] added to every head's scores (T5's relative positions).
        Returns:
            [B, T, d_model].
        """
        q, k, v = self.hook_q_heads(q), self.hook_k_heads(k), self.hook_v_heads(v)
        t, s = q.size(2), k.size(2)
        window = self.sliding_window if causal and self.sliding_window is not None and s > self.sliding_window else None
        if causal and t == 1 and not self.step_by_step and window is None:
            causal = False  # one query, at the last position: every key is in its past
        if causal and (mask is not None or t != s or self.step_by_step or window is not None or position_bias is not None):
            mask = combine(causal_mask(t, s, offset=s - t, device=q.device, window=window), mask)
            causal = False
        if self.step_by_step:
            k, v = self.share_kv_heads(k), self.share_kv_heads(v)  # the fused kernel shares them itself
            scores = self.hook_scores(q @ k.transpose(-2, -1))  # [B, H, T, S]
            scaled = scores / math.sqrt(self.d_head) if self.attn_scale else scores
            if position_bias is not None:
                scaled = scaled + position_bias
            scaled = self.hook_scaled(scaled)
            if mask is not None:
                scaled = self.hook_masked(scaled.masked_fill(~mask, float("-inf")))
            probs = self.hook_probs(softmax_over_keys(scaled, mask))
            context = self.attn_dropout(probs) @ v
        else:
            dropout_p = self.attn_dropout.p if self.training else 0.0
            scale = None if self.attn_scale else 1.0
            context = scaled_dot_product_attention(q, k, v, mask, dropout_p, causal, position_bias, scale)
        context = self.hook_context(context)  # [B, H, T, D]
        merged = self.hook_merged(context.transpose(1, 2).reshape(context.size(0), t, -1))  # [B, T, A]
        return self.hook_out(self.w_o(merged))


class SelfAttention(MultiHeadAttention):
    """Each position attends to the positions of its own sequence (masked in a decoder).

    With rotary positions the queries and keys of each head are rotated by their positions
    (after Qwen3's per-head RMSNorm, when configured) before keys enter the cache.
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.q_norm = RMSNorm(config.d_head, eps=config.norm_eps) if config.qk_norm else None
        self.k_norm = RMSNorm(config.d_head, eps=config.norm_eps) if config.qk_norm else None
        h_kv = "H" if self.n_kv_heads == self.n_heads else "H_kv"
        self.hook_q_rot = HookPoint(("B", "H", "T", "D"), "queries rotated by their positions (RoPE)")
        self.hook_k_rot = HookPoint(("B", h_kv, "S", "D"), "keys rotated by their positions (RoPE)")

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
        cache_pos: int = 0,
        rope: Rope | None = None,
        position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, T, d_model] -> [B, T, d_model].

        Args:
            mask: boolean [B|1, 1, T|1, S], True where attending is allowed (S = cache_pos + T).
            causal: no query sees a later key.
            cache: keys and values of the earlier positions when decoding; x then holds the
                tokens at positions cache_pos ... cache_pos + T - 1.
            rope: cos and sin of the T tokens' rotary angles, for models with rotary positions.
            position_bias: [1, H, T, S] added to the scores, for models with relative positions (T5).
        """
        q = self.split_heads(self.hook_q(self.w_q(x)))  # [B, H, T, D]
        k = self.split_heads(self.hook_k(self.w_k(x)))  # [B, H_kv, T, D]
        v = self.split_heads(self.hook_v(self.w_v(x)))
        return self.attend_from_heads(q, k, v, mask, causal, cache, cache_pos, rope, position_bias)

    def attend_from_heads(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool,
        cache: KVCache | None, cache_pos: int, rope: Rope | None, position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The rest of `forward` once Q [B, H, T, D] and K, V [B, H_kv, T, D] are projected."""
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            cos, sin = rope
            q = self.hook_q_rot(apply_rotary(q, cos, sin))
            k = self.hook_k_rot(apply_rotary(k, cos, sin))
        if cache is not None:
            k, v = cache.update(cache_pos, k, v)  # [B, H_kv, cache_pos + T, D]
        return self.attend(q, k, v, mask, causal, position_bias)
