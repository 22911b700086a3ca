"""BART (Hugging Face `bart`) <-> glassformer's encoder-decoder model: settings and weight names.

BART is post-norm with GELU, one token table shared by encoder, decoder and LM head, learned
positions, a LayerNorm on each side's embeddings (`layernorm_embedding`, our embedding_norm),
optional sqrt(d_model) scaling (`scale_embedding`) and a fixed output bias (`final_logits_bias`,
our output_bias; a folder without it is read as output_bias=false, which computes the same).

Positions: HF's BartLearnedPositionalEmbedding has 2 more rows than positions, because it looks
position p up at row p + 2; rows 0 and 1 are never read. Import slices them off; so that an
export gives back the very same tensor, their values ride along in the run's
meta["hf_position_rows"] (hf_folder.offset_position_rule). The layer names are fairseq's, shared
with Marian and Blenderbot (hf_seq2seq).

BartForSequenceClassification loads as the encoder-decoder with a classify head
(classification_head: dense + tanh + out_proj, no LM head): it reads the source shifted right in
its decoder and classifies from the decoder's state at the source's last </s>, which for a text
framed <s> text </s> and right-padded is its last real token. BartForQuestionAnswering loads as the
encoder-decoder with the span head (qa_outputs): its decoder reads the source shifted right too
(decoder_start_token_id first), without a padding mask of its own, and every decoder position
gets a start and an end logit.

Framing: source <s> text </s>; the decoder starts with decoder_start_token_id (</s> in BART).
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.interop.hf_folder import label_settings, linear, offset_position_rule, read_labels
from glassformer.interop.hf_seq2seq import (
    SIDES,
    FAIRSEQ_TOKENS,
    Basis,
    layer_rules,
    output_bias_rule,
    read_seq2seq_config,
    seq2seq_framing,
    shared_aliases,
    write_seq2seq_config,
)

MODEL_TYPE = "bart"
BASE_PREFIX = "model."
HEAD_PREFIXES = ("lm_head.", "final_logits_bias", "classification_head.", "qa_outputs.")  # names outside the base model
ARCHITECTURES = ("BartForConditionalGeneration", "BartModel", "BartForSequenceClassification", "BartForQuestionAnswering")
CLASSIFIER = "BartForSequenceClassification"
ANSWERER = "BartForQuestionAnswering"
IGNORED = (r"(^|\.)(encoder|decoder)\.version$",)  # fairseq leftovers, skipped by transformers too
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = FAIRSEQ_TOKENS
POSITION_OFFSET = 2
_ARCHITECTURE_OF_KIND = {"seq2seq": "BartForConditionalGeneration", "classify": CLASSIFIER, "qa": ANSWERER}


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    config = read_seq2seq_config(hf, keys, MODEL_TYPE, 1, positions="learned", norm="post", final_norm=False, embedding_norm=True)
    if CLASSIFIER in (hf.get("architectures") or ()) or "classification_head.out_proj.weight" in keys:
        labels = read_labels(hf)
        return config.replace(head="classify", n_labels=len(labels)), "classify", labels
    if ANSWERER in (hf.get("architectures") or ()) or "qa_outputs.weight" in keys:
        return config.replace(head="qa"), "qa", []
    return config, "seq2seq", []


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    """Source <s> text </s>; the decoder starts with </s> unless config.json says otherwise."""
    return seq2seq_framing(ids, hf, [ids["start"]], ids["end"])


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    """Tensors a file may repeat under a second name: all three are the shared token table."""
    return shared_aliases()


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s). extra keeps the position rows (see the module docstring)."""
    out: list[tuple] = [("src_embed.token.weight", "model.shared.weight")]
    for side, embed in SIDES.items():
        positions = f"model.{side}.embed_positions.weight"
        out += [
            offset_position_rule(f"{embed}.position.weight", positions, POSITION_OFFSET, extra),
            *linear(f"{embed}.norm", f"model.{side}.layernorm_embedding"),
        ]
    out += layer_rules(config, Basis())
    if config.head == "classify":
        out += [*linear("head.dense", "classification_head.dense"), *linear("head.out_proj", "classification_head.out_proj")]
    elif config.head == "qa":
        out += linear("head.qa_outputs", "qa_outputs")
    elif config.output_bias:
        out.append(output_bias_rule())
    return out


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a BART (empty when it is one)."""
    problems = [] if kind in _ARCHITECTURE_OF_KIND else [f"kind {kind!r} (BART exports kinds {', '.join(_ARCHITECTURE_OF_KIND)})"]
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
    for kind "classify", BartForQuestionAnswering for "qa")."""
    architecture = _ARCHITECTURE_OF_KIND[kind]
    labelled = label_settings(labels, config.n_labels) if kind == "classify" else {}
    return {**write_seq2seq_config(config, ids, MODEL_TYPE, architecture), **labelled}
