"""DistilBERT (Hugging Face `distilbert`) <-> glassformer's encoder-only model.

DistilBERT is BERT with half the layers, no token types and no pooler, under other names
(q_lin/k_lin/v_lin/out_lin, sa_layer_norm, ffn.lin1/lin2, output_layer_norm); its LayerNorms
use eps 1e-12. Its masked-LM head (vocab_transform, activation, vocab_layer_norm, vocab_projector
tied to the token table) is our MaskedLMHead; token classification (classifier) and question
answering (qa_outputs) map directly. DistilBertForSequenceClassification classifies through
pre_classifier + ReLU, which glassformer's pooler (dense + tanh) cannot express: not supported.
Position tables, learned or sinusoidal (`sinusoidal_pos_embds`), are read from the file.

Framing: [CLS] text [SEP].
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop import hf_bert
from glassformer.interop.hf_folder import ACTIVATIONS, EXPORT_ACTIVATIONS, read_labels, require, setting

MODEL_TYPE = "distilbert"
BASE_PREFIX = "distilbert."
HEAD_PREFIXES = ("vocab_transform.", "vocab_layer_norm.", "vocab_projector.", "classifier.", "qa_outputs.", "pre_classifier.")
ARCHITECTURES = ("DistilBertModel", "DistilBertForMaskedLM", "DistilBertForTokenClassification", "DistilBertForQuestionAnswering")
IGNORED = (r"(^|\.)embeddings\.position_ids$",)
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = hf_bert.SPECIAL_TOKENS
_KIND_OF_ARCHITECTURE = {
    "DistilBertForMaskedLM": "mlm", "DistilBertForTokenClassification": "tag", "DistilBertForQuestionAnswering": "qa",
}
_ARCHITECTURE_OF_KIND = {"encode": "DistilBertModel", **{k: a for a, k in _KIND_OF_ARCHITECTURE.items()}}
_HEAD_OF_KIND = {"encode": "none", "mlm": "mlm", "tag": "tag", "qa": "qa"}
EPS = 1e-12


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    unsupported = []
    if "DistilBertForSequenceClassification" in (hf.get("architectures") or ()) or "pre_classifier.weight" in keys:
        unsupported.append("DistilBertForSequenceClassification (its pre_classifier + ReLU is not glassformer's pooler)")
    activation = hf.get("activation", "gelu")
    if activation not in ACTIVATIONS:
        unsupported.append(setting("activation", activation))
    if unsupported:
        raise UserError(f"distilbert setting(s) not supported: {', '.join(unsupported)}")
    kind = _kind(hf, keys)
    labels = read_labels(hf) if kind == "tag" else []
    vocab = require(hf, "vocab_size")
    pad = hf.get("pad_token_id", 0)
    config = ModelConfig(
        family="encoder-only", vocab_size=vocab, d_model=require(hf, "dim"), n_heads=require(hf, "n_heads"),
        d_ff=require(hf, "hidden_dim"), n_layers=require(hf, "n_layers"), max_len=hf.get("max_position_embeddings", 512),
        positions="learned", activation=ACTIVATIONS[activation], norm="post", final_norm=False, norm_eps=EPS,
        dropout=float(hf.get("dropout", 0.1)), attn_dropout=float(hf.get("attention_dropout", 0.1)),
        scale_embeddings=False, bias=True, tie_output=bool(hf.get("tie_word_embeddings", True)), n_segments=0,
        embedding_norm=True, pooler=False, head=_HEAD_OF_KIND[kind], n_labels=len(labels),
        pad_id=pad if isinstance(pad, int) and 0 <= pad < vocab else 0,
    )
    return config, kind, labels


def _kind(hf: dict, keys: set[str]) -> str:
    for architecture in hf.get("architectures") or ():
        if architecture in _KIND_OF_ARCHITECTURE:
            return _KIND_OF_ARCHITECTURE[architecture]
    if "vocab_projector.bias" in keys:
        return "mlm"
    if "classifier.weight" in keys:
        return "tag"
    return "qa" if "qa_outputs.weight" in keys else "encode"


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    return {"sequence_prefix": [ids["start"]], "sequence_suffix": [ids["end"]]}


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    if kind == "mlm" and config.tie_output:
        return {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}
    return {}


def _linear(ours: str, hf: str) -> list[tuple[str, str]]:
    return [(f"{ours}.weight", f"{hf}.weight"), (f"{ours}.bias", f"{hf}.bias")]


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s); every tensor maps one to one."""
    out = [
        hf_bert.token_rule(config, "distilbert.embeddings.word_embeddings.weight"),
        ("embed.position.weight", "distilbert.embeddings.position_embeddings.weight"),
        *_linear("embed.norm", "distilbert.embeddings.LayerNorm"),
    ]
    for i in range(config.n_layers):
        ours, hf = f"encoder.layers.{i}.", f"distilbert.transformer.layer.{i}."
        out += [
            *_linear(f"{ours}self_attn.w_q", f"{hf}attention.q_lin"),
            *_linear(f"{ours}self_attn.w_k", f"{hf}attention.k_lin"),
            *_linear(f"{ours}self_attn.w_v", f"{hf}attention.v_lin"),
            *_linear(f"{ours}self_attn.w_o", f"{hf}attention.out_lin"),
            *_linear(f"{ours}self_attn_residual.norm", f"{hf}sa_layer_norm"),
            *_linear(f"{ours}ffn.w_1", f"{hf}ffn.lin1"),
            *_linear(f"{ours}ffn.w_2", f"{hf}ffn.lin2"),
            *_linear(f"{ours}ffn_residual.norm", f"{hf}output_layer_norm"),
        ]
    if config.head == "mlm":
        out += [
            *_linear("head.dense", "vocab_transform"), *_linear("head.norm", "vocab_layer_norm"),
            ("head.decoder.bias", "vocab_projector.bias"),
        ]
        if not config.tie_output:
            out.append(("head.decoder.weight", "vocab_projector.weight"))
    elif config.head == "tag":
        out += _linear("head.classifier", "classifier")
    elif config.head == "qa":
        out += _linear("head.qa_outputs", "qa_outputs")
    return out


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a DistilBERT (empty when it is one)."""
    problems = []
    if kind not in _ARCHITECTURE_OF_KIND:
        problems.append(f"kind {kind!r} (DistilBERT exports: {', '.join(_ARCHITECTURE_OF_KIND)})")
    if config.norm != "post" or config.use_final_norm:
        problems.append("DistilBERT is post-norm without a final LayerNorm")
    if not config.embedding_norm:
        problems.append("embedding_norm=false (DistilBERT has a LayerNorm on the embeddings)")
    if config.scale_embeddings and config.head == "mlm" and config.tie_output:
        problems.append("scale_embeddings=true with the masked-LM head tied to the token table")
    if config.n_segments:
        problems.append(f"n_segments={config.n_segments} (DistilBERT has no token types)")
    if config.norm_eps != EPS:
        problems.append(f"norm_eps={config.norm_eps} (DistilBERT's LayerNorms use {EPS})")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    return config.replace(positions="learned", pooler=False)


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
    if kind == "tag":
        names = labels or [f"LABEL_{i}" for i in range(config.n_labels)]
        document["id2label"] = {str(i): name for i, name in enumerate(names)}
        document["label2id"] = {name: i for i, name in enumerate(names)}
    return document
