"""One decoding step of a decoder-only model as one flat function, without a module call per part.

Decoding feeds one token per sequence through the whole model, once per generated token. Through
the modules, each step of a 12-layer GPT-2 makes about 500 Python calls (each layer's norms,
attention, feed-forward, linear layers, dropouts and hook points), and each costs microseconds
on top of its product. `FlatDecode` computes the same step with the same PyTorch operations, in
the same order, in one loop over the layers: the outputs are the module path's, bit for bit.

It is installed as the model's `forward` (an instance attribute, so `type(model).forward` stays the
module path) and takes a call only when nothing could see the difference:

- one token per row (ids [B, 1]) with a KV cache, without gradients, in eval mode;
- no forward or forward-pre hook on any module of the model, and no global module hook: hooks
  attached by `glassformer.inspect` (record, intervene, the logit lens...) fire as usual, since
  their calls take the module path;
- no step-by-step attention (`glassformer.inspect.step_by_step`).

With `native=True` (what `optimize_for_inference` installs on CPU), each step runs in one call into
C where it fits the model and the call (`native_layers`): the layers, and where they fit the
embedding and the output projection; the same numbers within fp32 rounding, not bit for bit; a
prompt of at most MAX_ROWS tokens in all rows takes it too. Where the C code runs the whole step,
`greedy_steps` runs many greedy steps in one call, the C code choosing each token (the decoding
loop's `GreedySteps`): no return to Python between tokens.

Every other call (a longer prompt, training, a hooked model) goes to the module path unchanged. It is
built only for the structures it knows: a decoder-only LM of `glassformer.nn` parts (pre- or
post-norm, LayerNorm or RMSNorm, the paper's or the gated feed-forward, learned, sinusoidal or
rotary positions, grouped-query attention, Qwen3's per-head norms); anything else (a classifier
head, T5's relative positions, a sliding window, a module replaced by peft) keeps the module path.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module

from glassformer.models.decoder_only import DecoderOnly
from glassformer.nn.add_norm import PostNormResidual, PreNormResidual
from glassformer.nn.attention import scaled_dot_product_attention
from glassformer.nn.decoder import DecoderLayer
from glassformer.nn.embedding import Embeddings
from glassformer.nn.feedforward import FeedForward
from glassformer.nn.gated_feedforward import GatedFeedForward
from glassformer.nn.kv_cache import DecoderCache
from glassformer.nn.multi_head_attention import SelfAttention
from glassformer.nn.output import OutputProjection
from glassformer.nn.positional_encoding import LearnedPositions, SinusoidalPositions
from glassformer.nn.rms_norm import RMSNorm
from glassformer.speed.fused_qkv import FusedSelfAttention
from glassformer.speed.native_layers import MAX_ROWS, NativeLayers
from glassformer.speed.small_batch import SmallBatchLinear, small_batch_linear

_GLOBAL_FORWARD = getattr(_module, "_global_forward_hooks", {})
_GLOBAL_FORWARD_PRE = getattr(_module, "_global_forward_pre_hooks", {})

_NORMS = (nn.LayerNorm, RMSNorm)


def _linear(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """What linear(x) computes, through its measured kernel when it has one."""
    return small_batch_linear(x, linear.weight, linear.bias, getattr(linear, "choice", None))


def _is_plain_linear(module: nn.Module) -> bool:
    # A peft layer or any other wrapper in place of the linear layer is not.
    return type(module) in (nn.Linear, SmallBatchLinear)


def supported(model: nn.Module) -> bool:
    """Whether `FlatDecode` knows every part of model's decoding step."""
    if type(model) is not DecoderOnly or model.head is not None:
        return False
    config = model.config
    if config.positions == "relative" or config.sliding_window is not None:
        return False
    embed = model.embed
    if type(embed) is not Embeddings or embed.segment is not None:
        return False
    if embed.position is not None and type(embed.position) not in (LearnedPositions, SinusoidalPositions):
        return False
    if embed.norm is not None and not isinstance(embed.norm, _NORMS):
        return False
    if model.decoder.final_norm is not None and not isinstance(model.decoder.final_norm, _NORMS):
        return False
    if type(model.lm_head) is not OutputProjection or not _is_plain_linear(model.lm_head.proj):
        return False
    for layer in model.decoder.layers:
        if type(layer) is not DecoderLayer or layer.cross_attn is not None:
            return False
        attn, ffn = layer.self_attn, layer.ffn
        if type(attn) not in (SelfAttention, FusedSelfAttention):
            return False
        if not all(_is_plain_linear(m) for m in (attn.w_q, attn.w_k, attn.w_v, attn.w_o)):
            return False
        if type(ffn) is FeedForward:
            parts = (ffn.w_1, ffn.w_2)
        elif type(ffn) is GatedFeedForward:
            parts = (ffn.w_gate, ffn.w_up, ffn.w_down)
        else:
            return False
        if not all(_is_plain_linear(m) for m in parts):
            return False
        for res in (layer.self_attn_residual, layer.ffn_residual):
            if type(res) not in (PreNormResidual, PostNormResidual) or not isinstance(res.norm, _NORMS):
                return False
    return True


class FlatDecode:
    """model.forward with a flat path for one-token decoding steps (see the module docstring).

    Args:
        model: a DecoderOnly for which `supported(model)` holds.
        native: run the layers of each step in C where `NativeLayers` fits the model and the call.
    """

    def __init__(self, model: DecoderOnly, native: bool = False):
        self.model = model
        self.native = NativeLayers.build(model) if native else None
        modules = list(model.modules())
        # The dicts themselves: hooks registered later land in them.
        self.hook_dicts = [d for m in modules for d in (m._forward_hooks, m._forward_pre_hooks)]
        self.stepwise = [m for m in modules if hasattr(m, "step_by_step")]
        # Every parent, child name and child: a submodule replaced later (by peft, by hand) sends
        # the calls back to the module path, which runs whatever is there now.
        self.children = [m._modules for m in modules if m._modules]
        self.children_then = [dict(children) for children in self.children]

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        return self.forward(*args, **kwargs)

    def forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        cache_pos: int = 0,
        last_only: bool = False,
    ) -> torch.Tensor:
        """As `DecoderOnly.forward`."""
        if self.takes(ids, positions, cache):
            logits = self.step(ids, mask, positions, cache, cache_pos, last_only)
            if logits is not None:
                return logits
        return DecoderOnly.forward(self.model, ids, mask, positions, cache, cache_pos, last_only)

    def takes(self, ids: torch.Tensor, positions: torch.Tensor | None, cache: DecoderCache | None) -> bool:
        """Whether this call is a plain decoding step (or a prompt short enough for the C layers) that
        nothing watches."""
        return (
            cache is not None
            and positions is not None
            and (ids.size(1) == 1 or (self.native is not None and ids.numel() <= MAX_ROWS))
            and not self.model.training
            and not torch.is_grad_enabled()
            and not _GLOBAL_FORWARD
            and not _GLOBAL_FORWARD_PRE
            and not any(self.hook_dicts)
            and not any(m.step_by_step for m in self.stepwise)
            and all(map(operator.eq, self.children, self.children_then))  # modules compare by identity
        )

    def greedy_steps(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor | None,
        positions: torch.Tensor,
        cache: DecoderCache,
        cache_pos: int,
        n: int,
        limits: list[int],
        stops: list[int],
        max_position: int,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Up to n greedy decoding steps in one call into C (`NativeLayers.greedy`, same arguments), where
        a decoding step would take the flat path and the C code runs the whole step; None otherwise
        (the caller then steps one token at a time). Nothing watches the steps in between: a hook
        registered from another thread during the call takes effect at the next call."""
        if self.native is None or not self.takes(ids, positions, cache) or ids.size(1) != 1:
            return None
        return self.native.greedy(ids, positions, mask, cache, cache_pos, n, limits, stops, max_position)

    def step(
        self, ids: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor, cache: DecoderCache,
        cache_pos: int, last_only: bool = False,
    ) -> torch.Tensor | None:
        """Logits [B, T, V] (T = 1 with last_only) for ids [B, T] at positions [B, T], keys and values read
        from and written to cache; None for a prompt (T > 1) that the C layers do not take."""
        model = self.model
        native, rotary = self.native, model.rotary
        x = None if native is not None and native.embeds else _embed(model.embed, ids, positions)
        turned = rotary is None or (native is not None and native.rotates)  # no angles to compute here
        rope = None if turned else _rope(rotary(positions))
        out = native(ids, positions, x, mask, cache, cache_pos, rope, last_only) if native is not None else None
        if out is not None:
            if native.projects:
                return out
            x = out[:, -1:] if last_only else out
        elif ids.size(1) > 1:
            return None
        else:
            x = _embed(model.embed, ids, positions) if x is None else x
            rope = _rope(rotary(positions)) if rotary is not None and rope is None else rope
            for layer, layer_cache in zip(model.decoder.layers, cache.layers):
                x = _residual(layer.self_attn_residual, x, _attention, layer.self_attn, mask, layer_cache.self_attn,
                              cache_pos, rope)
                x = _residual(layer.ffn_residual, x, _feed_forward, layer.ffn)
        if model.decoder.final_norm is not None:
            x = _norm(model.decoder.final_norm, x)
        head = model.lm_head
        if head.scale != 1.0:
            x = x * head.scale
        return _linear(x, head.proj)


def _norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """norm(x) through the fused kernel: LayerNorm's, or for RMSNorm F.rms_norm (the same operations)."""
    if type(norm) is nn.LayerNorm:
        return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    if x.dtype == torch.float32 and norm.weight.dtype == torch.float32:
        return F.rms_norm(x, norm.weight.shape, norm.weight, norm.eps)
    return norm.forward(x)


def _embed(embed: Embeddings, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """`Embeddings.forward` for given positions, without segments."""
    tokens = embed.token.forward(ids)
    if embed.scale != 1.0:
        tokens = tokens * embed.scale
    x = tokens
    if embed.position is not None:
        x = tokens + embed.position.forward(positions).expand_as(tokens)
    if embed.norm is not None:
        x = _norm(embed.norm, x)
    return x


def _rope(cos_sin: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [B|1, 1, 1, D] -> cos and (-sin of the first half, sin of the second), for `_rotate`."""
    cos, sin = cos_sin
    half = sin.size(-1) // 2
    return cos, torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """`apply_rotary(x, cos, sin)` in fewer operations: rotate_half(x) * sin = roll(x, D/2) * signed_sin,
    since (-x2) * s == x2 * (-s) exactly."""
    return x * cos.to(x.dtype) + x.roll(x.size(-1) // 2, dims=-1) * signed_sin.to(x.dtype)


def _residual(res: nn.Module, x: torch.Tensor, sublayer, *args) -> torch.Tensor:
    """PreNormResidual or PostNormResidual around sublayer(module, h, *rest), dropout off."""
    if type(res) is PreNormResidual:
        return x + sublayer(args[0], _norm(res.norm, x), *args[1:])
    return _norm(res.norm, x + sublayer(args[0], x, *args[1:]))


def _attention(attn: SelfAttention, x, mask, kv, cache_pos, rope) -> torch.Tensor:
    """`SelfAttention.forward` for one query per row, with its KV cache."""
    h, h_kv = attn.n_heads, attn.n_kv_heads
    if type(attn) is FusedSelfAttention:
        qkv = small_batch_linear(x, attn.qkv_weight, attn.qkv_bias, attn.qkv_choice)  # [B, 1, (H + 2 H_kv) D]
        heads = qkv.view(qkv.size(0), 1, h + 2 * h_kv, attn.d_head).transpose(1, 2)  # [B, H + 2 H_kv, 1, D]
        q, k, v = heads.split([h, h_kv, h_kv], dim=1)
        qk = heads[:, :h + h_kv]
    else:
        q, k, v = (attn.split_heads(_linear(x, part)) for part in (attn.w_q, attn.w_k, attn.w_v))
        qk = None
    if attn.q_norm is not None:
        q, k = _norm(attn.q_norm, q), _norm(attn.k_norm, k)
        qk = None
    if rope is not None:  # queries and keys rotated together, as one tensor
        qk = torch.cat([q, k], dim=1) if qk is None else qk
        q, k = _rotate(qk, *rope).split([h, h_kv], dim=1)
    k, v = kv.update(cache_pos, k, v)
    scale = None if attn.attn_scale else 1.0
    context = scaled_dot_product_attention(q, k, v, mask, 0.0, False, None, scale)  # [B, H, 1, D]
    merged = context.transpose(1, 2).reshape(context.size(0), 1, -1)
    return _linear(merged, attn.w_o)


def _feed_forward(ffn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`FeedForward.forward` or `GatedFeedForward.forward`, dropout off."""
    if type(ffn) is FeedForward:
        return _linear(ffn.activation(_linear(x, ffn.w_1)), ffn.w_2)
    gate = ffn.activation(_linear(x, ffn.w_gate))
    return _linear(gate * _linear(x, ffn.w_up), ffn.w_down)


def install_flat_decode(model: nn.Module, native: bool = False) -> FlatDecode | None:
    """Give model the flat decoding step if `supported(model)`, its layers in C if native and they fit;
    returns the step installed, or None."""
    if not supported(model):
        return None
    model.forward = FlatDecode(model, native)
    return model.forward
