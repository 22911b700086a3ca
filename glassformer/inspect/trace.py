"""The step-by-step shape table: every activation's shape, with named dimensions, in model order.

Rows come from a Recording (shapes only), so they show what really ran. A few rows are derived
from a recorded shape where the model has no HookPoint of its own: the projection weights
(from the parameters) and the reshape half of the head split (the view between [B, T, A] and
[B, H, T, D]), so that the table lines up with article A's row for row.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from glassformer.inspect.recorder import Record, Recording, record
from glassformer.nn.add_norm import PostNormResidual, PreNormResidual
from glassformer.nn.decoder import Decoder
from glassformer.nn.embedding import Embeddings
from glassformer.nn.encoder import Encoder
from glassformer.nn.feedforward import FeedForward
from glassformer.nn.gated_feedforward import GatedFeedForward
from glassformer.nn.multi_head_attention import MultiHeadAttention
from glassformer.nn.output import OutputProjection
from glassformer.nn.positional_encoding import SinusoidalPositions
from glassformer.nn.relative_position_bias import RelativePositionBias
from glassformer.nn.rms_norm import RMSNorm

_LAYER = re.compile(r"^(encoder|decoder)\.layers\.(\d+)\.")


@dataclass(frozen=True)
class TraceRow:
    """One row of the shape table.

    Args:
        where: the module (or input) it comes from, e.g. "encoder.layers.0.self_attn.hook_q".
        step: a short name for what this tensor is, e.g. "Q, K, V".
        shape: its shape; dims names each dimension, e.g. ("B", "T", "d_model").
        what: what happened to get here, with the shapes before and after.
        layer: "encoder.layers.0" style prefix when the row belongs to one layer, else "".
    """

    where: str
    step: str
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    what: str
    layer: str = ""


def plain_shape(shape) -> str:
    """[5,12,768]"""
    return "[" + ",".join(str(int(n)) for n in shape) + "]"


def arrow(before, after) -> str:
    """[5,12,512] → [5,12,8,64]"""
    return f"{plain_shape(before)} → {plain_shape(after)}"


def named_shape(shape, dims) -> str:
    """[B=5, T=12, d_model=768]"""
    return "[" + ", ".join(f"{d}={int(n)}" for d, n in zip(dims, shape)) + "]"


def stream_dims(name: str, dims: tuple[str, ...], family: str) -> tuple[str, ...]:
    """A HookPoint's declared dims with the sequence letter of the stream it sits in.

    HookPoints declare T for queries and S for keys; inside self-attention both are the same
    stream, which is S (the source) in an encoder-decoder's encoder and T everywhere else.
    """
    if ".cross_attn." in name:
        return dims
    source = family == "encoder-decoder" and (name.startswith("src_embed.") or name.startswith("encoder."))
    letter = "S" if source else "T"
    return tuple(letter if d in ("S", "T") else d for d in dims)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _layer(name: str) -> str:
    match = _LAYER.match(name)
    return f"{match.group(1)}.layers.{match.group(2)}" if match else ""


def _split(name: str) -> tuple[str, str]:
    owner, _, suffix = name.rpartition(".")
    return owner, suffix


def _groups(records: list[Record]) -> list[tuple[str, dict[str, Record]]]:
    """Consecutive records of the same owner module, as (owner, {suffix: record})."""
    groups: list[tuple[str, dict[str, Record]]] = []
    for r in records:
        owner, suffix = _split(r.name)
        if not groups or groups[-1][0] != owner or suffix in groups[-1][1]:
            groups.append((owner, {}))
        groups[-1][1][suffix] = r
    return groups


class _Rows:
    """Collects rows for one model; one method per kind of module."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.config = model.config
        self.family = model.config.family
        self.rows: list[TraceRow] = []

    def add(self, r: Record | None, step: str, what: str, shape=None, dims=None, where=None) -> None:
        name = where or r.name
        shape = tuple(r.shape) if shape is None else tuple(shape)
        dims = stream_dims(r.name, r.dims, self.family) if dims is None else tuple(dims)
        self.rows.append(TraceRow(name, step, shape, dims, what, _layer(name)))

    def embeddings(self, owner: str, module: Embeddings, recs: dict[str, Record]) -> None:
        if "hook_tokens" in recs:
            r = recs["hook_tokens"]
            scale = f", × sqrt({self.config.d_model})" if self.config.scale_embeddings else ""
            table = plain_shape(module.token.weight.shape)
            self.add(r, "embedding", f"look up each id in the {table} table{scale}: {arrow(r.shape[:-1], r.shape)}")
        if "hook_positions" in recs:
            sinusoidal = isinstance(module.position, SinusoidalPositions)
            kind = "sinusoidal sin/cos table" if sinusoidal else "learned position vectors"
            n = recs["hook_positions"].shape[1]
            self.add(recs["hook_positions"], "positional encoding", f"{kind}, rows 0..{n - 1}")
        if "hook_sum" in recs:
            what = "embedding + position, added element-wise (shape unchanged)"
            self.add(recs["hook_sum"], "+ positional encoding", what)
        if "hook_norm" in recs:
            self.add(recs["hook_norm"], "embedding LayerNorm", "LayerNorm (x - mean) / std over d_model")

    def attention(self, owner: str, module: MultiHeadAttention, recs: dict[str, Record]) -> None:
        cross = owner.endswith("cross_attn")
        d_model, width = module.w_q.in_features, module.w_q.out_features
        h, d = module.n_heads, module.d_head
        q, k = recs.get("hook_q"), recs.get("hook_k")
        if q is not None:
            each = plain_shape((d_model, width))
            kv_width = module.w_k.out_features
            if kv_width != width:
                each = f"Wq {each}, Wk and Wv {plain_shape((d_model, kv_width))}"
            else:
                each = f"each {each}"
            self.add(
                q, "Wq, Wk, Wv", f"three projections, one each for Q, K, V, {each}",
                shape=(d_model, width), dims=("d_model", "A"), where=f"{owner}.w_q|w_k|w_v",
            )
            if cross and k is not None:
                self.add(q, "Q", f"Q = X Wq from the decoder stream: {arrow(q.shape[:-1] + (d_model,), q.shape)}")
                what = f"K = M Wk, V = M Wv from the encoder output M: {arrow(k.shape[:-1] + (d_model,), k.shape)} each"
                self.add(k, "K, V", what, where=f"{owner}.hook_k|hook_v")
            elif k is not None and k.shape != q.shape:  # grouped-query attention: narrower K and V
                self.add(q, "Q", f"Q = X Wq: {arrow(q.shape[:-1] + (d_model,), q.shape)}")
                groups = h // module.n_kv_heads
                what = (f"X Wk, X Wv: {arrow(k.shape[:-1] + (d_model,), k.shape)} each, "
                        f"{module.n_kv_heads} key/value heads, each shared by {groups} query heads")
                self.add(k, "K, V", what, where=f"{owner}.hook_k|hook_v")
            else:
                what = f"X Wq, X Wk, X Wv: {arrow(q.shape[:-1] + (d_model,), q.shape)} each"
                self.add(q, "Q, K, V", what, where=f"{owner}.hook_q|hook_k|hook_v")
        qh, kh = recs.get("hook_q_heads"), recs.get("hook_k_heads")
        if qh is not None:
            b, _, t, _ = qh.shape
            dims = stream_dims(qh.name, qh.dims, self.family)
            kv_split = kv_swap = ""
            if cross and kh is not None:
                s = kh.shape[2]
                kv_split = f"; K, V {arrow((b, s, width), (b, s, h, d))}"
                kv_swap = f"; K, V → {plain_shape(kh.shape)}"
            split = f"view {arrow((b, t, width), (b, t, h, d))}: {h} heads of {width}/{h} = {d}{kv_split}"
            self.add(
                qh, "split into heads", split,
                shape=(b, t, h, d), dims=(dims[0], dims[2], dims[1], dims[3]), where=f"{owner}.hook_q_heads (view)",
            )
            swap = f"swap the sequence and head dims, one [seq, D] slice per head: {arrow((b, t, h, d), qh.shape)}{kv_swap}"
            self.add(qh, "transpose", swap, where=f"{owner}.hook_q_heads|hook_k_heads|hook_v_heads")
        q_rot, k_rot = recs.get("hook_q_rot"), recs.get("hook_k_rot")
        if q_rot is not None:
            norm = ", after an RMSNorm per head" if getattr(module, "q_norm", None) is not None else ""
            what = f"Q and K turned pair by pair by position × θ_i (RoPE{norm}); K {plain_shape(k_rot.shape)}"
            self.add(q_rot, "rotate Q, K", what, where=f"{owner}.hook_q_rot|hook_k_rot")
        if cross:
            hidden = "source padding"
        else:
            hidden = "padding or in the future (causal)" if owner.startswith("decoder") else "padding"
        queries = plain_shape(qh.shape) if qh is not None else "Q"
        steps = {
            "hook_scores": ("scores", lambda r: f"Q Kᵀ per head: {queries} × Kᵀ → {plain_shape(r.shape)}"),
            "hook_scaled": ("scaled", lambda r: self._scaled_what(module, cross, d)),
            "hook_masked": ("masked", lambda r: f"-inf where a key is {hidden}"),
            "hook_probs": ("softmax", lambda r: "softmax over the keys: each row sums to 1"),
            "hook_context": ("weighted values", lambda r: self._context_what(r, recs.get("hook_probs"))),
            "hook_merged": ("concat heads", lambda r: self._merge_what(r, h, d)),
            "hook_out": ("output linear", lambda r: f"Wo {plain_shape((width, d_model))} back to d_model: "
                         f"{arrow(r.shape[:-1] + (width,), r.shape)}"),
        }
        for suffix, (step, what) in steps.items():
            if suffix in recs:
                self.add(recs[suffix], step, what(recs[suffix]))

    def _scaled_what(self, module: MultiHeadAttention, cross: bool, d: int) -> str:
        what = f"÷ sqrt(D) = sqrt({d})" if module.attn_scale else "not divided by sqrt(D) (T5: Wq absorbs it)"
        if self.config.positions == "relative" and not cross:
            what += " + the stack's relative position bias, the same in every layer"
        return what

    def position_bias(self, owner: str, module: RelativePositionBias, recs: dict[str, Record]) -> None:
        if "hook_bias" in recs:
            r = recs["hook_bias"]
            direction = "both directions" if module.bidirectional else "past keys only"
            what = (f"a learned number per head and bucket of key - query distance ([{module.n_buckets},{r.shape[1]}] "
                    f"table, {direction}), added in every layer")
            self.add(r, "relative position bias", what)

    @staticmethod
    def _merge_what(r: Record, h: int, d: int) -> str:
        b, t, _ = r.shape
        return f"transpose back and reshape: {arrow((b, h, t, d), (b, t, h, d))} → {plain_shape(r.shape)}"

    @staticmethod
    def _context_what(r: Record, probs: Record | None) -> str:
        if probs is None:
            return f"probabilities × V per head → {plain_shape(r.shape)}"
        b, h, t, s = probs.shape
        return f"probabilities × V per head: {plain_shape(probs.shape)} × {arrow((b, h, s, r.shape[3]), r.shape)}"

    def residual(self, owner: str, module: nn.Module, recs: dict[str, Record]) -> None:
        sublayer = owner.rsplit(".", 1)[-1].replace("_residual", "")
        if "hook_sum" in recs and "hook_norm" in recs and isinstance(module, PostNormResidual):
            self.add(
                recs["hook_norm"], "residual + LayerNorm", f"x + {sublayer}(x), then (x - mean) / std per position",
                where=f"{owner}.hook_sum|hook_norm",
            )
            return
        if "hook_norm" in recs and isinstance(module.norm, RMSNorm):
            self.add(recs["hook_norm"], "RMSNorm", f"x / rms(x) per position, before {sublayer}")
        elif "hook_norm" in recs:
            self.add(recs["hook_norm"], "LayerNorm", f"(x - mean) / std per position, before {sublayer}")
        if "hook_sum" in recs:
            after = "(pre-norm: no norm after the add)" if isinstance(module, PreNormResidual) else ""
            self.add(recs["hook_sum"], "residual add", f"x + {sublayer}(...) {after}".strip())

    def feedforward(self, owner: str, module: FeedForward, recs: dict[str, Record]) -> None:
        c = self.config
        if "hook_hidden" in recs:
            r = recs["hook_hidden"]
            w1 = plain_shape((c.d_model, c.d_ff))
            what = f"{c.activation}(x W1 + b1), W1 {w1}: {arrow(r.shape[:-1] + (c.d_model,), r.shape)}"
            self.add(r, "feed-forward hidden", what)
        if "hook_out" in recs:
            r = recs["hook_out"]
            w2 = plain_shape((c.d_ff, c.d_model))
            self.add(r, "feed-forward out", f"h W2 + b2, W2 {w2}: {arrow(r.shape[:-1] + (c.d_ff,), r.shape)}")

    def gated_feedforward(self, owner: str, module: GatedFeedForward, recs: dict[str, Record]) -> None:
        c = self.config
        w = plain_shape((c.d_model, c.d_ff))
        if "hook_gate" in recs:
            r = recs["hook_gate"]
            self.add(r, "gate", f"{c.activation}(x W_gate), W_gate {w}: {arrow(r.shape[:-1] + (c.d_model,), r.shape)}")
        if "hook_up" in recs:
            self.add(recs["hook_up"], "up", f"x W_up, W_up {w}")
        if "hook_hidden" in recs:
            self.add(recs["hook_hidden"], "gated hidden", "gate * up, element by element (shape unchanged)")
        if "hook_out" in recs:
            r = recs["hook_out"]
            w_down = plain_shape((c.d_ff, c.d_model))
            self.add(r, "feed-forward out", f"h W_down, W_down {w_down}: {arrow(r.shape[:-1] + (c.d_ff,), r.shape)}")

    def stack(self, owner: str, module: nn.Module, recs: dict[str, Record]) -> None:
        if "hook_out" in recs:
            kind = "RMSNorm" if isinstance(module.final_norm, RMSNorm) else "LayerNorm"
            norm = f" after the final {kind}" if module.final_norm is not None else ""
            self.add(recs["hook_out"], f"{owner} output", f"the last layer's output{norm}")

    def output(self, owner: str, module: OutputProjection, recs: dict[str, Record]) -> None:
        d_model = self.config.d_model
        if "hook_logits" in recs:
            r = recs["hook_logits"]
            tied = " (tied to the token embedding)" if self.config.tie_output else ""
            if module.scale != 1.0:
                tied += f", after × d_model^-0.5 = × {module.scale:.4f}"
            what = f"pre-softmax linear [{d_model},{r.shape[-1]}]{tied}: {arrow(r.shape[:-1] + (d_model,), r.shape)}"
            self.add(r, "logits", what)
        if "hook_probs" in recs:
            r = recs["hook_probs"]
            self.add(r, "probabilities", f"softmax over the {r.shape[-1]}-token vocabulary")

    def group(self, owner: str, recs: dict[str, Record]) -> None:
        module = self.model.get_submodule(owner) if owner else self.model
        if isinstance(module, Embeddings):
            self.embeddings(owner, module, recs)
        elif isinstance(module, MultiHeadAttention):
            self.attention(owner, module, recs)
        elif isinstance(module, (PostNormResidual, PreNormResidual)):
            self.residual(owner, module, recs)
        elif isinstance(module, FeedForward):
            self.feedforward(owner, module, recs)
        elif isinstance(module, GatedFeedForward):
            self.gated_feedforward(owner, module, recs)
        elif isinstance(module, (Encoder, Decoder)):
            self.stack(owner, module, recs)
        elif isinstance(module, OutputProjection):
            self.output(owner, module, recs)
        elif isinstance(module, RelativePositionBias):
            self.position_bias(owner, module, recs)
        else:
            for r in recs.values():
                self.add(r, r.name.rsplit(".", 1)[-1].removeprefix("hook_"), r.what)


def trace_rows(
    recording: Recording,
    model: nn.Module,
    inputs: list[tuple[str, torch.Tensor]],
    output: torch.Tensor | None = None,
    step: int = 0,
) -> list[TraceRow]:
    """The shape table of one recorded forward.

    Args:
        recording: a Recording of every HookPoint of model (shapes suffice).
        inputs: ("source"|"target"|"tokens", ids [B, L]) in the order the model reads them.
        output: the forward's return value, shown as a last row when no logits HookPoint fired
            (encoder-only models end in a task head).
        step: which recorded forward to show.
    """
    builder = _Rows(model)
    family = model.config.family
    pending = list(inputs)

    def add_input(role: str, ids: torch.Tensor) -> None:
        letter = "S" if role == "source" and family == "encoder-decoder" else "T"
        what = {
            "source": f"source: a batch of {_count(ids.shape[0], 'sequence')} of {ids.shape[1]} ids",
            "target": f"decoder input (teacher forcing): {ids.shape[1]} ids per sequence",
            "tokens": f"a batch of {_count(ids.shape[0], 'sequence')} of {ids.shape[1]} ids",
        }[role]
        label = "target token ids" if role == "target" else "token ids"
        builder.rows.append(TraceRow(role, label, tuple(ids.shape), ("B", letter), what))

    if pending:
        add_input(*pending.pop(0))
    for owner, recs in _groups([r for r in recording.records if r.step == step]):
        if pending and owner == "tgt_embed":
            add_input(*pending.pop(0))
        builder.group(owner, recs)
    if output is not None and not any(r.step == "logits" for r in builder.rows):
        head = model.config.head
        head_dims = {
            "classify": ("B", "n_labels"), "tag": ("B", "T", "n_labels"), "mlm": ("B", "T", "V"),
            "qa": ("B", "start/end", "T"),
        }
        dims = head_dims.get(head, ("B", "T", "d_model"))
        what = "the encoder's hidden states (no task head)" if head == "none" else f"the {head} head's output"
        builder.rows.append(TraceRow("output", "model output", tuple(output.shape), dims, what))
    return builder.rows


def trace_bytes(config, batch: int, length: int, target_length: int | None = None) -> int:
    """A generous estimate of the float32 activations one traced forward pass keeps, in bytes.

    Every sub-layer's input and output is recorded: per token about twelve d_model-wide tensors
    and two d_ff-wide ones a layer, the scores and probabilities of each head, and the logits.
    """
    def stack(layers: int, queries: int, keys: int, attentions: int = 1) -> int:
        per_layer = queries * (12 * config.d_model + 2 * config.d_ff) + attentions * 2 * config.n_heads * queries * keys
        return layers * per_layer

    if config.family == "encoder-decoder":
        t = target_length or 1
        floats = stack(config.n_layers, length, length) + stack(config.decoder_layers, t, length, 2) + t * (
            config.tgt_vocab_size or config.vocab_size)
    else:
        floats = stack(config.n_layers, length, length) + length * config.vocab_size
    return 4 * batch * floats


def check_trace_memory(config, batch: int, length: int, target_length: int | None = None,
                       available: int | None = None) -> None:
    """UserError with the estimate when a trace would not fit in the memory left (checked before allocating)."""
    from glassformer.errors import UserError
    from glassformer.hardware import available_memory

    need = trace_bytes(config, batch, length, target_length)
    available = available if available is not None else available_memory()
    if available is not None and need > 0.8 * available:
        raise UserError(f"tracing batch {batch} x {length} tokens would keep about {need / 2**30:.1f} GiB of "
                        f"activations, more than the {available / 2**30:.1f} GiB of memory available; "
                        "use a smaller --batch or --seq")


@torch.no_grad()
def run_trace(model: nn.Module, ids: torch.Tensor, target: torch.Tensor | None = None) -> list[TraceRow]:
    """Run model once on ids (and target, for an encoder-decoder) and return its shape table.

    Args:
        ids: [B, S] source ids of an encoder-decoder, or [B, T] ids of the other families.
        target: [B, T] decoder input of an encoder-decoder.
    """
    family = model.config.family
    with record(model, step_by_step=True) as recording:
        if family == "encoder-decoder":
            output = model(ids, target)
        else:
            output = model(ids)
    inputs = [("source", ids), ("target", target)] if family == "encoder-decoder" else [("tokens", ids)]
    return trace_rows(recording, model, inputs, output)


def _index(layer: str) -> int:
    return int(layer.rsplit(".", 1)[1])


def select_layers(rows: list[TraceRow], keep: list[int] | None = None) -> list[TraceRow]:
    """Keep the rows of some layers, each run of left-out layers folded into one summary row.

    Args:
        keep: layer indices to show in every stack; None shows layer 0 only.
    """
    keep_set = {0} if keep is None else set(keep)
    out: list[TraceRow] = []
    i = 0
    while i < len(rows):
        row = rows[i]
        if not row.layer or _index(row.layer) in keep_set:
            out.append(row)
            i += 1
            continue
        stack = row.layer.rsplit(".", 1)[0]
        j, skipped = i, []
        while j < len(rows) and rows[j].layer.startswith(stack + ".") and _index(rows[j].layer) not in keep_set:
            if rows[j].layer not in skipped:
                skipped.append(rows[j].layer)
            j += 1
        first, last = skipped[0].rsplit(".", 1)[1], skipped[-1].rsplit(".", 1)[1]
        span = first if first == last else f"{first}-{last}"
        n = len(skipped)
        out.append(TraceRow(
            f"{stack}.{span}", f"× {n} more layer{'s' if n > 1 else ''}", rows[j - 1].shape, rows[j - 1].dims,
            f"layer{'s' if n > 1 else ''} {span}: the same steps and shapes again ({len(rows[i:j]) // n} rows each)",
        ))
        i = j
    return out


def format_table(rows: list[TraceRow]) -> str:
    """The rows as an aligned text table, with a rule line where a new layer starts."""
    header = ("#", "step", "shape", "what happened", "where")
    cells = [(str(i + 1), r.step, named_shape(r.shape, r.dims), r.what, r.where) for i, r in enumerate(rows)]
    widths = [max(len(c[k]) for c in [header, *cells]) for k in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header[:4], widths)) + "  " + header[4]]
    current = None
    for row, c in zip(rows, cells):
        if row.layer != current:
            current = row.layer
            if row.layer:
                lines.append(f"── {row.layer} " + "─" * max(0, sum(widths) + 6 - len(row.layer) - 4))
        lines.append("  ".join(x.ljust(w) for x, w in zip(c[:4], widths)) + "  " + c[4])
    return "\n".join(line.rstrip() for line in lines)


def rows_to_json(rows: list[TraceRow], **header) -> str:
    """The rows as JSON: {"rows": [{where, step, shape, dims, named_shape, what, layer}, ...], **header}."""
    data = [
        {**asdict(r), "shape": list(r.shape), "dims": list(r.dims), "named_shape": named_shape(r.shape, r.dims)}
        for r in rows
    ]
    return json.dumps({**header, "rows": data}, indent=2, ensure_ascii=False)
