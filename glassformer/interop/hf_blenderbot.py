"""Blenderbot (Hugging Face `blenderbot`) <-> glassformer's pre-norm encoder-decoder model.

Blenderbot's layers are pre-norm (LayerNorm before each sublayer) with a final LayerNorm after
each stack, no LayerNorm on the embeddings, learned positions (read at position p, no offset),
optional sqrt(d_model) scaling (`scale_embedding`), one shared token table and a fixed output
bias (`final_logits_bias`). That is glassformer's pre-norm encoder-decoder (the tiny-seq2seq and
small-seq2seq presets), so those runs export here; sinusoidal positions travel as a table of the
same values. (The names are BART's, see hf_seq2seq.)

Framing: source text </s>; the decoder starts with decoder_start_token_id.
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop.hf_folder import EXPORT_ACTIVATIONS, require
from glassformer.interop.hf_seq2seq import (
    SIDES,
    Basis,
    check_sides,
    common_problems,
    layer_rules,
    output_bias_rule,
    read_seq2seq_config,
    shared_aliases,
)

MODEL_TYPE = "blenderbot"
BASE_PREFIX = "model."
HEAD_PREFIXES = ("lm_head.", "final_logits_bias")
ARCHITECTURES = ("BlenderbotForConditionalGeneration", "BlenderbotModel")
IGNORED = (r"(^|\.)(encoder|decoder)\.version$",)
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = {
    "pad": ("pad_token", "pad_token_id", "<pad>"),
    "start": ("bos_token", "bos_token_id", "<s>"),
    "end": ("eos_token", "eos_token_id", "</s>"),
    "unk": ("unk_token", None, "<unk>"),
    "mask": ("mask_token", None, "<mask>"),
}


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    unsupported = check_sides(hf, MODEL_TYPE)
    if unsupported:
        raise UserError(f"blenderbot setting(s) not supported: {', '.join(unsupported)}")
    vocab = require(hf, "vocab_size")
    pad = hf.get("pad_token_id", 0)
    config = read_seq2seq_config(
        hf, keys, vocab, pad, positions="learned", norm="pre", final_norm=True, embedding_norm=False,
    )
    return config, "seq2seq", []


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    start = hf.get("decoder_start_token_id")
    return {
        "source_prefix": [], "source_suffix": [ids["end"]],
        "decoder_start": start if isinstance(start, int) else ids["start"],
    }


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    return shared_aliases()


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s); every tensor maps one to one."""
    basis = Basis()
    out: list[tuple] = [("src_embed.token.weight", "model.shared.weight")]
    for side, embed in SIDES.items():
        out += [
            (f"{embed}.position.weight", f"model.{side}.embed_positions.weight"),
            *basis.norm(f"{side}.final_norm", f"model.{side}.layer_norm"),
        ]
    out += layer_rules(config, basis)
    if config.output_bias:
        out.append(output_bias_rule())
    return out


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a Blenderbot (empty when it is one)."""
    problems = common_problems(config, kind, "Blenderbot")
    if config.norm != "pre" or not config.use_final_norm:
        problems.append("Blenderbot is pre-norm with a final LayerNorm")
    if config.embedding_norm:
        problems.append("embedding_norm=true (Blenderbot has no LayerNorm on the embeddings)")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    """Sinusoidal positions travel as a learned table; final_logits_bias is always there."""
    return config.replace(positions="learned", output_bias=True)


def headless(kind: str) -> bool:
    return False


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for BlenderbotForConditionalGeneration."""
    return {
        "model_type": MODEL_TYPE, "architectures": ["BlenderbotForConditionalGeneration"],
        "vocab_size": config.vocab_size, "d_model": config.d_model,
        "encoder_layers": config.n_layers, "decoder_layers": config.decoder_layers,
        "encoder_attention_heads": config.n_heads, "decoder_attention_heads": config.n_heads,
        "encoder_ffn_dim": config.d_ff, "decoder_ffn_dim": config.d_ff,
        "activation_function": EXPORT_ACTIVATIONS[config.activation], "dropout": config.dropout,
        "attention_dropout": config.attention_dropout, "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0,
        "max_position_embeddings": config.max_len, "scale_embedding": config.scale_embeddings,
        "is_encoder_decoder": True, "tie_word_embeddings": True, "init_std": 0.02,
        "pad_token_id": ids["pad"], "bos_token_id": ids["start"], "eos_token_id": ids["end"],
        "decoder_start_token_id": ids["decoder_start"], "forced_eos_token_id": None,
        "encoder_no_repeat_ngram_size": 0, "no_repeat_ngram_size": 0,
    }
