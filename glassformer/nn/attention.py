"""Scaled dot-product attention (paper 3.2.1): Attention(Q, K, V) = softmax(Q Kᵀ / sqrt(D)) V.

Masks follow `glassformer.nn.masks`: True where a query may attend. A query whose keys are all
masked gets all-zero probabilities and a zero output, never NaN. Multi-head attention
(`glassformer.nn.multi_head_attention`) computes the same thing either through PyTorch's fused
kernel (`scaled_dot_product_attention`) or one operation at a time, so that the scores, masked
scores and probabilities can be looked at.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# From PyTorch 2.5 the CPU kernels (flash and math) give a query whose keys are all masked a zero
# output and zero gradients by themselves; elsewhere we cannot count on it.
_CPU_KERNEL_ZEROES_EMPTY_ROWS = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)
# From PyTorch 2.5 the fused kernel shares each key/value head among a group of query heads itself.
_KERNEL_HAS_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(Q Kᵀ / sqrt(D) + bias) V through PyTorch's fused kernel.

    Args:
        q: queries [B, H, T, D]; k, v: keys and values [B, H|H_kv, S, D] (grouped-query
            attention: H_kv heads, each shared by H / H_kv consecutive query heads).
        mask: boolean, broadcastable to [B, H, T, S], True where attending is allowed.
        dropout_p: dropout on the probabilities (pass 0 when not training).
        is_causal: apply the causal mask with T == S (mask must then be None and bias None).
        bias: float, broadcastable to [B, H, T, S], added to the scaled scores (T5's relative
            position bias); the kernel takes it as a float mask, -inf where mask forbids.
        scale: factor of the scores in place of 1/sqrt(D) (1.0 for T5).
    Returns:
        context [B, H, T, D].
    """
    gqa = {}
    if k.size(1) != q.size(1):
        if _KERNEL_HAS_GQA:
            gqa = {"enable_gqa": True}
        else:
            groups = q.size(1) // k.size(1)
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    if scale is not None:
        gqa["scale"] = scale
    if bias is not None:
        return _with_bias(q, k, v, mask, bias, dropout_p, gqa)
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal, **gqa)
    if q.device.type == "cpu" and _CPU_KERNEL_ZEROES_EMPTY_ROWS:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, **gqa)
    empty = ~mask.any(dim=-1, keepdim=True)
    # Empty rows attend everywhere (no NaN in the kernel or its gradient), then are zeroed.
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | empty, dropout_p=dropout_p, **gqa)
    return out.masked_fill(empty, 0.0)


def _with_bias(q, k, v, mask, bias, dropout_p: float, options: dict) -> torch.Tensor:
    """The fused kernel with an additive float mask: bias where allowed, -inf elsewhere."""
    bias = bias.to(q.dtype)
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, **options)
    empty = ~mask.any(dim=-1, keepdim=True)
    # Empty rows attend everywhere (no NaN in the kernel or its gradient), then are zeroed.
    float_mask = torch.where(mask | empty, bias, torch.tensor(float("-inf"), dtype=q.dtype, device=q.device))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=float_mask, dropout_p=dropout_p, **options)
    return out.masked_fill(empty, 0.0)


def softmax_over_keys(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax of masked scores [B, H, T, S] over the keys; a row with no allowed key gets zeros.

    Args:
        scores: scaled scores, -inf where mask forbids.
        mask: the boolean mask that put the -inf there, or None.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    has_key = mask.any(dim=-1, keepdim=True)
    # softmax(all -inf) would be NaN: such rows are softmaxed as zeros, then zeroed.
    return torch.softmax(scores.masked_fill(~has_key, 0.0), dim=-1).masked_fill(~has_key, 0.0)
