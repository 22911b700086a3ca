"""Q, K and V of self-attention from one product over their concatenated weights.

Set up once, when a model is prepared for inference (as gpt-fast's load hook does when a
checkpoint is read), not by a cache at run time: the three weights are copied into one
[3A, d_model] tensor and w_q, w_k and w_v then hold views of it, so the parameters, their names
and the state dict stay what they were, and loading new values into them changes the fused
weight too. The hook points see the same Q, K and V; forward hooks on the three nn.Linear
modules themselves no longer fire, since they are not called.
"""

from __future__ import annotations

import torch

from glassformer.nn.kv_cache import KVCache
from glassformer.nn.multi_head_attention import Rope, SelfAttention
from glassformer.speed.choice import Choice, choose
from glassformer.speed.kernels import column_major
from glassformer.speed.small_batch import small_batch_linear


class FusedSelfAttention(SelfAttention):
    """SelfAttention computing [Q | K | V] = X [Wq | Wk | Wv]ᵀ as one product."""

    qkv_choice: Choice | None

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
        """As `SelfAttention.forward`."""
        qkv = small_batch_linear(x, self.qkv_weight, self.qkv_bias, self.qkv_choice)  # [B, T, A + 2 A_kv]
        widths = [self.w_q.out_features, self.w_k.out_features, self.w_v.out_features]
        q, k, v = qkv.split(widths, dim=-1)  # [B, T, A], [B, T, A_kv] twice
        q = self.split_heads(self.hook_q(q))
        k = self.split_heads(self.hook_k(k))
        v = self.split_heads(self.hook_v(v))
        return self.attend_from_heads(q, k, v, mask, causal, cache, cache_pos, rope, position_bias)


@torch.no_grad()
def fuse_qkv(
    attn: SelfAttention, small_batch: bool, weights: str = "fp32", only: tuple[tuple[bool, str], ...] | None = None
) -> Choice | None:
    """Turn attn into a FusedSelfAttention in place (same parameters, names and hooks).

    Args:
        small_batch: also use the small-batch kernel measured fastest for the fused shape (CPU).
        weights: "bf16" lets the fused weight be stored in bf16 where that measures faster (CPU),
            or always (a GPU, where the choice is given, not measured).
        only: measure only these (column-major, kernel) pairs (`choice.choose`).
    Returns:
        the choice of kernels, or None for F.linear.
    """
    linears = (attn.w_q, attn.w_k, attn.w_v)
    widths = [linear.out_features for linear in linears]  # A, A_kv, A_kv (A_kv < A with grouped-query attention)
    d_model = attn.w_q.in_features
    dtype = attn.w_q.weight.dtype
    has_bias = attn.w_q.bias is not None
    if small_batch:
        choice = choose(sum(widths), d_model, has_bias, dtype, weights, only)
    elif weights == "bf16" and dtype != torch.bfloat16:
        choice = Choice(False, ("linear",) * 3, "bfloat16")
    else:
        choice = None
    fused = torch.cat([attn.w_q.weight, attn.w_k.weight, attn.w_v.weight])  # [A + 2 A_kv, d_model]
    if choice is not None:
        fused = fused.to(getattr(torch, choice.dtype))
    if choice is not None and choice.column_major:
        fused = column_major(fused)
    attn.register_buffer("qkv_weight", fused, persistent=False)
    bias = torch.cat([attn.w_q.bias, attn.w_k.bias, attn.w_v.bias]) if has_bias else None
    attn.register_buffer("qkv_bias", bias, persistent=False)
    starts = [0, widths[0], widths[0] + widths[1]]
    for linear, start, width in zip(linears, starts, widths):
        linear.weight.data = fused[start:start + width]
        if has_bias:
            linear.bias.data = bias[start:start + width]
    attn.__class__ = FusedSelfAttention
    attn.qkv_choice = choice
    return choice
