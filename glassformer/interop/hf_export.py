"""Write a glassformer model as a Hugging Face folder that `transformers` loads as GPT-2, BERT, BART or a
LLaMA-family model.

The family follows the model's: decoder-only -> GPT2LMHeadModel, or with rotary positions the first of
LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM and Qwen3ForCausalLM that expresses it;
encoder-only -> BertModel /
BertForMaskedLM / BertForSequenceClassification / BertForTokenClassification (by head),
encoder-decoder -> BartForConditionalGeneration. Where our model lacks a part the HF class
always has, the export writes the tensor that computes the same thing: sinusoidal positions
become a learned table holding the very same values, a BERT without segments gets one all-zero
token-type row, a BART without output bias gets a zero final_logits_bias. What cannot be
expressed (pre-norm BERT, scaled GPT-2 embeddings, ...) is a UserError listing every reason.

Files: config.json, model.safetensors, and when the tokenizer is a SubwordTokenizer also
tokenizer.json + tokenizer_config.json (its special tokens); generation_config.json for
lm and seq2seq models.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.framing import Framing, decoder_start
from glassformer.interop.hf_folder import (
    CONFIG_FILE,
    GENERATION_FILE,
    TOKENIZER_FILE,
    family_module,
    rules,
    to_hf_state,
)
from glassformer.models import build_model
from glassformer.text import END_ID, PAD_ID, START_ID, SubwordTokenizer, Tokenizer

FAMILY_OF = {"decoder-only": "gpt2", "encoder-only": "bert", "encoder-decoder": "bart"}
# Decoder-only models with rotary positions export as the first of these whose class expresses
# them (an imported model first tries the type it came as).
LLAMA_LIKE = ("llama", "qwen2", "mistral", "qwen3")
_KIND_OF_FAMILY = {"decoder-only": "lm", "encoder-decoder": "seq2seq"}
_KIND_OF_HEAD = {"none": "encode", "mlm": "mlm", "classify": "classify", "tag": "tag"}
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_SETTINGS_FILE = "tokenizer_config.json"
# Decoding behaviour copied from meta["generation"] (the token ids come from the tokenizer).
_GENERATION_BEHAVIOUR = (
    "forced_bos_token_id", "forced_eos_token_id", "max_length", "min_length", "num_beams",
    "no_repeat_ngram_size", "length_penalty", "early_stopping",
)


def export_hf(run_or_model, out_dir: str | Path) -> Path:
    """Write run_or_model (a Run, or a bare glassformer model) to out_dir in the HF layout.

    Returns:
        out_dir, holding config.json and model.safetensors (and the tokenizer files).
    Raises:
        UserError when the model cannot be expressed exactly as its HF family.
    """
    model, config, kind, labels, tokenizer, meta = _parts(run_or_model)
    if config.positions == "rotary":
        family, problems = _llama_like(config, kind, meta)
    else:
        family, problems = family_module(FAMILY_OF[config.family]), []
        if not config.bias or config.qkv_bias is False or config.attn_out_bias is False or config.ffn_bias is False:
            problems.append("bias=false (HF's layers all have biases)")
        if config.attn_width != config.d_model or config.kv_heads != config.n_heads:
            problems.append(f"d_attn={config.attn_width} differs from d_model={config.d_model} or n_kv_heads is set")
        if config.norm_type != "layernorm" or config.gated_ffn or config.qk_norm or config.sliding_window:
            problems.append("RMSNorm, gated feed-forward, q/k norms and sliding windows need rotary positions (LLaMA)")
        problems += family.check_export(config, kind)
    if problems:
        raise UserError(f"cannot export as {family.MODEL_TYPE}: {'; '.join(problems)}")
    target = family.export_config(config)
    table = rules(family, target, kind, dict(meta.get("hf_position_rows") or {}))
    hf_state = to_hf_state(table, _complete_state(model, config, target))
    if family.headless(kind):
        hf_state = {name.removeprefix(family.BASE_PREFIX): tensor for name, tensor in hf_state.items()}
    ids = _special_ids(tokenizer, meta)
    document = family.write_config(target, kind, labels, ids, meta)

    from glassformer.run_folder import atomic_write, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Fresh contiguous copies: safetensors stores each tensor on its own, never a view.
    tensors = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in hf_state.items()}
    atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    atomic_write_text(out / CONFIG_FILE, _json(document))
    if kind in ("lm", "seq2seq"):
        atomic_write_text(out / GENERATION_FILE, _json(_generation(ids, kind, meta)))
    if isinstance(tokenizer, SubwordTokenizer):
        atomic_write_text(out / TOKENIZER_FILE, tokenizer.hf_tokenizer.to_str(pretty=True) + "\n")
        atomic_write_text(out / TOKENIZER_SETTINGS_FILE, _json(_tokenizer_settings(tokenizer, family, config)))
    return out


def _llama_like(config: ModelConfig, kind: str, meta: dict):
    """The first LLaMA-like family that expresses config, and LLaMA's problems when none does."""
    came_as = (meta.get("hf") or {}).get("model_type")
    order = sorted(LLAMA_LIKE, key=lambda name: name != came_as)
    for name in order:
        family = family_module(name)
        if not family.check_export(config, kind):
            return family, []
    family = family_module(order[0])
    return family, family.check_export(config, kind)


def _parts(run_or_model) -> tuple[nn.Module, ModelConfig, str, list[str], Tokenizer | None, dict]:
    from glassformer.run_folder import Run

    if isinstance(run_or_model, Run):
        run = run_or_model
        source, target = run.source_tokenizer, run.target_tokenizer
        if target is not source and target.to_dict() != source.to_dict():
            raise UserError("cannot export a run with separate source and target tokenizers (HF models have one)")
        return run.model, run.config, run.kind, list(run.labels), run.source_tokenizer, dict(run.meta)
    config = getattr(run_or_model, "config", None)
    if not isinstance(run_or_model, nn.Module) or not isinstance(config, ModelConfig):
        raise TypeError(f"export_hf needs a Run or a glassformer model, got {type(run_or_model).__name__}")
    kind = _KIND_OF_FAMILY.get(config.family) or _KIND_OF_HEAD[config.head]
    return run_or_model, config, kind, [], None, {}


def _complete_state(model: nn.Module, config: ModelConfig, target: ModelConfig) -> dict[str, torch.Tensor]:
    """model's tensors plus those the exported form adds (see the module docstring)."""
    state = dict(model.state_dict())
    with torch.device("meta"):
        shapes = build_model(target, init=False).state_dict()
    for name, shape_only in shapes.items():
        if name in state:
            continue
        if name.endswith("position.weight") and config.positions == "sinusoidal":
            state[name] = model.get_submodule(name.removesuffix(".weight")).table  # the same values
        elif name.endswith("segment.weight") and config.n_segments == 0:
            state[name] = torch.zeros(shape_only.shape)
        elif name == "lm_head.proj.bias" and not config.output_bias:
            state[name] = torch.zeros(shape_only.shape)
        else:
            raise RuntimeError(f"no exported value for {name}")  # an export_config out of step
    return state


def _special_ids(tokenizer: Tokenizer | None, meta: dict) -> dict[str, int | None]:
    """pad/start/end and the decoder's first token; glassformer's fixed ids without a tokenizer."""
    framing = Framing.from_meta(meta)
    if tokenizer is None:
        start = START_ID if framing.decoder_start is None else framing.decoder_start
        return {"pad": PAD_ID, "start": START_ID, "end": END_ID, "decoder_start": start}
    # A pad the tokenizer only borrows (GPT-2's) stays undeclared, as in the original folder.
    pad = tokenizer.pad_id if not isinstance(tokenizer, SubwordTokenizer) or tokenizer.specials["pad"] else None
    return {
        "pad": pad, "start": tokenizer.start_id, "end": tokenizer.end_id,
        "decoder_start": decoder_start(tokenizer, framing),
    }


def _generation(ids: dict[str, int], kind: str, meta: dict) -> dict:
    document = {"bos_token_id": ids["start"], "eos_token_id": ids["end"]}
    if ids["pad"] is not None:
        document["pad_token_id"] = ids["pad"]
    if kind == "seq2seq":
        document["decoder_start_token_id"] = ids["decoder_start"]
    saved = meta.get("generation") or {}
    document.update({k: saved[k] for k in _GENERATION_BEHAVIOUR if saved.get(k) is not None})
    return document


def _tokenizer_settings(tokenizer: SubwordTokenizer, family, config: ModelConfig) -> dict:
    """tokenizer_config.json: the class transformers should use and the tokens declared special
    (a role the tokenizer fills by borrowing another token is left out, as it was given)."""
    document = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": config.max_len}
    for role, (token_key, _, _) in family.SPECIAL_TOKENS.items():
        if tokenizer.specials[role] is not None:
            document[token_key] = tokenizer.specials[role]
    return document


def _json(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
