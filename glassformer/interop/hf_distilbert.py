"""DistilBERT (Hugging Face `distilbert`) <-> glassformer's encoder-only model.

DistilBERT is BERT with half the layers, no token types and no pooler, under other names
(q_lin/k_lin/v_lin/out_lin, sa_layer_norm, ffn.lin1/lin2, output_layer_norm); its LayerNorms
use eps 1e-12. Its masked-LM head (vocab_transform, activation, vocab_layer_norm, vocab_projector
tied to the token table) is our MaskedLMHead; token classification (classifier) and question
answering (qa_outputs) map directly. DistilBertForSequenceClassification classifies the first
token through pre_classifier + ReLU + dropout + classifier: our pooler with pooler_activation
"relu" (pre_classifier is its dense layer) followed by our classifier. Its dropout there is
seq_classif_dropout, ours the model's dropout: the same in eval, not in training.
Position tables, learned or sinusoidal (`sinusoidal_pos_embds`), are read from the file.

Framing: [CLS] text [SEP].
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.interop import hf_bert
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

MODEL_TYPE = "distilbert"
BASE_PREFIX = "distilbert."
HEAD_PREFIXES = ("vocab_transform.", "vocab_layer_norm.", "vocab_projector.", "classifier.", "qa_outputs.", "pre_classifier.")
ARCHITECTURES = (
    "DistilBertModel", "DistilBertForMaskedLM", "DistilBertForSequenceClassification", "DistilBertForTokenClassification",
    "DistilBertForQuestionAnswering",
)
IGNORED = (r"(^|\.)embeddings\.position_ids$",)
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = hf_bert.SPECIAL_TOKENS
_KIND_OF_ARCHITECTURE = {
    "DistilBertForMaskedLM": "mlm", "DistilBertForSequenceClassification": "classify",
    "DistilBertForTokenClassification": "tag", "DistilBertForQuestionAnswering": "qa",
}
_ARCHITECTURE_OF_KIND = {"encode": "DistilBertModel", **{k: a for a, k in _KIND_OF_ARCHITECTURE.items()}}
_CLUES = ((("vocab_projector.",), "mlm"), (("pre_classifier.",), "classify"), (("classifier.",), "tag"),
          (("qa_outputs.",), "qa"))
HEADS = HeadNames(
    mlm_dense="vocab_transform", mlm_norm="vocab_layer_norm", mlm_bias="vocab_projector.bias",
    mlm_decoder="vocab_projector", pooler=None, classify=("pre_classifier", "classifier"),
)
EPS = 1e-12


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    activation = read_activation(hf, MODEL_TYPE, key="activation")
    kind = kind_of(hf, keys, _KIND_OF_ARCHITECTURE, _CLUES)
    labels = read_labels(hf) if kind in ("classify", "tag") else []
    vocab = require(hf, "vocab_size")
    pad = hf.get("pad_token_id", 0)
    config = ModelConfig(
        family="encoder-only", vocab_size=vocab, d_model=require(hf, "dim"), n_heads=require(hf, "n_heads"),
        d_ff=require(hf, "hidden_dim"), n_layers=require(hf, "n_layers"), max_len=hf.get("max_position_embeddings", 512),
        positions="learned", activation=activation, norm="post", final_norm=False, norm_eps=EPS,
        dropout=float(hf.get("dropout", 0.1)), attn_dropout=float(hf.get("attention_dropout", 0.1)),
        scale_embeddings=False, bias=True, tie_output=bool(hf.get("tie_word_embeddings", True)), n_segments=0,
        embedding_norm=True, pooler=kind == "classify", pooler_activation="relu",
        head=kind if kind != "encode" else "none", n_labels=len(labels),
        pad_id=pad if isinstance(pad, int) and 0 <= pad < vocab else 0,
    )
    return config, kind, labels


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    return mlm_aliases(config, kind, HEADS, "distilbert.embeddings.word_embeddings.weight")


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s); every tensor maps one to one."""
    out = [
        hf_bert.token_rule(config, "distilbert.embeddings.word_embeddings.weight"),
        ("embed.position.weight", "distilbert.embeddings.position_embeddings.weight"),
        *linear("embed.norm", "distilbert.embeddings.LayerNorm"),
    ]
    for i in range(config.n_layers):
        ours, hf = f"encoder.layers.{i}.", f"distilbert.transformer.layer.{i}."
        out += [
            *linear(f"{ours}self_attn.w_q", f"{hf}attention.q_lin"),
            *linear(f"{ours}self_attn.w_k", f"{hf}attention.k_lin"),
            *linear(f"{ours}self_attn.w_v", f"{hf}attention.v_lin"),
            *linear(f"{ours}self_attn.w_o", f"{hf}attention.out_lin"),
            *linear(f"{ours}self_attn_residual.norm", f"{hf}sa_layer_norm"),
            *linear(f"{ours}ffn.w_1", f"{hf}ffn.lin1"),
            *linear(f"{ours}ffn.w_2", f"{hf}ffn.lin2"),
            *linear(f"{ours}ffn_residual.norm", f"{hf}output_layer_norm"),
        ]
    return out + head_rules(config, HEADS)


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a DistilBERT (empty when it is one)."""
    problems = encoder_problems(config, kind, "DistilBERT", _ARCHITECTURE_OF_KIND)
    if config.n_segments:
        problems.append(f"n_segments={config.n_segments} (DistilBERT has no token types)")
    if config.norm_eps != EPS:
        problems.append(f"norm_eps={config.norm_eps} (DistilBERT's LayerNorms use {EPS})")
    if kind == "classify" and not (config.pooler and config.pooler_activation == "relu"):
        problems.append("a classify head without a ReLU pooler (DistilBertForSequenceClassification reads pre_classifier + ReLU)")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    """The config of the exported model: a pooler only under the sequence classifier (pre_classifier)."""
    return config.replace(positions="learned", pooler=config.pooler and config.head == "classify")


def headless(kind: str) -> bool:
    return kind == "encode"


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for the DistilBERT class of kind."""
    document = {
        "model_type": MODEL_TYPE, "architectures": [_ARCHITECTURE_OF_KIND[kind]], "vocab_size": config.vocab_size,
        "dim": config.d_model, "n_layers": config.n_layers, "n_heads": config.n_heads, "hidden_dim": config.d_ff,
        "activation": EXPORT_ACTIVATIONS[config.activation], "dropout": config.dropout,
        "attention_dropout": config.attention_dropout, "max_position_embeddings": config.max_len,
        "sinusoidal_pos_embds": False, "pad_token_id": ids["pad"], "tie_word_embeddings": config.tie_output,
        "initializer_range": 0.02,
    }
    if kind in ("classify", "tag"):
        document.update(label_settings(labels, config.n_labels))
    return document
