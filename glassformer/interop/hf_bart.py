"""BART (Hugging Face `bart`) <-> glassformer's encoder-decoder model: settings and weight names.

BART is post-norm with GELU, one token table shared by encoder, decoder and LM head, learned
positions, a LayerNorm on each side's embeddings (`layernorm_embedding`, our embedding_norm),
optional sqrt(d_model) scaling (`scale_embedding`) and a fixed output bias (`final_logits_bias`,
our output_bias; a folder without it is read as output_bias=false, which computes the same).

Positions: HF's BartLearnedPositionalEmbedding has 2 more rows than positions, because it looks
position p up at row p + 2; rows 0 and 1 are never read. Import slices them off; so that an
export gives back the very same tensor, their values ride along in the run's
meta["hf_position_rows"] (plain JSON numbers: float32 -> JSON -> float32 is exact). An export
without them (a model trained here) writes zeros there, which no forward pass reads.

BartForSequenceClassification loads as the encoder-decoder with a classify head
(classification_head: dense + tanh + out_proj, no LM head): it reads the source shifted right in
its decoder and classifies from the decoder's state at the source's last </s>, which for a text
framed <s> text </s> and right-padded is its last real token.

Framing: source <s> text </s>; the decoder starts with decoder_start_token_id (</s> in BART).
"""

from __future__ import annotations

import torch

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop.hf_folder import EXPORT_ACTIVATIONS, label_settings, read_labels, require
from glassformer.interop.hf_seq2seq import check_sides, read_seq2seq_config

MODEL_TYPE = "bart"
BASE_PREFIX = "model."
HEAD_PREFIXES = ("lm_head.", "final_logits_bias", "classification_head.")  # names outside the base model
ARCHITECTURES = ("BartForConditionalGeneration", "BartModel", "BartForSequenceClassification")
CLASSIFIER = "BartForSequenceClassification"
IGNORED = (r"(^|\.)(encoder|decoder)\.version$",)  # fairseq leftovers, skipped by transformers too
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = {
    "pad": ("pad_token", "pad_token_id", "<pad>"),
    "start": ("bos_token", "bos_token_id", "<s>"),
    "end": ("eos_token", "eos_token_id", "</s>"),
    "unk": ("unk_token", None, "<unk>"),
    "mask": ("mask_token", None, "<mask>"),
}
POSITION_OFFSET = 2
_SIDES = {"encoder": "src_embed", "decoder": "tgt_embed"}


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    unsupported = check_sides(hf, MODEL_TYPE)
    if unsupported:
        raise UserError(f"bart setting(s) not supported: {', '.join(unsupported)}")
    vocab = require(hf, "vocab_size")
    pad = hf.get("pad_token_id", 1)
    config = read_seq2seq_config(
        hf, keys, vocab, pad, positions="learned", norm="post", final_norm=False, embedding_norm=True,
    )
    if CLASSIFIER in (hf.get("architectures") or ()) or "classification_head.out_proj.weight" in keys:
        labels = read_labels(hf)
        return config.replace(head="classify", n_labels=len(labels)), "classify", labels
    return config, "seq2seq", []


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    start = hf.get("decoder_start_token_id")
    return {
        "source_prefix": [ids["start"]], "source_suffix": [ids["end"]],
        "decoder_start": start if isinstance(start, int) else ids["end"],
    }


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    """Tensors a file may repeat under a second name: all three are the shared token table."""
    copies = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight")
    return {name: "model.shared.weight" for name in copies}


def _linear(ours: str, hf: str) -> list[tuple[str, str]]:
    return [(f"{ours}.weight", f"{hf}.weight"), (f"{ours}.bias", f"{hf}.bias")]


def _attention(ours: str, hf: str) -> list[tuple[str, str]]:
    return [
        *_linear(f"{ours}.w_q", f"{hf}.q_proj"), *_linear(f"{ours}.w_k", f"{hf}.k_proj"),
        *_linear(f"{ours}.w_v", f"{hf}.v_proj"), *_linear(f"{ours}.w_o", f"{hf}.out_proj"),
    ]


def _positions(side: str, extra: dict) -> tuple:
    """The rule for one side's position table, keeping HF's 2 unused rows in extra."""
    name = f"model.{side}.embed_positions.weight"

    def to_hf(table: torch.Tensor) -> torch.Tensor:
        rows = extra.get(name)
        head = table.new_zeros(POSITION_OFFSET, table.size(1))
        if rows is not None and tuple(torch.tensor(rows).shape) == tuple(head.shape):
            head = torch.tensor(rows, dtype=table.dtype).to(table.device)
        return torch.cat([head, table])  # [max_len + 2, d_model]

    def to_ours(table: torch.Tensor) -> torch.Tensor:
        extra[name] = table[:POSITION_OFFSET].tolist()
        return table[POSITION_OFFSET:]

    return (f"{_SIDES[side]}.position.weight", name, to_hf, to_ours)


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s). extra keeps the position rows (see the module docstring)."""
    out: list[tuple] = [("src_embed.token.weight", "model.shared.weight")]
    for side, embed in _SIDES.items():
        out += [_positions(side, extra), *_linear(f"{embed}.norm", f"model.{side}.layernorm_embedding")]
    for i in range(config.n_layers):
        ours, hf = f"encoder.layers.{i}.", f"model.encoder.layers.{i}."
        out += [
            *_attention(f"{ours}self_attn", f"{hf}self_attn"),
            *_linear(f"{ours}self_attn_residual.norm", f"{hf}self_attn_layer_norm"),
            *_linear(f"{ours}ffn.w_1", f"{hf}fc1"),
            *_linear(f"{ours}ffn.w_2", f"{hf}fc2"),
            *_linear(f"{ours}ffn_residual.norm", f"{hf}final_layer_norm"),
        ]
    for i in range(config.decoder_layers):
        ours, hf = f"decoder.layers.{i}.", f"model.decoder.layers.{i}."
        out += [
            *_attention(f"{ours}self_attn", f"{hf}self_attn"),
            *_linear(f"{ours}self_attn_residual.norm", f"{hf}self_attn_layer_norm"),
            *_attention(f"{ours}cross_attn", f"{hf}encoder_attn"),
            *_linear(f"{ours}cross_attn_residual.norm", f"{hf}encoder_attn_layer_norm"),
            *_linear(f"{ours}ffn.w_1", f"{hf}fc1"),
            *_linear(f"{ours}ffn.w_2", f"{hf}fc2"),
            *_linear(f"{ours}ffn_residual.norm", f"{hf}final_layer_norm"),
        ]
    if config.head == "classify":
        out += [*_linear("head.dense", "classification_head.dense"), *_linear("head.out_proj", "classification_head.out_proj")]
    elif config.output_bias:
        # HF keeps the bias as a [1, V] buffer added to the logits.
        out.append(("lm_head.proj.bias", "final_logits_bias", lambda b: b[None], lambda b: b[0]))
    return out


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a BART (empty when it is one)."""
    problems = [] if kind in ("seq2seq", "classify") else [f"kind {kind!r} (BART exports kinds seq2seq and classify)"]
    if config.norm != "post" or config.use_final_norm:
        problems.append("BART is post-norm without a final LayerNorm")
    if not config.embedding_norm:
        problems.append("embedding_norm=false (BART has layernorm_embedding)")
    if not (config.tie_embeddings and config.tie_output):
        problems.append("untied embeddings (BART shares one token table between encoder, decoder and output)")
    if config.n_segments:
        problems.append("n_segments (BART has no segment embeddings)")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    """The config of the exported model: BART always has final_logits_bias (zeros if we had none)."""
    return config.replace(positions="learned", output_bias=config.head == "none")


def headless(kind: str) -> bool:
    return False


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for BartForConditionalGeneration (BartForSequenceClassification
    for kind "classify")."""
    architecture = CLASSIFIER if kind == "classify" else "BartForConditionalGeneration"
    labelled = label_settings(labels, config.n_labels) if kind == "classify" else {}
    return {
        "model_type": MODEL_TYPE, "architectures": [architecture], "vocab_size": config.vocab_size,
        "d_model": config.d_model, "encoder_layers": config.n_layers, "decoder_layers": config.decoder_layers,
        "encoder_attention_heads": config.n_heads, "decoder_attention_heads": config.n_heads,
        "encoder_ffn_dim": config.d_ff, "decoder_ffn_dim": config.d_ff,
        "activation_function": EXPORT_ACTIVATIONS[config.activation], "dropout": config.dropout,
        "attention_dropout": config.attention_dropout, "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0,
        "max_position_embeddings": config.max_len, "scale_embedding": config.scale_embeddings,
        "is_encoder_decoder": True, "tie_word_embeddings": True, "init_std": 0.02,
        "pad_token_id": ids["pad"], "bos_token_id": ids["start"], "eos_token_id": ids["end"],
        "decoder_start_token_id": ids["decoder_start"], "forced_eos_token_id": None, **labelled,
    }
