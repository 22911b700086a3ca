"""LLaMA (Hugging Face `llama`) <-> glassformer's decoder-only model: settings and weight names.

A LLaMA is a pre-norm decoder built from the modern parts: RMSNorm, rotary positions applied to
queries and keys, a SwiGLU feed-forward network, grouped-query attention and no biases. Qwen2,
Mistral and Qwen3 differ from it in a few switches (q/k/v biases, a sliding window, q/k norms),
so their modules (hf_qwen2, hf_mistral, hf_qwen3) reuse this one's table and settings through
`read_llama_like` and `write_llama_like`. Every tensor maps one to one: transformers' q_proj is
our w_q, gate_proj our w_gate, input_layernorm the norm before attention, and so on.

Heads: LlamaForSequenceClassification (`score`, no bias, on the last token that is not padding),
LlamaForTokenClassification (`score` with a bias) and LlamaForQuestionAnswering (`qa_outputs`,
start and end logits from every position's final hidden state), and the same classes of Qwen2,
Mistral and Qwen3, load as a decoder-only model whose head is "classify", "tag" or "qa" in place
of the LM head. The question-answering classes of Llama, Qwen2 and Qwen3 keep their base model
under "transformer." (transformers keeps that older name for them), Mistral's under "model.".

Framing: a LLaMA tokenizer.json's post-processor puts <s> before every text, as transformers'
tokenizer does; `glassformer.interop.hf_folder` reads that post-processor, so a prompt starts
with <s> here too. A whole training text ends with </s>; a classifier's text ends as the tokenizer
leaves it.
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop.hf_folder import ACTIVATIONS, label_settings, read_labels, require, setting

MODEL_TYPE = "llama"
BASE_PREFIX = "model."
# The question-answering classes' base model sits under "transformer." (QA_BASE_PREFIX).
HEAD_PREFIXES = ("lm_head.", "score.", "qa_outputs.", "transformer.")
QA_BASE_PREFIX = "transformer."
# The class suffix of each run kind. A bare LlamaModel has no LM head to load (its config unties
# one), so it does not load.
CLASS_OF_KIND = {
    "lm": "ForCausalLM", "classify": "ForSequenceClassification", "tag": "ForTokenClassification",
    "qa": "ForQuestionAnswering",
}


def architectures(name: str) -> tuple[str, ...]:
    """The classes of a LLaMA-like family that load, e.g. LlamaForCausalLM for name "Llama"."""
    return tuple(name + suffix for suffix in CLASS_OF_KIND.values())


ARCHITECTURES = architectures("Llama")
# Old checkpoints stored each layer's rotary frequencies; they are recomputed from the config.
IGNORED = (r"(^|\.)rotary_emb\.inv_freq$",)
DROPPED: tuple[str, ...] = ()
SPECIAL_TOKENS = {
    "pad": ("pad_token", "pad_token_id", None),
    "start": ("bos_token", "bos_token_id", "<s>"),
    "end": ("eos_token", "eos_token_id", "</s>"),
    "unk": ("unk_token", None, "<unk>"),
    "mask": ("mask_token", None, None),
}
ROPE_TYPES = ("default", "llama3")
EXPORT_ACTIVATIONS = {"silu": "silu", "gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}


# Import ------------------------------------------------------------------------------------------
def rope_settings(hf: dict) -> tuple[float, dict | None]:
    """rope_theta and the scaling, from transformers 5's "rope_parameters" or the older
    "rope_theta" and "rope_scaling"; scalings other than llama3 are a UserError."""
    params = hf.get("rope_parameters") if isinstance(hf.get("rope_parameters"), dict) else {}
    theta = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
    scaling = {k: v for k, v in params.items() if k != "rope_theta"} or hf.get("rope_scaling")
    if not scaling:
        return theta, None
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise UserError(f"rope type {kind!r} is not supported; supported: {', '.join(ROPE_TYPES)}")
    return theta, (dict(scaling, rope_type=kind) if kind != "default" else None)


def read_llama_like(
    hf: dict, *, qkv_bias: bool, out_bias: bool, ffn_bias: bool = False, sliding_window: int | None = None,
    qk_norm: bool = False,
) -> ModelConfig:
    """The ModelConfig of a LLaMA-like config.json, with the family's own switches given."""
    if int(hf.get("pretraining_tp", 1)) != 1:
        raise UserError(f"{MODEL_TYPE} setting(s) not supported: {setting('pretraining_tp', hf['pretraining_tp'])}")
    activation = hf.get("hidden_act", "silu")
    if activation not in ACTIVATIONS and activation not in ("silu", "swish"):
        raise UserError(f"hidden_act {activation!r} is not supported")
    d_model = require(hf, "hidden_size")
    n_heads = require(hf, "num_attention_heads")
    head_dim = hf.get("head_dim") or d_model // n_heads
    vocab = require(hf, "vocab_size")
    theta, scaling = rope_settings(hf)
    pad = hf.get("pad_token_id")
    return ModelConfig(
        family="decoder-only", vocab_size=vocab, d_model=d_model, n_heads=n_heads, d_attn=n_heads * head_dim,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads, d_ff=require(hf, "intermediate_size"),
        n_layers=require(hf, "num_hidden_layers"), max_len=require(hf, "max_position_embeddings"),
        positions="rotary", rope_theta=theta, rope_scaling=scaling,
        activation=ACTIVATIONS.get(activation, "silu"), gated_ffn=True, norm="pre", final_norm=True,
        norm_type="rmsnorm", norm_eps=float(hf.get("rms_norm_eps", 1e-6)), dropout=0.0,
        attn_dropout=float(hf.get("attention_dropout", 0.0)), scale_embeddings=False, bias=False,
        qkv_bias=qkv_bias, attn_out_bias=out_bias, ffn_bias=ffn_bias, output_bias=False,
        tie_output=bool(hf.get("tie_word_embeddings", False)), sliding_window=sliding_window, qk_norm=qk_norm,
        pad_id=pad if isinstance(pad, int) and 0 <= pad < vocab else 0,
    )


def with_head(config: ModelConfig, hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """(config with the head the folder's class has, run kind, labels): the class named in
    "architectures", else the head tensors the checkpoint holds (score with a bias: tagging;
    qa_outputs: question answering)."""
    kinds = {suffix: kind for kind, suffix in CLASS_OF_KIND.items()}
    named = [kinds[s] for a in hf.get("architectures") or () for s in kinds if isinstance(a, str) and a.endswith(s)]
    if named:
        kind = named[0]
    elif "score.weight" in keys:
        kind = "tag" if "score.bias" in keys else "classify"
    elif "qa_outputs.weight" in keys:
        kind = "qa"
    else:
        kind = "lm"
    if kind == "lm":
        return config, kind, []
    if kind == "qa":
        return config.replace(head=kind), kind, []
    labels = read_labels(hf)
    return config.replace(head=kind, n_labels=len(labels)), kind, labels


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    attention_bias = bool(hf.get("attention_bias", False))
    config = read_llama_like(hf, qkv_bias=attention_bias, out_bias=attention_bias, ffn_bias=bool(hf.get("mlp_bias", False)))
    return with_head(config, hf, keys)


def framing(ids: dict[str, int | None], hf: dict) -> dict:
    """<s> text as a prompt (hf_folder replaces the prefix by what tokenizer.json adds), text </s> to train."""
    return {"sequence_prefix": [ids["start"]], "sequence_suffix": [ids["end"]]}


def aliases(config: ModelConfig, kind: str) -> dict[str, str]:
    """Tensors a file may repeat under a second name (a tied LM head)."""
    return {"lm_head.weight": "model.embed_tokens.weight"} if config.tie_output and config.head == "none" else {}


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """Our name(s) <-> HF name(s); every tensor keeps its form."""
    return llama_rules(config, QA_BASE_PREFIX if config.head == "qa" else BASE_PREFIX)


def llama_rules(config: ModelConfig, base: str) -> list[tuple]:
    """The rules of a LLaMA-like model whose base model sits under base ("model.", "transformer.")."""
    def linear(ours: str, hf: str, bias: bool) -> list[tuple[str, str]]:
        return [(f"{ours}.weight", f"{hf}.weight")] + ([(f"{ours}.bias", f"{hf}.bias")] if bias else [])

    out: list[tuple] = [("embed.token.weight", f"{base}embed_tokens.weight")]
    for i in range(config.n_layers):
        ours, hf = f"decoder.layers.{i}.", f"{base}layers.{i}."
        out.append((f"{ours}self_attn_residual.norm.weight", f"{hf}input_layernorm.weight"))
        for x in "qkv":
            out += linear(f"{ours}self_attn.w_{x}", f"{hf}self_attn.{x}_proj", config.use_qkv_bias)
        out += linear(f"{ours}self_attn.w_o", f"{hf}self_attn.o_proj", config.use_attn_out_bias)
        if config.qk_norm:
            out += [
                (f"{ours}self_attn.q_norm.weight", f"{hf}self_attn.q_norm.weight"),
                (f"{ours}self_attn.k_norm.weight", f"{hf}self_attn.k_norm.weight"),
            ]
        out.append((f"{ours}ffn_residual.norm.weight", f"{hf}post_attention_layernorm.weight"))
        for x in ("gate", "up", "down"):
            out += linear(f"{ours}ffn.w_{x}", f"{hf}mlp.{x}_proj", config.use_ffn_bias)
    out.append(("decoder.final_norm.weight", f"{base}norm.weight"))
    if config.head == "classify":
        out.append(("head.score.weight", "score.weight"))
    elif config.head == "tag":
        out += [("head.classifier.weight", "score.weight"), ("head.classifier.bias", "score.bias")]
    elif config.head == "qa":
        out += linear("head.qa_outputs", "qa_outputs", True)
    elif not config.tie_output:
        out.append(("lm_head.proj.weight", "lm_head.weight"))
    return out


# Export ------------------------------------------------------------------------------------------
def llama_like_problems(config: ModelConfig, kind: str, name: str) -> list[str]:
    """What keeps config from being any LLaMA-like model (the switches each family differs in aside)."""
    problems = [] if kind in CLASS_OF_KIND else [f"kind {kind!r} ({name} exports: {', '.join(CLASS_OF_KIND)})"]
    if config.family != "decoder-only":
        problems.append(f"family {config.family!r} ({name} is decoder-only)")
    if config.positions != "rotary":
        problems.append(f"positions={config.positions!r} ({name} uses rotary positions)")
    if config.norm != "pre" or not config.use_final_norm or config.norm_type != "rmsnorm":
        problems.append(f"{name} is pre-norm with RMSNorm and a final RMSNorm")
    if not config.gated_ffn:
        problems.append(f"gated_ffn=false ({name} has a gated feed-forward network)")
    if config.scale_embeddings:
        problems.append(f"scale_embeddings=true ({name} does not scale embeddings)")
    if config.output_bias:
        problems.append(f"output_bias=true ({name}'s LM head has no bias)")
    if config.embedding_norm or config.n_segments:
        problems.append(f"embedding_norm/n_segments ({name} has neither)")
    return problems


def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a LLaMA (empty when it is one)."""
    problems = llama_like_problems(config, kind, "LLaMA")
    if config.use_qkv_bias != config.use_attn_out_bias:
        problems.append("q/k/v biases without an output bias or the reverse (LLaMA's attention_bias sets all four)")
    if config.sliding_window is not None:
        problems.append("sliding_window (LLaMA attends to every earlier key)")
    if config.qk_norm:
        problems.append("qk_norm=true (LLaMA has no q/k norms)")
    return problems


def export_config(config: ModelConfig) -> ModelConfig:
    return config


def headless(kind: str) -> bool:
    return False


def write_llama_like(
    config: ModelConfig, ids: dict[str, int | None], model_type: str, name: str, kind: str, labels: list[str]
) -> dict:
    """The config.json settings every LLaMA-like family shares, for its class of kind (name "Llama":
    LlamaForCausalLM, LlamaForSequenceClassification, LlamaForTokenClassification,
    LlamaForQuestionAnswering)."""
    rope = {"rope_theta": config.rope_theta, **(config.rope_scaling or {"rope_type": "default"})}
    labelled = label_settings(labels, config.n_labels) if kind in ("classify", "tag") else {}
    return {
        "model_type": model_type, "architectures": [name + CLASS_OF_KIND[kind]], "vocab_size": config.vocab_size,
        "hidden_size": config.d_model, "intermediate_size": config.d_ff, "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads, "num_key_value_heads": config.kv_heads, "head_dim": config.d_head,
        "hidden_act": EXPORT_ACTIVATIONS[config.activation], "max_position_embeddings": config.max_len,
        "rms_norm_eps": config.norm_eps, "rope_parameters": rope, "rope_theta": config.rope_theta,
        "rope_scaling": config.rope_scaling, "attention_dropout": config.attention_dropout,
        "tie_word_embeddings": config.tie_output, "bos_token_id": ids["start"], "eos_token_id": ids["end"],
        "pad_token_id": ids["pad"], "initializer_range": 0.02, "use_cache": True, **labelled,
    }


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for the LLaMA class of kind."""
    document = write_llama_like(config, ids, MODEL_TYPE, "Llama", kind, labels)
    document.update(attention_bias=config.use_qkv_bias, mlp_bias=config.use_ffn_bias, pretraining_tp=1)
    return document
