"""Every layer of a decoding step in one call into C: the time between the products taken away.

Batch-1 decoding reads each weight once per token, and the products of `glassformer.speed.native`
read them at about the speed of memory. What is left is the time between them: the flat step of
`decode_step` still makes some 25 PyTorch calls per layer (norms, attention, activation, residual
additions, views), 2-5 microseconds each, plus the products' own checks. On a 6-layer, 384-wide
GPT-2 that was as long as reading its weights. `native_layers.c` runs all the layers of one step
in one parallel region, with the same kernels for the products; where they fit, the embedding
before them (token and position tables) and the final norm and output projection after them too,
and rotary positions' angles, so that one call takes the token ids and gives the logits (the
PyTorch calls around the layers, embedding, norm and head, had cost a 6-layer GPT-2 about 0.2 ms per
token of ~2.5, rotary angles a LLaMA-shaped model 0.13 ms more). A short prompt (at most MAX_ROWS tokens in all rows)
goes through it too, its tokens attending causally: through the modules a 16-token prompt cost a
6-layer model as much as five generated tokens. Greedy decoding runs many steps in one call
(`NativeLayers.greedy`, `decode_greedy` in C): each step's most probable token and its
log-probability are found in C and fed to the next step, with no return to Python between tokens
(the decoding loop around each step, choosing, recording and checking, had cost a 6-layer GPT-2
0.4-0.5 ms of ~2.3 per token).

The results equal the flat step's within fp32 rounding (sums in another order, the activations'
exp and erf by polynomials, within 2e-6), not bit for bit; greedy tokens are the same in the
tests. It runs only where everything is as the C code expects, checked at each call: fp32 hidden
states on CPU, at most MAX_ROWS tokens in all, each layer's keys and values cached contiguously in
fp32 and written up to this position, a boolean key mask or none, the weights still the tensors it
was given (fp32 or bf16, in the layout their measured choice gave them), every token and position
id inside its table. Otherwise the flat step runs its own loop over the layers (one token per row),
or the call takes the module path (a prompt).
The structure (norms, activation, heads, attention scale) is read once, when it is built: a
submodule replaced later sends the calls to the module path (`decode_step`); the plain attributes
an experiment may reassign (each feed-forward's activation, the attention scale, each norm's eps, the
embedding and output scales: `_settings`) are compared at each call, and a changed one sends the call
to the flat step's own loop, which reads them. Other attributes (the number of heads, a norm's shape)
are not: build the model as wanted, then transform it.
"""

from __future__ import annotations

import ctypes
import math
import operator

import torch
from torch import nn

from glassformer.models.decoder_only import DecoderOnly
from glassformer.nn.add_norm import PreNormResidual
from glassformer.nn.feedforward import ACTIVATIONS
from glassformer.nn.gated_feedforward import GatedFeedForward
from glassformer.nn.kv_cache import DecoderCache
from glassformer.nn.multi_head_attention import SelfAttention
from glassformer.nn.positional_encoding import LearnedPositions
from glassformer.nn.rms_norm import RMSNorm
from glassformer.nn.rotary import RotaryEmbedding
from glassformer.speed import native
from glassformer.speed.bf16_weights import WidenedEmbedding
from glassformer.speed.fused_qkv import FusedSelfAttention
from glassformer.speed.kernels import is_column_major

MAX_ROWS = 16  # rows x tokens; beyond, the products are compute-bound and PyTorch's are faster
MAX_HEAD = 1024  # the widest head the C code rotates in place
ACTIVATION_CODES = {ACTIVATIONS[name]: code for code, name in enumerate(("relu", "gelu", "gelu_tanh", "silu"))}

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


class _Product(ctypes.Structure):
    _fields_ = [("w", _ptr), ("b", _ptr), ("out", _i64), ("in_", _i64), ("bf16", _i64), ("column_major", _i64)]


class _Norm(ctypes.Structure):
    _fields_ = [("w", _ptr), ("b", _ptr), ("eps", ctypes.c_double), ("rms", _i64)]


class _Layer(ctypes.Structure):
    _fields_ = [("attn_norm", _Norm), ("ffn_norm", _Norm), ("qkv", _Product), ("o", _Product), ("up", _Product),
                ("gate", _Product), ("down", _Product), ("pre_norm", _i64)]


class _Ends(ctypes.Structure):
    _fields_ = [("token", _ptr), ("vocab", _i64), ("token_bf16", _i64), ("token_stride", _i64),
                ("feature_stride", _i64), ("position", _ptr), ("n_positions", _i64),
                ("token_scale", ctypes.c_double), ("embed_norm", _Norm), ("final_norm", _Norm), ("head", _Product),
                ("head_scale", ctypes.c_double), ("inv_freq", _ptr)]


class _Step(ctypes.Structure):
    _fields_ = [(name, _i64) for name in ("rows", "tokens", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff",
                                          "max_len", "pos", "activation")] + [
        ("scale", ctypes.c_double), ("cos", _ptr), ("sin", _ptr), ("rope_stride", _i64), ("valid", _ptr),
        ("threads", _i64), ("ids", _ptr), ("positions", _ptr), ("logits", _ptr), ("last_only", _i64)]


def _ptr_of(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def structure_fits(model: DecoderOnly, fused_qkv: bool = True) -> bool:
    """Whether the C code knows every layer of a model `decode_step.supported` accepts: the same heads,
    attention scale, activation and widths in each, no per-head norms, LayerNorm or RMSNorm with
    weights, pre- or post-norm throughout. fused_qkv: whether self-attention not fused yet will be
    (the C code reads one Q/K/V weight). The weights' dtypes and layouts are checked by `NativeLayers.build`."""
    layers = model.decoder.layers
    if not layers:
        return False
    first = layers[0].self_attn
    shape = (first.n_heads, first.n_kv_heads, first.d_head, first.attn_scale)
    activation = ACTIVATION_CODES.get(layers[0].ffn.activation)
    widths = set()
    for layer in layers:
        attn, ffn = layer.self_attn, layer.ffn
        fused = type(attn) is FusedSelfAttention or (fused_qkv and type(attn) is SelfAttention)
        heads = (attn.n_heads, attn.n_kv_heads, attn.d_head, attn.attn_scale)
        if (not fused or attn.q_norm is not None or heads != shape or activation is None
                or ACTIVATION_CODES.get(ffn.activation) != activation):
            return False
        widths.add((ffn.w_up if type(ffn) is GatedFeedForward else ffn.w_1).out_features)
        norms = (layer.self_attn_residual.norm, layer.ffn_residual.norm)
        if any(type(n) not in (nn.LayerNorm, RMSNorm) or n.weight is None for n in norms):
            return False
        if (type(layer.self_attn_residual) is PreNormResidual) != (type(layer.ffn_residual) is PreNormResidual):
            return False
    return len(widths) == 1 and first.n_heads % first.n_kv_heads == 0 and first.d_head <= MAX_HEAD


class NativeLayers:
    """The decoder layers of one model, as one C call per decoding step; made by `NativeLayers.build`.

    Where the C code also fits the embedding (`embeds`), rotary positions (`rotates`: it turns the
    angles itself) and the final norm and output projection (`projects`), the call takes the token
    ids and returns the logits: the whole step.
    """

    def __init__(
        self, lib: ctypes.CDLL, model: DecoderOnly, layers: list, ends: _Ends, shape: dict, tensors: list[torch.Tensor]
    ):
        self.lib = lib
        self.model = model
        self.settings = _settings(model)
        self.layers = (_Layer * len(layers))(*layers)  # only read by the C code: one for every call and thread
        self.ends = ends
        self.embeds, self.projects, self.rotates = bool(ends.token), bool(ends.head.w), bool(ends.inv_freq)
        self.shape = shape  # what every step shares: d_model, heads, d_ff, activation, scale
        self.tensors = tensors  # kept alive, and compared at each call: a replaced weight ends the C path
        self.pointers = self._pointers()
        self.known_caches: tuple = ((),)  # the cache tensors last checked, and their addresses for the C code

    def _pointers(self) -> tuple[int, ...]:
        return tuple(map(torch.Tensor.data_ptr, self.tensors))

    @classmethod
    def build(cls, model: DecoderOnly) -> NativeLayers | None:
        """For a model `decode_step.supported` accepts; None where the C code does not fit it or is not built."""
        lib = native.library()
        if lib is None or not model.decoder.layers:
            return None
        tensors: list[torch.Tensor] = []

        def fits(t: torch.Tensor) -> bool:
            return t.dtype == torch.float32 and t.is_contiguous() and t.is_cpu

        def product(weight: torch.Tensor, bias: torch.Tensor | None) -> _Product | None:
            column = is_column_major(weight)
            if (weight.dim() != 2 or not (column or weight.is_contiguous()) or weight.device.type != "cpu"
                    or weight.dtype not in (torch.float32, torch.bfloat16)):
                return None
            if bias is not None and not fits(bias):
                return None
            tensors.extend(t for t in (weight, bias) if t is not None)
            return _Product(_ptr_of(weight), _ptr_of(bias), weight.size(0), weight.size(1),
                            int(weight.dtype == torch.bfloat16), int(column))

        def norm(module: nn.Module, d: int) -> _Norm | None:
            rms = type(module) is RMSNorm
            if not rms and (type(module) is not nn.LayerNorm or module.normalized_shape != (d,)):
                return None
            weight, bias = module.weight, None if rms else module.bias
            if weight is None or weight.shape != (d,) or any(t is not None and not fits(t) for t in (weight, bias)):
                return None
            tensors.extend(t for t in (weight, bias) if t is not None)
            return _Norm(_ptr_of(weight), _ptr_of(bias), module.eps, int(rms))

        if not structure_fits(model, fused_qkv=False):
            return None
        first = model.decoder.layers[0].self_attn
        d = model.config.d_model
        layers = []
        for layer in model.decoder.layers:
            attn, ffn = layer.self_attn, layer.ffn
            parts = [product(attn.qkv_weight, attn.qkv_bias), product(attn.w_o.weight, attn.w_o.bias)]
            if type(ffn) is GatedFeedForward:
                parts += [product(m.weight, m.bias) for m in (ffn.w_up, ffn.w_gate, ffn.w_down)]
            else:
                parts += [product(ffn.w_1.weight, ffn.w_1.bias), _Product(), product(ffn.w_2.weight, ffn.w_2.bias)]
            norms = [norm(layer.self_attn_residual.norm, d), norm(layer.ffn_residual.norm, d)]
            if None in parts or None in norms:
                return None
            layers.append(_Layer(*norms, *parts, int(type(layer.self_attn_residual) is PreNormResidual)))
        ends = _Ends(token_scale=model.embed.scale, head_scale=model.lm_head.scale)
        embedding = _embedding(model, d, norm)
        if embedding is not None:
            token, position, embed_norm = embedding
            tensors.extend(t for t in (token, position) if t is not None)
            ends.token, ends.vocab = token.data_ptr(), token.size(0)
            ends.token_stride, ends.feature_stride = token.stride()
            ends.token_bf16 = int(token.dtype == torch.bfloat16)
            ends.position, ends.n_positions = _ptr_of(position), 0 if position is None else position.size(0)
            ends.embed_norm = embed_norm
        final = model.decoder.final_norm
        final_norm = norm(final, d) if final is not None else _Norm()
        proj = model.lm_head.proj
        head = product(proj.weight, proj.bias) if proj.weight.size(1) == d else None
        if final_norm is not None and head is not None:
            ends.final_norm, ends.head = final_norm, head
        rotary = model.rotary
        if type(rotary) is RotaryEmbedding and rotary.inv_freq.shape == (first.d_head // 2,) and fits(rotary.inv_freq):
            tensors.append(rotary.inv_freq)
            ends.inv_freq = rotary.inv_freq.data_ptr()
        scale = 1.0 / math.sqrt(first.d_head) if first.attn_scale else 1.0
        shape = dict(d_model=d, n_heads=first.n_heads, n_kv_heads=first.n_kv_heads, d_head=first.d_head,
                     d_ff=layers[0].up.out, activation=ACTIVATION_CODES[model.decoder.layers[0].ffn.activation],
                     scale=scale)
        return cls(lib, model, layers, ends, shape, tensors)

    def __call__(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        x: torch.Tensor | None,
        mask: torch.Tensor | None,
        cache: DecoderCache,
        cache_pos: int,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        last_only: bool = False,
    ) -> torch.Tensor | None:
        """One step for ids [B, T] at positions [B, T] (the KV cache positions cache_pos ... cache_pos + T - 1;
        T > 1: a prompt, causal): the logits [B, T | 1, V] where `projects`, else the hidden states
        [B, T, d_model] after every layer. x: the embedded ids [B, T, d_model], None where `embeds`; rope:
        rotary cos and signed sin (`decode_step._rope`), None where `rotates`. None where this call is
        not one the C code takes (the caller then runs the step itself)."""
        d, d_head = self.shape["d_model"], self.shape["d_head"]
        rows, tokens = ids.shape
        if not self.embeds and (x is None or x.dtype != torch.float32 or not x.is_cpu):
            return None
        prepared = self._step(ids, positions, mask, cache, cache_pos, cache_pos + tokens)
        if prepared is None:
            return None
        step, caches, kv_pointers, pointed = prepared  # pointed: alive until the call returns
        hidden = torch.empty(rows * tokens, d) if self.embeds else x.reshape(rows * tokens, d).clone()
        cos = sin = None
        if rope is not None:  # [B|1, 1, T, D] -> one row per token, or one for all
            shared = rope[0].size(0) == 1 and tokens == 1
            cos, sin = (t.expand(rows, 1, tokens, d_head).reshape(-1, d_head).float().contiguous()
                        if not shared else t.reshape(1, d_head).float().contiguous() for t in rope)
            step.cos, step.sin, step.rope_stride = cos.data_ptr(), sin.data_ptr(), 0 if cos.size(0) == 1 else d_head
        logits = torch.empty(rows, 1 if last_only else tokens, self.ends.head.out) if self.projects else None
        step.logits, step.last_only = _ptr_of(logits), int(last_only)
        if self.lib.decode_layers(ctypes.byref(step), ctypes.byref(self.ends), self.layers, len(caches),
                                  hidden.data_ptr(), *kv_pointers):
            return None  # no memory for its scratch buffers, or an id outside its table: nothing was written
        for kv in caches:
            kv.length = cache_pos + tokens
        return logits if logits is not None else hidden.view(rows, tokens, d)

    def greedy(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None,
        cache: DecoderCache,
        cache_pos: int,
        n: int,
        limits: list[int],
        stops: list[int],
        max_position: int,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Greedy decoding of up to n tokens per row in one call (`decode_greedy` in native_layers.c), where
        the C code runs the whole step (`embeds`, `projects`, and `rotates` for rotary positions).

        ids [B, 1] are fed at cache position cache_pos and positions [B, 1] (mask: as `__call__`, for them);
        each step's most probable token is fed at the next. Row r stops after limits[r] tokens (0: it has
        stopped) or on a token of `stops`; position ids grow up to max_position. Returns the chosen tokens
        [B, m] and their log-probabilities [B, m] (log_softmax of the logits), column j chosen at step j;
        the caches hold the m tokens fed (ids and the first m - 1 columns): the last column is not fed yet.
        None where the C code does not take the call (nothing was run)."""
        if (not (self.embeds and self.projects) or (self.model.rotary is not None and not self.rotates)
                or ids.size(1) != 1 or n < 1 or len(limits) != ids.size(0)):
            return None
        prepared = self._step(ids, positions, mask, cache, cache_pos, cache_pos + n)
        if prepared is None:
            return None
        step, caches, kv_pointers, pointed = prepared  # pointed: alive until the call returns
        rows = ids.size(0)
        logits = torch.empty(rows, self.ends.head.out)
        step.logits = logits.data_ptr()
        hidden = torch.empty(rows, self.shape["d_model"])
        tokens, log_probs = torch.empty(rows, n, dtype=torch.int64), torch.empty(rows, n)
        limits_t, stops_t = torch.tensor(limits, dtype=torch.int64), torch.tensor(list(stops) or [0], dtype=torch.int64)
        done = self.lib.decode_greedy(ctypes.byref(step), ctypes.byref(self.ends), self.layers, len(caches),
                                      hidden.data_ptr(), *kv_pointers, n, limits_t.data_ptr(), stops_t.data_ptr(),
                                      len(stops), max_position, tokens.data_ptr(), log_probs.data_ptr())
        if done <= 0:
            return None  # no memory, or an id of the first step outside its table: nothing was written
        for kv in caches:
            kv.length = cache_pos + done
        return tokens[:, :done], log_probs[:, :done]

    def _step(
        self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None, cache: DecoderCache,
        cache_pos: int, end: int,
    ) -> tuple | None:
        """What every call shares: the _Step for ids [B, T] at cache_pos (its cos, sin and logits left
        unset), the layers' caches (with room up to end), their C address arrays, and the tensors the step
        points to (to be kept until the call returns); None where the C code does not take the call."""
        rows, tokens = ids.shape
        if (rows * tokens > MAX_ROWS or not ids.is_cpu or self._pointers() != self.pointers
                or _settings(self.model) != self.settings):
            return None
        if self.embeds or self.rotates:
            if ids.dtype != torch.int64 or positions.dtype != torch.int64:
                return None
            ids, positions = ids.contiguous(), positions.expand(rows, tokens).contiguous()
        caches = [layer.self_attn for layer in cache.layers]
        kv_pointers = self._kv_pointers(caches, rows, cache_pos, end)
        if kv_pointers is None:
            return None
        valid = None
        if mask is not None:  # a key mask, not a per-query one
            if mask.dtype != torch.bool or mask.shape != (rows, 1, 1, cache_pos + tokens):
                return None
            valid = mask.reshape(rows, cache_pos + tokens).contiguous().view(torch.uint8)
        step = _Step(rows=rows, tokens=tokens, max_len=caches[0].max_len, pos=cache_pos, valid=_ptr_of(valid),
                     threads=torch.get_num_threads(), ids=ids.data_ptr(), positions=positions.data_ptr(),
                     **self.shape)
        return step, caches, kv_pointers, (ids, positions, valid)

    def _kv_pointers(self, caches: list, rows: int, cache_pos: int, end: int) -> tuple | None:
        """The C arrays of every layer's key and of its value cache's address, or None where a cache is not
        as the C code reads it: fp32, contiguous [rows, H_kv, max_len, D], written up to cache_pos, with
        room up to end. A prompt's first call allocates the caches, as `KVCache.update` does.

        The checks of the tensors run when they are new: `KVCache` replaces its tensors (beam search's
        reorder) but never reshapes one in place, so the same tensors passed them before."""
        if len(caches) != len(self.layers) or any(kv.length != cache_pos or end > kv.max_len for kv in caches):
            return None
        tensors = [t for kv in caches for t in (kv.k, kv.v)]
        known = self.known_caches  # read once: another thread may replace it
        if len(known[0]) == len(tensors) and all(map(operator.is_, tensors, known[0])):
            return known[1:]
        expected = (rows, self.shape["n_kv_heads"], caches[0].max_len, self.shape["d_head"])
        for kv in caches:
            if kv.k is None and cache_pos == 0:
                kv.k, kv.v = torch.zeros(expected, dtype=torch.float32), torch.zeros(expected, dtype=torch.float32)
        tensors = [t for kv in caches for t in (kv.k, kv.v)]
        if any(t is None or t.shape != expected or t.dtype != torch.float32 or not t.is_contiguous() for t in tensors):
            return None
        addresses = ctypes.c_void_p * len(caches)
        keys, values = (addresses(*(t.data_ptr() for t in tensors[start::2])) for start in (0, 1))
        known = (tensors, keys, values)
        self.known_caches = known
        return known[1:]


def _settings(model: DecoderOnly) -> tuple:
    """The plain attributes the C code was built with that an experiment may reassign: the embedding
    and output scales, each norm's eps, and each layer's activation and attention scale (compared by
    value; functions by identity)."""
    ends = (model.embed.norm, model.decoder.final_norm)
    scales = (model.embed.scale, model.lm_head.scale) + tuple(getattr(norm, "eps", None) for norm in ends)
    return scales + tuple((layer.ffn.activation, layer.self_attn.attn_scale, layer.self_attn_residual.norm.eps,
                           layer.ffn_residual.norm.eps) for layer in model.decoder.layers)


def _embedding(model: DecoderOnly, d: int, norm) -> tuple | None:
    """(token table, position table or None, the embedding's _Norm) where the C code can embed the ids
    as `Embeddings` does; else None. The token table may be strided (column-major where it is also the
    output projection's weight)."""
    embed = model.embed
    token, position = embed.token, embed.position
    table = token.weight
    if (type(token) not in (nn.Embedding, WidenedEmbedding) or token.max_norm is not None or table.dim() != 2
            or table.size(1) != d or table.dtype not in (torch.float32, torch.bfloat16) or not table.is_cpu):
        return None
    if position is not None:
        position = position.weight if type(position) is LearnedPositions else position.table
        if position.shape[1:] != (d,) or position.dtype != torch.float32 or not position.is_contiguous():
            return None
    embed_norm = norm(embed.norm, d) if embed.norm is not None else _Norm()
    return None if embed_norm is None else (table, position, embed_norm)
