"""What BERT, RoBERTa and DistilBERT share: the settings they all refuse, which head a folder
carries, the head rules (pooler, masked LM, classifiers, question answering) and the export checks.

Each family says where its heads sit with a HeadNames (BERT's masked-LM head is
`cls.predictions.*`, RoBERTa's `lm_head.*`, DistilBERT's `vocab_*`); one rule builder maps them.
"""

from __future__ import annotations

from typing import NamedTuple

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop.hf_folder import ACTIVATIONS, linear, setting


class HeadNames(NamedTuple):
    """The HF names of a BERT-like family's head layers."""

    mlm_dense: str  # the masked-LM head's transform, its LayerNorm, its output bias and projection
    mlm_norm: str
    mlm_bias: str
    mlm_decoder: str
    pooler: str | None  # a pooler the base model holds (BERT's), read by no head or by "classify"
    classify: tuple[str, str] | None  # (the classifier's dense, our pooler's: + tanh in BERT and RoBERTa,
    # + ReLU in DistilBERT's pre_classifier; its output); None: no such class
    tag: str = "classifier"
    qa: str = "qa_outputs"


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    """<start> text <end>, as their tokenizers add [CLS]/[SEP] or <s>/</s>."""
    return {"sequence_prefix": [ids["start"]], "sequence_suffix": [ids["end"]]}


def read_activation(hf: dict, family: str, key: str = "hidden_act", problems: list[str] | None = None) -> str:
    """Our activation, after refusing in one UserError what no glassformer encoder holds: a
    decoder or cross-attention, relative position embeddings, an activation we do not have."""
    unsupported = list(problems or [])
    unsupported += [setting(name, hf[name]) for name in ("is_decoder", "add_cross_attention") if hf.get(name)]
    if hf.get("position_embedding_type", "absolute") != "absolute":
        unsupported.append(setting("position_embedding_type", hf["position_embedding_type"]))
    activation = hf.get(key, "gelu")
    if activation not in ACTIVATIONS:
        unsupported.append(setting(key, activation))
    if unsupported:
        raise UserError(f"{family} setting(s) not supported: {', '.join(unsupported)}")
    return ACTIVATIONS[activation]


def kind_of(hf: dict, keys: set[str], classes: dict[str, str], clues: tuple[tuple[tuple[str, ...], str], ...]) -> str:
    """The run kind of the class "architectures" names (classes: class -> kind), else of the first
    clue whose name prefixes all begin some tensor name, else "encode"."""
    for architecture in hf.get("architectures") or ():
        if architecture in classes:
            return classes[architecture]
    for prefixes, kind in clues:
        if all(any(k.startswith(p) for k in keys) for p in prefixes):
            return kind
    return "encode"


def mlm_aliases(config: ModelConfig, kind: str, names: HeadNames, token_table: str) -> dict[str, str]:
    """The masked-LM tensors a file may repeat under a second name: the projection's bias, and its
    weight when tied to the token table."""
    if kind != "mlm":
        return {}
    decoder_bias = f"{names.mlm_decoder}.bias"
    tied = {decoder_bias: names.mlm_bias} if decoder_bias != names.mlm_bias else {}
    if config.tie_output:
        tied[f"{names.mlm_decoder}.weight"] = token_table
    return tied


def head_rules(config: ModelConfig, names: HeadNames) -> list[tuple]:
    """Rules for the pooler and the head config has, under the family's names."""
    out: list[tuple] = []
    if config.head == "classify" and names.classify is not None:
        pooler, classifier = names.classify
        out += [*linear("pooler.dense", pooler), *linear("head.classifier", classifier)]
    elif config.pooler and names.pooler is not None:
        out += linear("pooler.dense", names.pooler)
    if config.head == "mlm":
        out += [*linear("head.dense", names.mlm_dense), *linear("head.norm", names.mlm_norm), ("head.decoder.bias", names.mlm_bias)]
        if not config.tie_output:
            out.append(("head.decoder.weight", f"{names.mlm_decoder}.weight"))
    elif config.head == "tag":
        out += linear("head.classifier", names.tag)
    elif config.head == "qa":
        out += linear("head.qa_outputs", names.qa)
    return out


def encoder_problems(config: ModelConfig, kind: str, name: str, classes: dict[str, str]) -> list[str]:
    """What keeps config from every BERT-like class (classes: kind -> class it exports as)."""
    problems = [] if kind in classes else [f"kind {kind!r} ({name} exports: {', '.join(classes)})"]
    if config.norm != "post" or config.use_final_norm:
        problems.append(f"{name} is post-norm without a final LayerNorm")
    if not config.embedding_norm:
        problems.append(f"embedding_norm=false ({name} has a LayerNorm on the embeddings)")
    if config.scale_embeddings and config.head == "mlm" and config.tie_output:
        problems.append(f"scale_embeddings=true with the masked-LM head tied to the token table ({name} does not scale)")
    return problems
