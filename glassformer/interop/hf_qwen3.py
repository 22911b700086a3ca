"""Qwen3 (Hugging Face `qwen3`) <-> glassformer: a LLaMA with an RMSNorm over each head's queries
and keys before the rotation (q_norm, k_norm), and a head width set on its own ("head_dim").

Weight names are LLaMA's (see hf_llama) plus self_attn.q_norm / k_norm.
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop import hf_llama
from glassformer.interop.hf_folder import setting
from glassformer.interop.hf_llama import llama_like_problems, read_llama_like, with_head, write_llama_like

MODEL_TYPE = "qwen3"
BASED_ON = hf_llama  # the rest of the family interface
ARCHITECTURES = hf_llama.architectures("Qwen3")


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    if hf.get("use_sliding_window"):
        raise UserError(f"{MODEL_TYPE} setting(s) not supported: {setting('use_sliding_window', True)}")
    bias = bool(hf.get("attention_bias", False))
    return with_head(read_llama_like(hf, qkv_bias=bias, out_bias=bias, qk_norm=True), hf, keys)


def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a Qwen3 (empty when it is one)."""
    problems = llama_like_problems(config, kind, "Qwen3")
    if not config.qk_norm:
        problems.append("qk_norm=false (Qwen3 normalises queries and keys)")
    if config.use_qkv_bias != config.use_attn_out_bias or config.use_ffn_bias:
        problems.append("Qwen3's attention_bias sets all four attention biases, and its MLP has none")
    if config.sliding_window is not None:
        problems.append("sliding_window (not exported as Qwen3)")
    return problems


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for the Qwen3 class of kind."""
    document = write_llama_like(config, ids, MODEL_TYPE, "Qwen3", kind, labels)
    return {**document, "attention_bias": config.use_qkv_bias, "use_sliding_window": False}
