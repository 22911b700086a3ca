"""Scaled dot-product attention and multi-head attention (paper section 3.2).

Masks follow `glassformer.nn.masks`: True where a query may attend. A query whose keys are all
masked gets all-zero probabilities and a zero output, never NaN.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.hooks import HookPoint
from glassformer.nn.kv_cache import KVCache, MemoryKV
from glassformer.nn.linear import Linear, concat_column_major, linear
from glassformer.nn.masks import causal_mask, combine
from glassformer.nn.module import Module


def _untapped(name: str, x: torch.Tensor) -> torch.Tensor:
    return x


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    tap: Callable[[str, torch.Tensor], torch.Tensor] = _untapped,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(D)) V, step by step, returning the probabilities too.

    Args:
        q: queries [B, H, T, D]; k, v: keys and values [B, H, S, D].
        mask: boolean, broadcastable to [B, H, T, S], True where attending is allowed.
        dropout_p: dropout on the probabilities (pass 0 when not training).
        tap: called as tap(step, tensor) on "scores", "scaled", "masked" and "probs"; returns
            the tensor to continue with (identity by default; hook points use it to observe).
    Returns:
        context [B, H, T, D] and probabilities [B, H, T, S] (before dropout).
    """
    scores = tap("scores", q @ k.transpose(-2, -1))  # [B, H, T, S]
    scaled = tap("scaled", scores / math.sqrt(q.size(-1)))
    if mask is None:
        probs = torch.softmax(scaled, dim=-1)
    else:
        masked = tap("masked", scaled.masked_fill(~mask, float("-inf")))
        has_key = mask.any(dim=-1, keepdim=True)
        # A row with no allowed key would be softmax(all -inf) = NaN; give it zeros instead.
        probs = torch.softmax(masked.masked_fill(~has_key, 0.0), dim=-1).masked_fill(~has_key, 0.0)
    probs = tap("probs", probs)
    weights = F.dropout(probs, dropout_p) if dropout_p > 0.0 else probs
    return weights.to(v.dtype) @ v, probs


# From PyTorch 2.5 the CPU kernels (flash and math) give a query whose keys are all masked a zero
# output and zero gradients by themselves; elsewhere we cannot count on it.
_CPU_KERNEL_ZEROES_EMPTY_ROWS = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)


def fast_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> torch.Tensor:
    """The same context as `attention` through PyTorch's fused kernel, without probabilities.

    Args as `attention`; is_causal applies the causal mask with T == S (mask must be None).
    """
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal)
    if q.device.type == "cpu" and _CPU_KERNEL_ZEROES_EMPTY_ROWS:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    empty = ~mask.any(dim=-1, keepdim=True)
    # Empty rows attend everywhere (no NaN in the kernel or its gradient), then are zeroed.
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | empty, dropout_p=dropout_p)
    return out.masked_fill(empty, 0.0)


class MultiHeadAttention(Module):
    """Multi-head attention with one Q, one K and one V projection shared by all heads.

    Heads are a logical split of the attention width A = H * D, which may differ from d_model
    (article A: 768 in, 512 attention, 8 heads of 64, output projection back to 768).

    With config.fused_qkv the projections of one input run as one matmul (Q, K, V for
    self-attention; K, V of the encoder output for cross-attention) over their weights
    concatenated; the parameters stay w_q, w_k, w_v, but forward hooks on those three Linear
    modules then do not fire (the HookPoints do).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        d_model, width = config.d_model, config.attn_width
        self.n_heads = config.n_heads
        self.d_head = config.d_head
        self.dropout_p = config.attention_dropout
        self.w_q = Linear(d_model, width, bias=config.bias)
        self.w_k = Linear(d_model, width, bias=config.bias)
        self.w_v = Linear(d_model, width, bias=config.bias)
        self.w_o = Linear(width, d_model, bias=config.bias)
        self.fused_qkv = config.fused_qkv
        self._packed: dict[int, tuple] = {}  # concatenated weights kept while no gradient is needed
        self.hook_q = HookPoint(("B", "T", "A"), "queries Q = X Wq")
        self.hook_k = HookPoint(("B", "S", "A"), "keys K = X Wk")
        self.hook_v = HookPoint(("B", "S", "A"), "values V = X Wv")
        self.hook_q_heads = HookPoint(("B", "H", "T", "D"), "split heads: reshape [B,T,H,D], transpose")
        self.hook_k_heads = HookPoint(("B", "H", "S", "D"), "keys split into heads")
        self.hook_v_heads = HookPoint(("B", "H", "S", "D"), "values split into heads")
        self.hook_scores = HookPoint(("B", "H", "T", "S"), "scores Q K^T")
        self.hook_scaled = HookPoint(("B", "H", "T", "S"), "scaled by 1/sqrt(D)")
        self.hook_masked = HookPoint(("B", "H", "T", "S"), "masked: -inf where not allowed")
        self.hook_probs = HookPoint(("B", "H", "T", "S"), "softmax over keys")
        self.hook_context = HookPoint(("B", "H", "T", "D"), "per-head context: probs V")
        self.hook_merged = HookPoint(("B", "T", "A"), "merge heads: transpose, reshape")
        self.hook_out = HookPoint(("B", "T", "d_model"), "output projection Wo")
        self._taps = {
            "scores": self.hook_scores, "scaled": self.hook_scaled,
            "masked": self.hook_masked, "probs": self.hook_probs,
        }

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)  # [B, H, T, D]

    def _tap(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self._taps[name](x)

    def _project(self, x: torch.Tensor, parts: tuple[nn.Linear, ...]) -> tuple[torch.Tensor, ...]:
        """x [B, T, d_model] through each of parts, as one matmul when fused_qkv is on."""
        if not self.fused_qkv:
            return tuple(part(x) for part in parts)
        weight, bias = self._packed_weights(parts)
        return linear(x, weight, bias).chunk(len(parts), dim=-1)  # each [B, T, A], a view

    def _packed_weights(self, parts: tuple[nn.Linear, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The parts' weights [n * A, d_model] and biases, concatenated."""
        weights = [p.weight for p in parts]
        bias = torch.cat([p.bias for p in parts]) if parts[0].bias is not None else None
        if torch.is_grad_enabled():
            return torch.cat(weights), bias  # anew on every call, so that gradients reach each part
        try:
            key = tuple((id(w), w.data_ptr(), w._version, w.dtype) for w in weights)
        except RuntimeError:  # inference tensors keep no version counter to check a copy against
            return torch.cat(weights), bias
        cached = self._packed.get(len(parts))
        if cached is None or cached[0] != key:  # first use, or a weight was replaced or changed in place
            # Column-major like each part (see glassformer.nn.linear), for the fast decoding path.
            cached = self._packed[len(parts)] = (key, concat_column_major(weights))
        return cached[1], bias

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        cache: KVCache | MemoryKV | None = None,
        cache_pos: int = 0,
        need_probs: bool = False,
    ) -> torch.Tensor:
        """Attend from x to itself (memory None) or to the encoder output (cross-attention).

        Args:
            x: queries' stream [B, T, d_model].
            memory: encoder output [B, S, d_model] for cross-attention, else None.
            mask: boolean [B|1, 1, T|1, S], True where attending is allowed.
            causal: also forbid keys after each query (queries sit at cache_pos ... cache_pos+T-1).
            cache: a KVCache (self-attention) or MemoryKV (cross-attention) for decoding.
            cache_pos: position of x's first token in the sequence when a KVCache is used.
            need_probs: take the step-by-step path even if no hook listens.
        Returns:
            [B, T, d_model].
        """
        if memory is None:
            q, k, v = self._project(x, (self.w_q, self.w_k, self.w_v))
            q = self._split(self.hook_q(q))
            k = self._split(self.hook_k(k))
            v = self._split(self.hook_v(v))
            if cache is not None:
                k, v = cache.update(cache_pos, k, v)
        else:
            q = self._split(self.hook_q(self.w_q(x)))
            if cache is not None and cache.filled:
                k, v = cache.k, cache.v
            else:
                k, v = self._project(memory, (self.w_k, self.w_v))
                k = self._split(self.hook_k(k))
                v = self._split(self.hook_v(v))
                if cache is not None:
                    cache.store(k, v)
        q, k, v = self.hook_q_heads(q), self.hook_k_heads(k), self.hook_v_heads(v)

        t, s = q.size(2), k.size(2)
        dropout_p = self.dropout_p if self.training else 0.0
        step_by_step = need_probs or any(h.active for h in self._taps.values())
        if causal and not step_by_step and t == 1:
            causal = False  # one query, at the last position: every key is in its past
        if causal and (mask is not None or t != s or step_by_step):
            mask = combine(causal_mask(t, s, offset=s - t, device=x.device), mask)
            causal = False
        if step_by_step:
            context, _ = attention(q, k, v, mask, dropout_p, tap=self._tap)
        else:
            context = fast_attention(q, k, v, mask, dropout_p, is_causal=causal)
        context = self.hook_context(context)  # [B, H, T, D]
        b = context.size(0)
        merged = self.hook_merged(context.transpose(1, 2).reshape(b, t, -1))  # [B, T, A]
        return self.hook_out(self.w_o(merged))
