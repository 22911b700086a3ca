"""Article C's walk-through by the numbers: one sentence through a width-6 Transformer, every
intermediate matrix printed.

Each activation printed is the tensor the model computed, read from a Recording; weights are
read from the model's parameters. Nothing is recomputed here, so the printout can be checked
step by step against the formulas (tests do exactly that with NumPy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from glassformer.framing import Framing, decoder_start, source_ids
from glassformer.inspect.decoding import DecodeStep, decode_steps
from glassformer.inspect.matrix_text import Block, feature_labels, format_block
from glassformer.inspect.recorder import Recording, record
from glassformer.text import Tokenizer


@dataclass
class Walkthrough:
    """The printable items (text lines and Blocks) and what they were read from."""

    items: list[str | Block]
    recording: Recording
    source_tokens: list[str]
    steps: list[DecodeStep]
    translation: str

    def blocks(self) -> dict[str, Block]:
        """Every Block by key."""
        return {item.key: item for item in self.items if isinstance(item, Block)}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


class _Writer:
    """Appends text lines and Blocks, reading activations from one Recording at step `self.step`."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, recording: Recording):
        self.model, self.tok, self.rec = model, tokenizer, recording
        self.config = model.config
        self.step = 0
        self.items: list[str | Block] = []
        self.d_cols = feature_labels("d", self.config.d_model)
        self.a_cols = feature_labels("a", self.config.attn_width)

    def text(self, *lines: str) -> None:
        self.items.extend(lines)

    def block(self, key, title, values, rows, cols, source="", integer=False) -> None:
        values = np.asarray(values, dtype=np.float64)
        self.items.append(Block(key, title, values, list(rows), list(cols), source, integer))

    def hook(self, key, title, name, rows, cols, pick=lambda t: t[0]) -> None:
        """A Block of the tensor recorded at HookPoint `name`, sliced by pick (default: batch row 0)."""
        self.block(key, title, _np(pick(self.rec.value(name, self.step))), rows, cols, name)

    def linear(self, key: str, name: str, layer: nn.Linear, rows, cols, what: str) -> None:
        """A linear layer's weight in x W orientation (torch stores W transposed), then its bias."""
        self.block(key, f"{what} weight W (x W orientation)", _np(layer.weight.T), rows, cols, f"{name}.weight")
        if layer.bias is not None:
            bias_key = key.replace(".W", ".b")
            self.block(bias_key, f"{what} bias b", _np(layer.bias[None]), ["b"], cols, f"{name}.bias")

    # Parts -----------------------------------------------------------------------------------------
    def embedding(self, key: str, prefix: str, ids: list[int], labels: list[str]) -> None:
        d = self.config.d_model
        scale = math.sqrt(d) if self.config.scale_embeddings else 1.0
        self.block(f"{key}.ids", "token ids: each word's row in the vocabulary", [ids], ["id"], labels, integer=True)
        title = f"embedding: row `id` of E, × sqrt({d}) = × {scale:.4f}"
        self.hook(f"{key}.embedding", title, f"{prefix}.hook_tokens", labels, self.d_cols)
        title = f"positional encoding PE(pos, 2i) = sin(pos / 10000^(2i/{d})), PE(pos, 2i+1) = cos(...)"
        self.hook(f"{key}.positions", title, f"{prefix}.hook_positions", labels, self.d_cols)
        self.hook(f"{key}.x", "input X = embedding + positional encoding", f"{prefix}.hook_sum", labels, self.d_cols)

    def attention(self, key: str, path: str, q_rows: list[str], k_rows: list[str], q_from: str, kv_from: str) -> None:
        attn = self.model.get_submodule(path)
        n_heads, d_head = attn.n_heads, attn.d_head
        for n in ("q", "k", "v"):
            what = f"{n.upper()} projection (applied to {q_from if n == 'q' else kv_from})"
            self.linear(f"{key}.W{n}", f"{path}.w_{n}", getattr(attn, f"w_{n}"), self.d_cols, self.a_cols, what)
        self.hook(f"{key}.Q", f"Q = {q_from} Wq + bq", f"{path}.hook_q", q_rows, self.a_cols)
        self.hook(f"{key}.K", f"K = {kv_from} Wk + bk", f"{path}.hook_k", k_rows, self.a_cols)
        self.hook(f"{key}.V", f"V = {kv_from} Wv + bv", f"{path}.hook_v", k_rows, self.a_cols)
        for h in range(n_heads):
            first, last = h * d_head, (h + 1) * d_head - 1
            self.text(f"  head {h} of {n_heads}: Q_h, K_h, V_h are columns a{first}..a{last} of Q, K, V")
            pick = lambda t, h=h: t[0, h]  # noqa: E731
            hk, grid = f"{key}.h{h}", (q_rows, k_rows)
            self.hook(f"{hk}.scores", f"head {h}: Q_h K_hᵀ", f"{path}.hook_scores", *grid, pick)
            title = f"head {h}: ÷ sqrt({d_head}) = ÷ {math.sqrt(d_head):.4f}"
            if not attn.attn_scale:
                title = f"head {h}: not divided by sqrt({d_head}) (T5: Wq absorbs it)"
            if self.config.positions == "relative" and not path.endswith("cross_attn"):
                stack = path.split(".", 1)[0]  # the bias is computed once per stack, for every layer
                what = "one learned number per bucket of key - query distance"
                self.hook(f"{hk}.bias", f"head {h}: relative position bias, {what}", f"{stack}.position_bias.hook_bias",
                          *grid, pick)
                title += " + relative position bias"
            self.hook(f"{hk}.scaled", title, f"{path}.hook_scaled", *grid, pick)
            title = f"head {h}: mask, -inf where a key may not be seen"
            self.hook(f"{hk}.masked", title, f"{path}.hook_masked", *grid, pick)
            title = f"head {h}: softmax of each row (weights in [0, 1], each row sums to 1)"
            self.hook(f"{hk}.softmax", title, f"{path}.hook_probs", *grid, pick)
            context_cols = feature_labels("a", d_head, first)
            self.hook(f"{hk}.context", f"head {h}: softmax × V_h", f"{path}.hook_context", q_rows, context_cols, pick)
        self.hook(f"{key}.concat", "concatenation of the heads' outputs", f"{path}.hook_merged", q_rows, self.a_cols)
        self.linear(f"{key}.Wo", f"{path}.w_o", attn.w_o, self.a_cols, self.d_cols, "output projection")
        title = "output projection: concat Wo + bo (back to d_model)"
        self.hook(f"{key}.out", title, f"{path}.hook_out", q_rows, self.d_cols)

    def add_norm(self, key: str, path: str, rows: list[str], what: str) -> None:
        norm = self.model.get_submodule(path).norm
        self.hook(f"{key}.sum", f"add: {what}", f"{path}.hook_sum", rows, self.d_cols)
        self.block(f"{key}.gamma", "LayerNorm scale γ", _np(norm.weight[None]), ["γ"], self.d_cols, f"{path}.norm.weight")
        self.block(f"{key}.beta", "LayerNorm shift β", _np(norm.bias[None]), ["β"], self.d_cols, f"{path}.norm.bias")
        title = f"norm: (x - mean) / sqrt(var + {norm.eps:g}) · γ + β, row by row"
        self.hook(f"{key}.norm", title, f"{path}.hook_norm", rows, self.d_cols)

    def feedforward(self, key: str, path: str, rows: list[str]) -> None:
        ffn = self.model.get_submodule(path)
        h_cols = feature_labels("h", self.config.d_ff)
        self.linear(f"{key}.W1", f"{path}.w_1", ffn.w_1, self.d_cols, h_cols, "first feed-forward layer")
        self.hook(f"{key}.hidden", f"{self.config.activation}(x W1 + b1)", f"{path}.hook_hidden", rows, h_cols)
        self.linear(f"{key}.W2", f"{path}.w_2", ffn.w_2, h_cols, self.d_cols, "second feed-forward layer")
        self.hook(f"{key}.out", "feed-forward output h W2 + b2", f"{path}.hook_out", rows, self.d_cols)

    # Sections --------------------------------------------------------------------------------------
    def vocabulary(self) -> None:
        tokens = self.tok.tokens
        self.text("", "═══ Vocabulary ═══")
        self.text(f"{len(tokens)} tokens (5 specials, then the corpus's words, most frequent first):")
        self.text("  " + "  ".join(f"{i}:{t}" for i, t in enumerate(tokens)), "")
        title = "token embedding table E, learned (the output layer reuses it: tied)"
        table = _np(self.model.src_embed.token.weight)
        self.block("E", title, table, tokens, self.d_cols, "src_embed.token.weight")

    def encoder(self, ids: list[int], labels: list[str]) -> None:
        self.step = 0
        self.text("", "═══ Encoder ═══")
        self.embedding("enc", "src_embed", ids, labels)
        for i in range(len(self.model.encoder.layers)):
            path, key = f"encoder.layers.{i}", f"enc.l{i}"
            self.text("", f"─── encoder layer {i}: multi-head self-attention (every word looks at every word) ───")
            self.attention(f"{key}.attn", f"{path}.self_attn", labels, labels, "X", "X")
            self.add_norm(f"{key}.an1", f"{path}.self_attn_residual", labels, "X + attention output")
            self.text("", f"─── encoder layer {i}: feed-forward, applied to each position alike ───")
            self.feedforward(f"{key}.ffn", f"{path}.ffn", labels)
            self.add_norm(f"{key}.an2", f"{path}.ffn_residual", labels, "input + feed-forward output")
        title = "encoder output M (keys and values of every cross-attention)"
        self.hook("enc.out", title, "encoder.hook_out", labels, self.d_cols)

    def decoder_layer(self, key: str, i: int, labels: list[str], src_labels: list[str]) -> None:
        path = f"decoder.layers.{i}"
        self.text("", f"─── decoder layer {i}: masked self-attention (no word sees the words after it) ───")
        self.attention(f"{key}.self", f"{path}.self_attn", labels, labels, "X", "X")
        self.add_norm(f"{key}.an1", f"{path}.self_attn_residual", labels, "X + self-attention output")
        self.text(
            "", f"─── decoder layer {i}: cross-attention (queries Q from the decoder stream Y, "
            "keys K and values V from the encoder output M) ───",
            "  (Article C has the encoder give queries and keys and the decoder give values; "
            "the paper, followed here, does not.)",
        )
        self.attention(f"{key}.cross", f"{path}.cross_attn", labels, src_labels, "Y", "M")
        self.add_norm(f"{key}.an2", f"{path}.cross_attn_residual", labels, "Y + cross-attention output")
        self.text("", f"─── decoder layer {i}: feed-forward ───")
        self.feedforward(f"{key}.ffn", f"{path}.ffn", labels)
        self.add_norm(f"{key}.an3", f"{path}.ffn_residual", labels, "input + feed-forward output")

    def decoder_step(self, k: int, step: DecodeStep, src_labels: list[str], detail: bool, top: int | None) -> None:
        self.step = k
        labels = [self.tok.id_to_token(i) for i in step.prefix]
        self.text("", f"═══ Decoder step {k}: input {' '.join(labels)} ═══")
        if detail:
            self.embedding(f"dec{k}", "tgt_embed", step.prefix, labels)
            for i in range(len(self.model.decoder.layers)):
                self.decoder_layer(f"dec{k}.l{i}", i, labels, src_labels)
        last_row = lambda t: t[0, -1:]  # noqa: E731
        self.hook(f"dec{k}.last", "decoder output at the last position", "decoder.hook_out", labels[-1:], self.d_cols, last_row)
        logits = _np(self.rec.value("lm_head.hook_logits", k)[0, -1])
        probs = _np(self.rec.value("lm_head.hook_probs", k)[0, -1])
        order = np.argsort(-probs, kind="stable")[: top or len(probs)]
        shown = "" if top is None or top >= len(probs) else f", the {top} most probable of {len(probs)}"
        self.block(
            f"dec{k}.logits", f"logits = last row × Eᵀ (one per vocabulary word), and their softmax{shown}",
            np.stack([logits[order], probs[order]], axis=1), [self.tok.id_to_token(int(i)) for i in order],
            ["logit", "probability"], "lm_head.hook_logits, lm_head.hook_probs",
        )
        word = self.tok.id_to_token(step.chosen)
        then = "stop." if step.chosen == self.tok.end_id else "feed it back in."
        self.text(f"→ step {k} chooses {word!r} (id {step.chosen}, probability {probs[step.chosen]:.4f}); {then}")


def _detail_steps(detail: str, n_steps: int) -> set[int]:
    if detail == "all":
        return set(range(n_steps))
    if detail == "none":
        return set()
    if detail == "last":
        return {n_steps - 1}
    return {int(detail) % max(n_steps, 1)}


@torch.no_grad()
def explain(
    model: nn.Module, tokenizer: Tokenizer, text: str, max_steps: int = 12, detail: str = "last", top: int | None = None
) -> Walkthrough:
    """Translate text greedily with a toy encoder-decoder, recording every activation, and lay out
    the walk-through.

    Args:
        model: an EncoderDecoder (article B/C sizes keep the printout readable).
        tokenizer: its shared word tokenizer.
        max_steps: the most target words to produce.
        detail: which decoding steps print every decoder matrix: "last" (default: the longest,
            where the causal mask shows), "all", "none" or a step number.
        top: print only the top logits of each step (None: the whole vocabulary).
    """
    ids = source_ids(tokenizer, text, Framing())  # a model built here: glassformer's framing
    src = torch.tensor([ids], dtype=torch.long)
    src_labels = [tokenizer.id_to_token(i) for i in ids]
    with record(model, values=True) as recording:
        steps = decode_steps(model, src, decoder_start(tokenizer, Framing()), tokenizer.end_id, max_steps, recording)
    writer = _Writer(model, tokenizer, recording)
    writer.vocabulary()
    writer.encoder(ids, src_labels)
    details = _detail_steps(detail, len(steps))
    for k, step in enumerate(steps):
        writer.decoder_step(k, step, src_labels, k in details, top)
    words = [s.chosen for s in steps if s.chosen != tokenizer.end_id]
    translation = tokenizer.decode(words)
    writer.text("", f"translation: {translation}")
    return Walkthrough(writer.items, recording, src_labels, steps, translation)


def format_walkthrough(walkthrough: Walkthrough, precision: int = 4) -> str:
    """The walk-through as text: blocks separated by blank lines."""
    out: list[str] = []
    for item in walkthrough.items:
        lines = [format_block(item, precision), ""] if isinstance(item, Block) else [item]
        for line in lines:
            if line or (out and out[-1]):  # never two blank lines in a row
                out.append(line)
    return "\n".join(out).strip("\n") + "\n"
