"""GPT-2 (Hugging Face `gpt2`) <-> glassformer's decoder-only model: settings and weight names.

HF GPT-2 keeps its linear layers as `Conv1D`, whose weight is [in, out] (the transpose of
nn.Linear's [out, in]), and fuses the Q, K and V projections into one `c_attn` of width
3 * d_model, columns ordered Q | K | V. Everything else maps one tensor to one tensor.

Heads: GPT2ForSequenceClassification (`score`, no bias, on the last token that is not padding),
GPT2ForTokenClassification (`classifier`) and GPT2ForQuestionAnswering (`qa_outputs`, start and
end logits from every position's final hidden state) load as a decoder-only model whose head is
"classify", "tag" or "qa" in place of the LM head (see glassformer.models.heads and qa_head).

Framing: GPT-2's own tokenizer adds no special token around a text, so a prompt is the bare
text (sequence_prefix []), as `transformers` feeds it; a whole training text ends with
<|endoftext|> (sequence_suffix [eos]), the separator GPT-2 was trained with. A classifier reads
the bare text, and a question answerer the bare question followed by the bare context, as
GPT-2's tokenizer joins a pair.
"""

from __future__ import annotations

import torch

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop.hf_folder import ACTIVATIONS, EXPORT_ACTIVATIONS, label_settings, read_labels, require, setting

MODEL_TYPE = "gpt2"
BASE_PREFIX = "transformer."
HEAD_PREFIXES = ("lm_head.", "score.", "classifier.", "qa_outputs.")  # names outside the base model
ARCHITECTURES = (
    "GPT2LMHeadModel", "GPT2Model", "GPT2ForSequenceClassification", "GPT2ForTokenClassification",
    "GPT2ForQuestionAnswering",
)
# The causal-mask buffers that old GPT-2 checkpoints carry; transformers skips them too.
IGNORED = (r"(^|\.)attn\.bias$", r"(^|\.)attn\.masked_bias$")
DROPPED: tuple[str, ...] = ()
# role -> (token name in tokenizer_config.json, id name in config.json, token if neither says)
SPECIAL_TOKENS = {
    "pad": ("pad_token", "pad_token_id", None),
    "start": ("bos_token", "bos_token_id", "<|endoftext|>"),
    "end": ("eos_token", "eos_token_id", "<|endoftext|>"),
    "unk": ("unk_token", None, "<|endoftext|>"),
    "mask": ("mask_token", None, None),
}
_KIND_OF_ARCHITECTURE = {
    "GPT2ForSequenceClassification": "classify", "GPT2ForTokenClassification": "tag", "GPT2ForQuestionAnswering": "qa",
}
_ARCHITECTURE_OF_KIND = {"lm": "GPT2LMHeadModel", **{kind: a for a, kind in _KIND_OF_ARCHITECTURE.items()}}


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    standard = {"add_cross_attention": False, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False}
    unsupported = [setting(name, hf[name]) for name, value in standard.items() if name in hf and bool(hf[name]) != value]
    activation = hf.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        unsupported.append(setting("activation_function", activation))
    if unsupported:
        raise UserError(f"gpt2 setting(s) not supported: {', '.join(unsupported)}")
    d_model = require(hf, "n_embd")
    vocab = require(hf, "vocab_size")
    kind = _kind(hf, keys)
    labels = read_labels(hf) if kind in ("classify", "tag") else []
    config = ModelConfig(
        family="decoder-only", vocab_size=vocab, d_model=d_model, n_heads=require(hf, "n_head"),
        d_ff=hf.get("n_inner") or 4 * d_model, n_layers=require(hf, "n_layer"), max_len=require(hf, "n_positions"),
        positions="learned", activation=ACTIVATIONS[activation], norm="pre", final_norm=True,
        norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)), dropout=float(hf.get("resid_pdrop", 0.1)),
        attn_dropout=float(hf.get("attn_pdrop", 0.1)), scale_embeddings=False, bias=True, output_bias=False,
        tie_output=bool(hf.get("tie_word_embeddings", True)), pad_id=_pad_id(hf, vocab),
        head="none" if kind == "lm" else kind, n_labels=len(labels),
    )
    return config, kind, labels


def _kind(hf: dict, keys: set[str]) -> str:
    for architecture in hf.get("architectures") or ():
        if architecture in _KIND_OF_ARCHITECTURE:
            return _KIND_OF_ARCHITECTURE[architecture]
    if "score.weight" in keys:
        return "classify"
    if "qa_outputs.weight" in keys:
        return "qa"
    return "tag" if "classifier.weight" in keys else "lm"


def _pad_id(hf: dict, vocab: int) -> int:
    # GPT-2 has no pad token; decoding masks padding explicitly, so any valid id serves.
    for name in ("pad_token_id", "eos_token_id"):
        value = hf.get(name)
        if isinstance(value, int) and 0 <= value < vocab:
            return value
    return 0


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    return {"sequence_prefix": [], "sequence_suffix": [ids["end"]]}


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    """Tensors a file may repeat under a second name (tied weights)."""
    return {"lm_head.weight": "transformer.wte.weight"} if config.tie_output and config.head == "none" else {}


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s), with the conversions where a tensor changes form."""
    out: list[tuple] = [
        ("embed.token.weight", "transformer.wte.weight"),
        ("embed.position.weight", "transformer.wpe.weight"),
    ]
    for i in range(config.n_layers):
        ours, hf = f"decoder.layers.{i}.", f"transformer.h.{i}."
        attn = [f"{ours}self_attn.w_{x}" for x in "qkv"]
        out += [
            (f"{ours}self_attn_residual.norm.weight", f"{hf}ln_1.weight"),
            (f"{ours}self_attn_residual.norm.bias", f"{hf}ln_1.bias"),
            (tuple(f"{a}.weight" for a in attn), f"{hf}attn.c_attn.weight", _fuse_weight, _split_weight),
            (tuple(f"{a}.bias" for a in attn), f"{hf}attn.c_attn.bias", _fuse_bias, _split_bias),
            (f"{ours}self_attn.w_o.weight", f"{hf}attn.c_proj.weight", _transpose, _transpose),
            (f"{ours}self_attn.w_o.bias", f"{hf}attn.c_proj.bias"),
            (f"{ours}ffn_residual.norm.weight", f"{hf}ln_2.weight"),
            (f"{ours}ffn_residual.norm.bias", f"{hf}ln_2.bias"),
            (f"{ours}ffn.w_1.weight", f"{hf}mlp.c_fc.weight", _transpose, _transpose),
            (f"{ours}ffn.w_1.bias", f"{hf}mlp.c_fc.bias"),
            (f"{ours}ffn.w_2.weight", f"{hf}mlp.c_proj.weight", _transpose, _transpose),
            (f"{ours}ffn.w_2.bias", f"{hf}mlp.c_proj.bias"),
        ]
    out += [("decoder.final_norm.weight", "transformer.ln_f.weight"), ("decoder.final_norm.bias", "transformer.ln_f.bias")]
    if config.head == "classify":
        out.append(("head.score.weight", "score.weight"))
    elif config.head == "tag":
        out += [("head.classifier.weight", "classifier.weight"), ("head.classifier.bias", "classifier.bias")]
    elif config.head == "qa":
        out += [("head.qa_outputs.weight", "qa_outputs.weight"), ("head.qa_outputs.bias", "qa_outputs.bias")]
    elif not config.tie_output:
        out.append(("lm_head.proj.weight", "lm_head.weight"))
    return out


# Conv1D is x @ W + b with W [in, out]; nn.Linear is x @ W.T + b with W [out, in].
def _transpose(w: torch.Tensor) -> torch.Tensor:
    return w.t()


def _fuse_weight(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.cat([q.t(), k.t(), v.t()], dim=1)  # [d_model, 3 * d_model]


def _split_weight(w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(part.t() for part in w.chunk(3, dim=1))


def _fuse_bias(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.cat([q, k, v])


def _split_bias(b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(b.chunk(3))


# Export ------------------------------------------------------------------------------------------
def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a GPT-2 (empty when it is one)."""
    problems = []
    if kind not in _ARCHITECTURE_OF_KIND:
        problems.append(f"kind {kind!r} (GPT-2 exports: {', '.join(_ARCHITECTURE_OF_KIND)})")
    if config.norm != "pre" or not config.use_final_norm:
        problems.append("GPT-2 is pre-norm with a final LayerNorm")
    if config.scale_embeddings:
        problems.append("scale_embeddings=true (GPT-2 does not scale embeddings)")
    if config.output_bias:
        problems.append("output_bias=true (GPT-2's LM head has no bias)")
    if config.embedding_norm or config.n_segments:
        problems.append("embedding_norm/n_segments (GPT-2 has neither)")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    """The config of the exported model (sinusoidal positions travel as a learned table)."""
    return config.replace(positions="learned")


def headless(kind: str) -> bool:
    return False


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for the GPT-2 class of kind (GPT2LMHeadModel for "lm")."""
    document = {
        "model_type": MODEL_TYPE, "architectures": [_ARCHITECTURE_OF_KIND[kind]], "vocab_size": config.vocab_size,
        "n_embd": config.d_model, "n_head": config.n_heads, "n_layer": config.n_layers, "n_inner": config.d_ff,
        "n_positions": config.max_len, "activation_function": EXPORT_ACTIVATIONS[config.activation],
        "layer_norm_epsilon": config.norm_eps, "resid_pdrop": config.dropout, "embd_pdrop": config.dropout,
        "attn_pdrop": config.attention_dropout, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "add_cross_attention": False, "tie_word_embeddings": config.tie_output,
        "bos_token_id": ids["start"], "eos_token_id": ids["end"], "pad_token_id": ids["pad"],
        "initializer_range": 0.02,
    }
    if kind in ("classify", "tag"):
        document.update(label_settings(labels, config.n_labels))
    return document

