"""BERT (Hugging Face `bert`) <-> glassformer's encoder-only model: settings and weight names.

BERT is post-norm with exact GELU, learned positions, token-type (segment) embeddings and a
LayerNorm on the embedding sum. Which head a folder carries decides the run kind:
`cls.predictions.*` -> "mlm", `classifier.*` -> "classify" (BertForSequenceClassification,
with the pooler) or "tag" (BertForTokenClassification), `qa_outputs.*` -> "qa"
(BertForQuestionAnswering), none -> "encode" (BertModel, e.g. the MiniLM sentence embedders).

Export: a glassformer encoder that scales its token embeddings by sqrt(d_model) is written with
the scale multiplied into BERT's token table (the same numbers reach the first layer), unless a
masked-LM head is tied to that table. A pooler our model built but its head does not
read (tagging, QA, masked LM) is left out, as those BERT classes have none. The next-sentence head of pretraining checkpoints
(`cls.seq_relationship.*`, present in the original bert-base files) has no glassformer
counterpart: it is left out and named in the run's meta["hf_dropped"].

Framing: [CLS] text [SEP], as BERT's tokenizer adds them.
"""

from __future__ import annotations

import math

from glassformer.config import ModelConfig
from glassformer.interop.hf_encoder import (  # noqa: F401  (framing: the family interface hf_folder reads)
    HeadNames,
    encoder_problems,
    framing,
    head_rules,
    kind_of,
    mlm_aliases,
    read_activation,
)
from glassformer.interop.hf_folder import EXPORT_ACTIVATIONS, label_settings, linear, read_labels, require

MODEL_TYPE = "bert"
BASE_PREFIX = "bert."
HEAD_PREFIXES = ("cls.", "classifier.", "qa_outputs.")  # names outside the base model
ARCHITECTURES = (
    "BertModel", "BertForMaskedLM", "BertForPreTraining", "BertForSequenceClassification", "BertForTokenClassification",
    "BertForQuestionAnswering",
)
IGNORED = (r"(^|\.)embeddings\.position_ids$", r"(^|\.)embeddings\.token_type_ids$")
DROPPED = (r"^cls\.seq_relationship\.",)
SPECIAL_TOKENS = {
    "pad": ("pad_token", "pad_token_id", "[PAD]"),
    "start": ("cls_token", None, "[CLS]"),
    "end": ("sep_token", None, "[SEP]"),
    "unk": ("unk_token", None, "[UNK]"),
    "mask": ("mask_token", None, "[MASK]"),
}
_KIND_OF_ARCHITECTURE = {
    "BertForMaskedLM": "mlm", "BertForPreTraining": "mlm",
    "BertForSequenceClassification": "classify", "BertForTokenClassification": "tag",
    "BertForQuestionAnswering": "qa",
}
_ARCHITECTURE_OF_KIND = {
    "encode": "BertModel", "mlm": "BertForMaskedLM",
    "classify": "BertForSequenceClassification", "tag": "BertForTokenClassification", "qa": "BertForQuestionAnswering",
}
# Only the sequence classifier sits on the pooler.
_CLUES = ((("cls.predictions.",), "mlm"), (("qa_outputs.",), "qa"), (("classifier.", "bert.pooler."), "classify"),
          (("classifier.",), "tag"))
HEADS = HeadNames(
    mlm_dense="cls.predictions.transform.dense", mlm_norm="cls.predictions.transform.LayerNorm",
    mlm_bias="cls.predictions.bias", mlm_decoder="cls.predictions.decoder", pooler="bert.pooler.dense",
    classify=("bert.pooler.dense", "classifier"),
)


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    activation = read_activation(hf, MODEL_TYPE)
    kind = kind_of(hf, keys, _KIND_OF_ARCHITECTURE, _CLUES)
    labels = read_labels(hf) if kind in ("classify", "tag") else []
    vocab = require(hf, "vocab_size")
    config = ModelConfig(
        family="encoder-only", vocab_size=vocab, d_model=require(hf, "hidden_size"),
        n_heads=require(hf, "num_attention_heads"), d_ff=require(hf, "intermediate_size"),
        n_layers=require(hf, "num_hidden_layers"), max_len=hf.get("max_position_embeddings", 512),
        positions="learned", activation=activation, norm="post", final_norm=False,
        norm_eps=float(hf.get("layer_norm_eps", 1e-12)), dropout=float(hf.get("hidden_dropout_prob", 0.1)),
        attn_dropout=float(hf.get("attention_probs_dropout_prob", 0.1)), scale_embeddings=False, bias=True,
        tie_output=bool(hf.get("tie_word_embeddings", True)), n_segments=hf.get("type_vocab_size", 2),
        embedding_norm=True, pooler=kind == "classify" or "bert.pooler.dense.weight" in keys,
        head=kind if kind != "encode" else "none", n_labels=len(labels), pad_id=_pad_id(hf, vocab),
    )
    return config, kind, labels


def _pad_id(hf: dict, vocab: int) -> int:
    value = hf.get("pad_token_id")
    return value if isinstance(value, int) and 0 <= value < vocab else 0


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    """Tensors a file may repeat under a second name (tied weights)."""
    return mlm_aliases(config, kind, HEADS, "bert.embeddings.word_embeddings.weight")


def token_rule(config: ModelConfig, hf: str) -> tuple:
    """The token table, times sqrt(d_model) in the HF file when config scales embeddings (only an
    exported model does: BERT-like classes never scale)."""
    if not config.scale_embeddings:
        return ("embed.token.weight", hf)
    scale = math.sqrt(config.d_model)
    return ("embed.token.weight", hf, lambda table: table * scale, lambda table: table / scale)


def layer_rules(config: ModelConfig, base: str) -> list[tuple]:
    """The encoder layers as BERT names them (RoBERTa too), under base ("bert.", "roberta.")."""
    out: list[tuple] = []
    for i in range(config.n_layers):
        ours, hf = f"encoder.layers.{i}.", f"{base}encoder.layer.{i}."
        out += [
            *linear(f"{ours}self_attn.w_q", f"{hf}attention.self.query"),
            *linear(f"{ours}self_attn.w_k", f"{hf}attention.self.key"),
            *linear(f"{ours}self_attn.w_v", f"{hf}attention.self.value"),
            *linear(f"{ours}self_attn.w_o", f"{hf}attention.output.dense"),
            *linear(f"{ours}self_attn_residual.norm", f"{hf}attention.output.LayerNorm"),
            *linear(f"{ours}ffn.w_1", f"{hf}intermediate.dense"),
            *linear(f"{ours}ffn.w_2", f"{hf}output.dense"),
            *linear(f"{ours}ffn_residual.norm", f"{hf}output.LayerNorm"),
        ]
    return out


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s); every BERT tensor maps one to one."""
    return [
        token_rule(config, "bert.embeddings.word_embeddings.weight"),
        ("embed.position.weight", "bert.embeddings.position_embeddings.weight"),
        ("embed.segment.weight", "bert.embeddings.token_type_embeddings.weight"),
        *linear("embed.norm", "bert.embeddings.LayerNorm"),
        *layer_rules(config, BASE_PREFIX),
        *head_rules(config, HEADS),
    ]


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a BERT (empty when it is one)."""
    problems = encoder_problems(config, kind, "BERT", _ARCHITECTURE_OF_KIND)
    if kind == "classify" and not config.pooler:
        problems.append("a classify head without the pooler (BertForSequenceClassification classifies the pooled token)")
    if config.pooler and config.pooler_activation != "tanh" and kind in ("encode", "classify"):
        problems.append(f"pooler_activation={config.pooler_activation!r} (BERT's pooler is dense + tanh)")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    """The config of the exported model: BERT always adds a token-type embedding, so a model
    without segments gets one all-zero segment row (adding zero changes nothing); a pooler stays only where the class has one."""
    return config.replace(
        positions="learned", n_segments=max(config.n_segments, 1), pooler=config.pooler and config.head in ("none", "classify"),
    )


def headless(kind: str) -> bool:
    """Whether the HF class of kind is the bare BertModel (its names carry no "bert." prefix)."""
    return kind == "encode"


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for the BERT class of kind."""
    document = {
        "model_type": MODEL_TYPE, "architectures": [_ARCHITECTURE_OF_KIND[kind]], "vocab_size": config.vocab_size,
        "hidden_size": config.d_model, "num_hidden_layers": config.n_layers, "num_attention_heads": config.n_heads,
        "intermediate_size": config.d_ff, "hidden_act": EXPORT_ACTIVATIONS[config.activation],
        "hidden_dropout_prob": config.dropout, "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_len, "type_vocab_size": config.n_segments,
        "layer_norm_eps": config.norm_eps, "pad_token_id": ids["pad"], "tie_word_embeddings": config.tie_output,
        "initializer_range": 0.02,
    }
    if kind in ("classify", "tag"):
        document.update(label_settings(labels, config.n_labels))
    return document
