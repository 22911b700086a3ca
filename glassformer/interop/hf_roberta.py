"""RoBERTa (Hugging Face `roberta`) <-> glassformer's encoder-only model: settings and weight names.

RoBERTa is BERT's architecture (the same layer names, under "roberta.") with three differences:
- Positions start after the padding id: a token at position p reads row p + pad_token_id + 1 of
  the table (rows 0..pad_token_id are never read for right-padded text, which is how glassformer
  pads). Import slices those rows off and keeps their values in meta["hf_position_rows"] so that
  an export writes the very same tensor, as hf_bart does with BART's 2 rows.
- One token type (type_vocab_size 1): a single segment row.
- Its sequence classifier is dense + tanh + out_proj on the <s> token, which is our pooler
  followed by our classifier; RobertaForSequenceClassification has no pooler of its own.
The masked-LM head (lm_head: dense, GELU, layer_norm, decoder tied to the token table, bias) is
our MaskedLMHead.

Framing: <s> text </s>, as RoBERTa's tokenizer adds them.
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop import hf_bert
from glassformer.interop.hf_encoder import (  # noqa: F401  (framing: the family interface hf_folder reads)
    HeadNames,
    framing,
    head_rules,
    kind_of,
    mlm_aliases,
    read_activation,
)
from glassformer.interop.hf_folder import linear, offset_position_rule, read_labels, require

MODEL_TYPE = "roberta"
BASE_PREFIX = "roberta."
HEAD_PREFIXES = ("lm_head.", "classifier.", "qa_outputs.")
ARCHITECTURES = (
    "RobertaModel", "RobertaForMaskedLM", "RobertaForSequenceClassification", "RobertaForTokenClassification",
    "RobertaForQuestionAnswering",
)
IGNORED = (r"(^|\.)embeddings\.position_ids$", r"(^|\.)embeddings\.token_type_ids$")
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = {
    "pad": ("pad_token", "pad_token_id", "<pad>"),
    "start": ("cls_token", "bos_token_id", "<s>"),
    "end": ("sep_token", "eos_token_id", "</s>"),
    "unk": ("unk_token", None, "<unk>"),
    "mask": ("mask_token", None, "<mask>"),
}
_KIND_OF_ARCHITECTURE = {
    "RobertaForMaskedLM": "mlm", "RobertaForSequenceClassification": "classify",
    "RobertaForTokenClassification": "tag", "RobertaForQuestionAnswering": "qa",
}
_ARCHITECTURE_OF_KIND = {"encode": "RobertaModel", **{k: a for a, k in _KIND_OF_ARCHITECTURE.items()}}
_CLUES = ((("lm_head.",), "mlm"), (("classifier.out_proj.",), "classify"), (("classifier.",), "tag"), (("qa_outputs.",), "qa"))
HEADS = HeadNames(
    mlm_dense="lm_head.dense", mlm_norm="lm_head.layer_norm", mlm_bias="lm_head.bias", mlm_decoder="lm_head.decoder",
    pooler="roberta.pooler.dense", classify=("classifier.dense", "classifier.out_proj"),
)


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    activation = read_activation(hf, MODEL_TYPE)
    kind = kind_of(hf, keys, _KIND_OF_ARCHITECTURE, _CLUES)
    labels = read_labels(hf) if kind in ("classify", "tag") else []
    vocab = require(hf, "vocab_size")
    pad = hf.get("pad_token_id", 1)
    pad = pad if isinstance(pad, int) and 0 <= pad < vocab else 1
    max_len = hf.get("max_position_embeddings", 514) - (pad + 1)
    if max_len < 1:
        raise UserError(f"max_position_embeddings={hf.get('max_position_embeddings')} leaves no position after pad_token_id={pad}")
    config = ModelConfig(
        family="encoder-only", vocab_size=vocab, d_model=require(hf, "hidden_size"),
        n_heads=require(hf, "num_attention_heads"), d_ff=require(hf, "intermediate_size"),
        n_layers=require(hf, "num_hidden_layers"), max_len=max_len, positions="learned",
        activation=activation, norm="post", final_norm=False,
        norm_eps=float(hf.get("layer_norm_eps", 1e-5)), dropout=float(hf.get("hidden_dropout_prob", 0.1)),
        attn_dropout=float(hf.get("attention_probs_dropout_prob", 0.1)), scale_embeddings=False, bias=True,
        tie_output=bool(hf.get("tie_word_embeddings", True)), n_segments=hf.get("type_vocab_size", 1),
        embedding_norm=True, pooler=kind == "classify" or "roberta.pooler.dense.weight" in keys,
        head=kind if kind != "encode" else "none", n_labels=len(labels), pad_id=pad,
    )
    return config, kind, labels


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    return mlm_aliases(config, kind, HEADS, "roberta.embeddings.word_embeddings.weight")


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s) (see the module docstring for positions and the classifier)."""
    positions = "roberta.embeddings.position_embeddings.weight"
    return [
        hf_bert.token_rule(config, "roberta.embeddings.word_embeddings.weight"),
        offset_position_rule("embed.position.weight", positions, config.pad_id + 1, extra),
        ("embed.segment.weight", "roberta.embeddings.token_type_embeddings.weight"),
        *linear("embed.norm", "roberta.embeddings.LayerNorm"),
        *hf_bert.layer_rules(config, BASE_PREFIX),
        *head_rules(config, HEADS),
    ]


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a RoBERTa (BERT's reasons, and at most one segment)."""
    problems = [p.replace("BERT", "RoBERTa") for p in hf_bert.check_export(config, kind)]
    if config.n_segments > 1:
        problems.append(f"n_segments={config.n_segments} (RoBERTa has one token type)")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    """As BERT's (one all-zero segment row when we have none; a pooler only where it is read)."""
    return hf_bert.export_config(config)


def headless(kind: str) -> bool:
    return kind == "encode"


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for the RoBERTa class of kind."""
    document = hf_bert.write_config(config, kind, labels, ids, meta)
    document.update(
        model_type=MODEL_TYPE, architectures=[_ARCHITECTURE_OF_KIND[kind]],
        max_position_embeddings=config.max_len + config.pad_id + 1, pad_token_id=config.pad_id,
        bos_token_id=ids["start"], eos_token_id=ids["end"],
    )
    return document
