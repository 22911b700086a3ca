"""Qwen2 (Hugging Face `qwen2`) <-> glassformer: a LLaMA with biases on Wq, Wk and Wv (none on Wo).

Everything else, weight names included, is LLaMA's (see hf_llama). Qwen2's tokenizer adds no
special token around a text, which hf_folder reads from tokenizer.json's post-processor.
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.interop import hf_llama
from glassformer.interop.hf_folder import setting
from glassformer.interop.hf_llama import llama_like_problems, read_llama_like, with_head, write_llama_like

MODEL_TYPE = "qwen2"
BASED_ON = hf_llama  # the rest of the family interface
ARCHITECTURES = hf_llama.architectures("Qwen2")


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    if hf.get("use_sliding_window"):
        raise UserError(f"{MODEL_TYPE} setting(s) not supported: {setting('use_sliding_window', True)}")
    return with_head(read_llama_like(hf, qkv_bias=True, out_bias=False), hf, keys)


def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a Qwen2 (empty when it is one)."""
    problems = llama_like_problems(config, kind, "Qwen2")
    if not config.use_qkv_bias or config.use_attn_out_bias or config.use_ffn_bias:
        problems.append("Qwen2 has biases on Wq, Wk, Wv only")
    if config.sliding_window is not None or config.qk_norm:
        problems.append("sliding_window/qk_norm (not exported as Qwen2)")
    return problems


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for the Qwen2 class of kind."""
    return {**write_llama_like(config, ids, MODEL_TYPE, "Qwen2", kind, labels), "use_sliding_window": False}
