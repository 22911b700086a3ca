"""Mistral (Hugging Face `mistral`) <-> glassformer: a LLaMA whose attention may slide.

With "sliding_window" W set, each query attends to itself and the W - 1 keys before it (Mistral
7B v0.1: 4096); null means every earlier key, as later Mistral versions set it. Weight names
are LLaMA's (see hf_llama), except that MistralForQuestionAnswering keeps its base model under
"model." as Mistral's other classes do (LLaMA's under "transformer.").
"""

from __future__ import annotations

from glassformer.config import ModelConfig
from glassformer.interop import hf_llama
from glassformer.interop.hf_llama import llama_like_problems, llama_rules, read_llama_like, with_head, write_llama_like

MODEL_TYPE = "mistral"
BASED_ON = hf_llama  # the rest of the family interface
ARCHITECTURES = hf_llama.architectures("Mistral")


def read_config(hf: dict, keys: set[str]) -> tuple[ModelConfig, str, list[str]]:
    """HF config.json and the checkpoint's tensor names -> (our config, run kind, labels)."""
    window = hf.get("sliding_window")
    return with_head(read_llama_like(hf, qkv_bias=False, out_bias=False, sliding_window=window), hf, keys)


def rules(config: ModelConfig, kind: str, extra: dict) -> list[tuple]:
    """LLaMA's names, the base model under "model." for every class."""
    return llama_rules(config, hf_llama.BASE_PREFIX)


def check_export(config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being a Mistral (empty when it is one)."""
    problems = llama_like_problems(config, kind, "Mistral")
    if config.use_qkv_bias or config.use_attn_out_bias or config.use_ffn_bias:
        problems.append("biases (Mistral has none)")
    if config.qk_norm:
        problems.append("qk_norm=true (Mistral has no q/k norms)")
    return problems


def write_config(config: ModelConfig, kind: str, labels: list[str], ids: dict[str, int | None], meta: dict) -> dict:
    """Our config -> HF config.json for the Mistral class of kind."""
    return {**write_llama_like(config, ids, MODEL_TYPE, "Mistral", kind, labels), "sliding_window": config.sliding_window}
