"""The weight names BART, Marian and Blenderbot share (fairseq's layout), as rules for their layers.

Each encoder layer holds self_attn (q/k/v/out_proj), self_attn_layer_norm, fc1, fc2 and
final_layer_norm; each decoder layer adds encoder_attn and encoder_attn_layer_norm. Whether a
LayerNorm comes before or after its sublayer is not in the names: that is the family's setting.

A family may store the residual stream in another order of its d_model coordinates (Marian,
see hf_marian): `perm` then gives, for each HF coordinate, our coordinate (hf = ours[..., perm]).
Every tensor that reads the residual stream has its input columns reordered, every tensor that
writes it (output projections, biases, LayerNorms) its rows; inner widths (heads, d_ff) keep theirs.
Reordering is exact, so import -> export -> import gives back the very same tensors.
"""

from __future__ import annotations

import torch

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop.hf_folder import ACTIVATIONS, EXPORT_ACTIVATIONS, require, setting

SIDES = {"encoder": "src_embed", "decoder": "tgt_embed"}
# BART's and Blenderbot's special tokens (role -> tokenizer_config key, config.json id key, usual token).
FAIRSEQ_TOKENS = {
    "pad": ("pad_token", "pad_token_id", "<pad>"),
    "start": ("bos_token", "bos_token_id", "<s>"),
    "end": ("eos_token", "eos_token_id", "</s>"),
    "unk": ("unk_token", None, "<unk>"),
    "mask": ("mask_token", None, "<mask>"),
}


class Basis:
    """Conversions of residual-stream tensors between our coordinate order and the HF one."""

    def __init__(self, perm: torch.Tensor | None = None):
        self.perm = perm
        self.inverse = None if perm is None else torch.argsort(perm)

    def rows(self, ours: str, hf: str) -> tuple:
        """A tensor whose first axis is d_model (a bias, a LayerNorm, an output weight)."""
        if self.perm is None:
            return (ours, hf)
        return (ours, hf, lambda t: t[self.perm.to(t.device)], lambda t: t[self.inverse.to(t.device)])

    def columns(self, ours: str, hf: str) -> tuple:
        """A tensor whose last axis is d_model (an input weight, an embedding table)."""
        if self.perm is None:
            return (ours, hf)
        return (ours, hf, lambda t: t[..., self.perm.to(t.device)], lambda t: t[..., self.inverse.to(t.device)])

    def norm(self, ours: str, hf: str) -> list[tuple]:
        return [self.rows(f"{ours}.weight", f"{hf}.weight"), self.rows(f"{ours}.bias", f"{hf}.bias")]

    def reading(self, ours: str, hf: str) -> list[tuple]:
        """A linear layer that reads the residual stream (its bias is in its own width)."""
        return [self.columns(f"{ours}.weight", f"{hf}.weight"), (f"{ours}.bias", f"{hf}.bias")]

    def writing(self, ours: str, hf: str) -> list[tuple]:
        """A linear layer that writes the residual stream."""
        return [self.rows(f"{ours}.weight", f"{hf}.weight"), self.rows(f"{ours}.bias", f"{hf}.bias")]

    def attention(self, ours: str, hf: str) -> list[tuple]:
        return [
            *self.reading(f"{ours}.w_q", f"{hf}.q_proj"), *self.reading(f"{ours}.w_k", f"{hf}.k_proj"),
            *self.reading(f"{ours}.w_v", f"{hf}.v_proj"), *self.writing(f"{ours}.w_o", f"{hf}.out_proj"),
        ]


def layer_rules(config: ModelConfig, basis: Basis) -> list[tuple]:
    """Rules for every encoder and decoder layer of config."""
    out: list[tuple] = []
    for i in range(config.n_layers):
        ours, hf = f"encoder.layers.{i}.", f"model.encoder.layers.{i}."
        out += [
            *basis.attention(f"{ours}self_attn", f"{hf}self_attn"),
            *basis.norm(f"{ours}self_attn_residual.norm", f"{hf}self_attn_layer_norm"),
            *basis.reading(f"{ours}ffn.w_1", f"{hf}fc1"),
            *basis.writing(f"{ours}ffn.w_2", f"{hf}fc2"),
            *basis.norm(f"{ours}ffn_residual.norm", f"{hf}final_layer_norm"),
        ]
    for i in range(config.decoder_layers):
        ours, hf = f"decoder.layers.{i}.", f"model.decoder.layers.{i}."
        out += [
            *basis.attention(f"{ours}self_attn", f"{hf}self_attn"),
            *basis.norm(f"{ours}self_attn_residual.norm", f"{hf}self_attn_layer_norm"),
            *basis.attention(f"{ours}cross_attn", f"{hf}encoder_attn"),
            *basis.norm(f"{ours}cross_attn_residual.norm", f"{hf}encoder_attn_layer_norm"),
            *basis.reading(f"{ours}ffn.w_1", f"{hf}fc1"),
            *basis.writing(f"{ours}ffn.w_2", f"{hf}fc2"),
            *basis.norm(f"{ours}ffn_residual.norm", f"{hf}final_layer_norm"),
        ]
    return out


def shared_aliases() -> dict[str, str]:
    """The token table a file may repeat under the encoder's, decoder's and LM head's names."""
    copies = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight")
    return {name: "model.shared.weight" for name in copies}


def output_bias_rule() -> tuple:
    """HF keeps the output bias as a [1, V] buffer, final_logits_bias, added to the logits."""
    return ("lm_head.proj.bias", "final_logits_bias", lambda b: b[None], lambda b: b[0])


def common_problems(config: ModelConfig, kind: str, name: str) -> list[str]:
    """What keeps config from any of these classes (one width for both stacks is a given here)."""
    problems = [] if kind == "seq2seq" else [f"kind {kind!r} ({name} exports a sequence-to-sequence model)"]
    if not (config.tie_embeddings and config.tie_output):
        problems.append(f"untied embeddings ({name} shares one token table between encoder, decoder and output)")
    if config.n_segments:
        problems.append(f"n_segments ({name} has no segment embeddings)")
    if config.norm_eps != 1e-5:
        problems.append(f"norm_eps={config.norm_eps} ({name}'s LayerNorms use 1e-5)")
    return problems


def check_sides(hf: dict) -> list[str]:
    """Settings one ModelConfig cannot hold: different head counts or widths per stack, untied
    embeddings, an activation we do not have."""
    unsupported = []
    for encoder, decoder in (("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")):
        if hf.get(encoder) != hf.get(decoder):
            unsupported.append(f"{encoder}={hf.get(encoder)} != {decoder}={hf.get(decoder)}")
    if not hf.get("tie_word_embeddings", True):
        unsupported.append(setting("tie_word_embeddings", False))
    activation = hf.get("activation_function", "gelu")
    if activation not in ACTIVATIONS:
        unsupported.append(setting("activation_function", activation))
    return unsupported


def read_seq2seq_config(hf: dict, keys: set[str], family: str, pad: int, unsupported: list[str] = (), **layout) -> ModelConfig:
    """The ModelConfig of a fairseq-style config.json (BART, Marian, Blenderbot), the family
    giving what its names do not say: positions, d_model, where the norms sit (layout), its usual
    pad id, and settings of its own it cannot hold (unsupported, refused with check_sides's)."""
    unsupported = check_sides(hf) + list(unsupported)
    if unsupported:
        raise UserError(f"{family} setting(s) not supported: {', '.join(unsupported)}")
    vocab = require(hf, "vocab_size")
    pad = hf.get("pad_token_id", pad)
    return ModelConfig(
        family="encoder-decoder", vocab_size=vocab, d_model=layout.pop("d_model", None) or require(hf, "d_model"),
        n_heads=require(hf, "encoder_attention_heads"), d_ff=require(hf, "encoder_ffn_dim"),
        n_layers=require(hf, "encoder_layers"), n_decoder_layers=require(hf, "decoder_layers"),
        max_len=require(hf, "max_position_embeddings"), activation=ACTIVATIONS[hf.get("activation_function", "gelu")],
        norm_eps=1e-5, dropout=float(hf.get("dropout", 0.1)), attn_dropout=float(hf.get("attention_dropout", 0.0)),
        scale_embeddings=bool(hf.get("scale_embedding", False)), bias=True,
        output_bias="final_logits_bias" in keys, tie_embeddings=True, tie_output=True,
        pad_id=pad if isinstance(pad, int) and 0 <= pad < vocab else 0, **layout,
    )


def seq2seq_framing(ids: dict[str, int | None], hf: dict, prefix: list[int], start: int | None) -> dict:
    """source prefix + text </s>; the decoder starts with decoder_start_token_id, else start."""
    given = hf.get("decoder_start_token_id")
    return {"source_prefix": prefix, "source_suffix": [ids["end"]], "decoder_start": given if isinstance(given, int) else start}


def write_seq2seq_config(config: ModelConfig, ids: dict[str, int | None], model_type: str, architecture: str) -> dict:
    """The config.json settings a fairseq-style class of model_type shares with the others."""
    return {
        "model_type": model_type, "architectures": [architecture], "vocab_size": config.vocab_size,
        "d_model": config.d_model, "encoder_layers": config.n_layers, "decoder_layers": config.decoder_layers,
        "encoder_attention_heads": config.n_heads, "decoder_attention_heads": config.n_heads,
        "encoder_ffn_dim": config.d_ff, "decoder_ffn_dim": config.d_ff,
        "activation_function": EXPORT_ACTIVATIONS[config.activation], "dropout": config.dropout,
        "attention_dropout": config.attention_dropout, "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0,
        "max_position_embeddings": config.max_len, "scale_embedding": config.scale_embeddings,
        "is_encoder_decoder": True, "tie_word_embeddings": True, "init_std": 0.02,
        "pad_token_id": ids["pad"], "bos_token_id": ids["start"], "eos_token_id": ids["end"],
        "decoder_start_token_id": ids["decoder_start"], "forced_eos_token_id": None,
    }
