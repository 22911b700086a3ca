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
from glassformer.interop.hf_seq2seq import (
    SIDES,
    FAIRSEQ_TOKENS,
    Basis,
    common_problems,
    layer_rules,
    output_bias_rule,
    read_seq2seq_config,
    seq2seq_framing,
    shared_aliases,
    write_seq2seq_config,
)

MODEL_TYPE = "blenderbot"
BASE_PREFIX = "model."
HEAD_PREFIXES = ("lm_head.", "final_logits_bias")
ARCHITECTURES = ("BlenderbotForConditionalGeneration", "BlenderbotModel")
IGNORED = (r"(^|\.)(encoder|decoder)\.version$",)
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = FAIRSEQ_TOKENS


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    config = read_seq2seq_config(hf, keys, MODEL_TYPE, 0, positions="learned", norm="pre", final_norm=True, embedding_norm=False)
    return config, "seq2seq", []


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    return seq2seq_framing(ids, hf, [], ids["start"])


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
    document = write_seq2seq_config(config, ids, MODEL_TYPE, "BlenderbotForConditionalGeneration")
    return {**document, "encoder_no_repeat_ngram_size": 0, "no_repeat_ngram_size": 0}
