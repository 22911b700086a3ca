"""Write a glassformer model as a Hugging Face folder that `transformers` loads with the same logits.

The class follows the model's family and options (`export_family`): a folder imported from
transformers goes back to its own family; otherwise decoder-only -> GPT2LMHeadModel, or with
rotary positions the first of LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM and
Qwen3ForCausalLM that expresses it (a decoder with a classifier or span head as the family's
...ForSequenceClassification, ...ForTokenClassification or ...ForQuestionAnswering); encoder-only -> BertModel / BertForMaskedLM /
BertForSequenceClassification / BertForTokenClassification / BertForQuestionAnswering (by head);
encoder-decoder -> BartForConditionalGeneration with an embedding LayerNorm (BartForSequenceClassification
or BartForQuestionAnswering with a classify or qa head),
BlenderbotForConditionalGeneration when pre-norm (LayerNorm before each sublayer, one after each
stack), MarianMTModel when post-norm with sinusoidal positions (the paper's model),
T5ForConditionalGeneration with relative positions (T5). Where our model lacks a part the HF class
always has, the export writes the tensor that computes the same thing: sinusoidal positions
become a learned table holding the very same values, a BERT without segments gets one all-zero
token-type row, a BART without output bias gets a zero final_logits_bias. What cannot be
expressed (pre-norm BERT, scaled GPT-2 embeddings, ...) is a UserError listing every reason.

Files: config.json, model.safetensors, tokenizer.json + tokenizer_config.json (its special
tokens), and generation_config.json for lm and seq2seq models. A word- or character-level
vocabulary is written as a WordLevel tokenizer that splits exactly as glassformer does; the
tokenizer's post-processor frames a text as the run does (a source "text <end>", an encoder's
"<start> text <end>", a prompt "<start> text"), so that `transformers`' tokenizer gives the
very ids glassformer feeds the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer as HFTokenizer
from torch import nn

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.framing import Framing, decoder_start
from glassformer.interop.hf_folder import (
    CONFIG_FILE,
    FAMILIES,
    GENERATION_FILE,
    TOKENIZER_FILE,
    family_module,
    resolve_dtype,
    rules,
    to_hf_state,
)
from glassformer.models import build_model
from glassformer.text import END_ID, PAD_ID, SPECIALS, START_ID, SubwordTokenizer, Tokenizer, VocabTokenizer
from glassformer.text.specials import ROLES

FAMILY_OF = {"decoder-only": "gpt2", "encoder-only": "bert", "encoder-decoder": "bart"}  # the first choice
# Encoder-decoder classes, tried in this order: an embedding LayerNorm, pre-norm, post-norm.
SEQ2SEQ_CLASSES = ("bart", "blenderbot", "marian")
# Decoder-only models with rotary positions export as the first of these whose class expresses them.
LLAMA_LIKE = ("llama", "qwen2", "mistral", "qwen3")
# Families whose own check_export knows every switch (the generic checks below assume biases and LayerNorms).
OWN_CHECKS = (*LLAMA_LIKE, "t5")
_KIND_OF_FAMILY = {"decoder-only": "lm", "encoder-decoder": "seq2seq"}
_KIND_OF_HEAD = {"none": "encode", "mlm": "mlm", "classify": "classify", "tag": "tag", "qa": "qa"}
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
TOKENIZER_SETTINGS_FILE = "tokenizer_config.json"
# Decoding behaviour copied from meta["generation"] (the token ids come from the tokenizer).
_GENERATION_BEHAVIOUR = (
    "forced_bos_token_id", "forced_eos_token_id", "max_length", "min_length", "num_beams",
    "no_repeat_ngram_size", "length_penalty", "early_stopping",
)


def export_hf(run_or_model, out_dir: str | Path, dtype: str | torch.dtype = "keep", max_shard_size: int | None = None) -> Path:
    """Write run_or_model (a Run, or a bare glassformer model) to out_dir in the HF layout.

    Args:
        dtype: "keep" the model's floating-point type, or cast ("float32", "bfloat16", "float16").
        max_shard_size: bytes per weights file; a larger checkpoint is split into shards
            model-00001-of-0000N.safetensors with a model.safetensors.index.json, as transformers writes.

    Returns:
        out_dir, holding config.json and model.safetensors (and the tokenizer files).
    Raises:
        UserError when the model cannot be expressed exactly as its HF family.
    """
    model, config, kind, labels, tokenizer, meta = _parts(run_or_model)
    family = export_family(config, kind, meta)
    if export_problems(family, config, kind):
        tried = [family_module(name) for name in _candidates(config)][:1 if config.positions == "rotary" else None]
        reasons = [f"as {f.MODEL_TYPE}: {'; '.join(export_problems(f, config, kind))}" for f in tried]
        raise UserError(f"cannot export {' / '.join(reasons)}")
    target = family.export_config(config)
    table = rules(family, target, kind, dict(meta.get("hf_position_rows") or {}))
    hf_state = to_hf_state(table, _complete_state(model, config, target))
    if family.headless(kind):
        hf_state = {name.removeprefix(family.BASE_PREFIX): tensor for name, tensor in hf_state.items()}
    ids = _special_ids(tokenizer, meta)
    document = family.write_config(target, kind, labels, ids, meta)
    cast = resolve_dtype(dtype, hf_state)
    document["dtype"] = str(cast).removeprefix("torch.")

    from glassformer.files import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Fresh contiguous copies: safetensors stores each tensor on its own, never a view.
    tensors = {
        name: t.detach().to("cpu", dtype=cast if t.is_floating_point() else t.dtype, copy=True).contiguous()
        for name, t in hf_state.items()
    }
    _write_weights(out, tensors, max_shard_size)
    atomic_write_text(out / CONFIG_FILE, _json(document))
    if kind in ("lm", "seq2seq"):
        atomic_write_text(out / GENERATION_FILE, _json(_generation(ids, kind, meta)))
    if tokenizer is not None:
        written = exported_tokenizer(tokenizer, kind, Framing.from_meta(meta))
        atomic_write_text(out / TOKENIZER_FILE, written.hf_tokenizer.to_str(pretty=True) + "\n")
        atomic_write_text(out / TOKENIZER_SETTINGS_FILE, _json(_tokenizer_settings(written, family, config)))
    return out


def _write_weights(out: Path, tensors: dict[str, torch.Tensor], max_shard_size: int | None) -> None:
    """model.safetensors, or shards of at most max_shard_size bytes (a bigger tensor alone) and an index."""
    from glassformer.files import atomic_write, atomic_write_text

    for old in [*out.glob("model-*-of-*.safetensors"), out / WEIGHTS_INDEX, out / WEIGHTS_FILE]:
        old.unlink(missing_ok=True)  # a shard of an earlier export must not be read with this one
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if max_shard_size is not None and shards[-1] and size + nbytes > max_shard_size:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    if len(shards) == 1:
        atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        atomic_write(out / file, lambda tmp, shard=shard: save_file(shard, tmp, metadata={"format": "pt"}))
        weight_map.update({name: file for name in shard})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    atomic_write_text(out / WEIGHTS_INDEX, _json({"metadata": {"total_size": total}, "weight_map": weight_map}))


def export_problems(family: ModuleType, config: ModelConfig, kind: str) -> list[str]:
    """What keeps config from being exported as family (empty when nothing does)."""
    problems = []
    if family.MODEL_TYPE not in OWN_CHECKS:
        if not config.bias or config.qkv_bias is False or config.attn_out_bias is False or config.ffn_bias is False:
            problems.append("bias=false (HF's layers all have biases)")
        if config.attn_width != config.d_model or config.kv_heads != config.n_heads:
            problems.append(f"d_attn={config.attn_width} differs from d_model={config.d_model} or n_kv_heads is set")
        if config.norm_type != "layernorm" or config.gated_ffn or config.qk_norm or config.sliding_window:
            problems.append("RMSNorm, gated feed-forward, q/k norms and sliding windows need rotary positions (LLaMA)")
    return problems + family.check_export(config, kind)


def _candidates(config: ModelConfig) -> tuple[str, ...]:
    """The HF families config may export as, in the order they are tried."""
    if config.positions == "rotary":
        return LLAMA_LIKE
    if config.positions == "relative":
        return ("t5",)
    if config.family == "encoder-decoder":
        return SEQ2SEQ_CLASSES
    return (FAMILY_OF[config.family],)


def export_family(config: ModelConfig, kind: str, meta: dict | None = None) -> ModuleType:
    """The HF family config exports to: the one it was imported from when that still expresses
    it, else the first of its candidate classes that does (else the first, to name the reasons)."""
    source = ((meta or {}).get("hf") or {}).get("model_type")
    if source in FAMILIES and not export_problems(family_module(source), config, kind):
        return family_module(source)
    candidates = [family_module(name) for name in _candidates(config)]
    return next((f for f in candidates if not export_problems(f, config, kind)), candidates[0])


def exported_tokenizer(tokenizer: Tokenizer, kind: str, framing: Framing) -> SubwordTokenizer:
    """tokenizer as the `tokenizers` library writes it, with a post-processor framing a text as the
    run frames it (unless it already has one: a foreign tokenizer keeps its own)."""
    from tokenizers import processors

    if isinstance(tokenizer, VocabTokenizer):
        tokenizer = SubwordTokenizer(tokenizer.to_hf_tokenizer(), dict(zip(ROLES, SPECIALS)))
    if not isinstance(tokenizer, SubwordTokenizer):
        raise UserError(f"cannot write a {type(tokenizer).__name__} as {TOKENIZER_FILE}")
    hf = HFTokenizer.from_str(tokenizer.hf_tokenizer.to_str())  # a copy: the run's stays as it is
    if json.loads(hf.to_str()).get("post_processor") is not None:
        return tokenizer
    start, end = tokenizer.start_id, tokenizer.end_id
    if kind == "seq2seq":
        prefix = list(framing.source_prefix)
        suffix = [end] if framing.source_suffix is None else list(framing.source_suffix)
    else:
        prefix = [start] if framing.sequence_prefix is None else list(framing.sequence_prefix)
        suffix = [end] if framing.sequence_suffix is None else list(framing.sequence_suffix)
        if kind == "lm":
            suffix = []  # what transformers frames is a prompt: generation goes on from it
    if not prefix and not suffix:
        return tokenizer  # nothing to add (GPT-2's prompts are the bare text)
    token = tokenizer.id_to_token
    single = [*map(token, prefix), "$A:0", *map(token, suffix)]
    # A pair (question answering): <start> question <end> context <end>, segments 0 then 1.
    pair = [*single, "$B:1", *(f"{token(i)}:1" for i in suffix)]
    used = sorted(set(prefix + suffix))
    hf.post_processor = processors.TemplateProcessing(
        single=" ".join(single), pair=" ".join(pair), special_tokens=[(token(i), i) for i in used],
    )
    return SubwordTokenizer(hf, tokenizer.specials)


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
    kind = _KIND_OF_HEAD[config.head] if config.head != "none" else _KIND_OF_FAMILY.get(config.family, "encode")
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
    (a role the tokenizer fills by borrowing another token is left out, as it was given). Only an
    encoder reads token types: for the others the tokenizer gives none (GPT-2 would add a type id's
    token embedding to every position), as their own tokenizers do."""
    document = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": config.max_len}
    if config.family != "encoder-only":
        document["model_input_names"] = ["input_ids", "attention_mask"]
    for role, (token_key, _, _) in family.SPECIAL_TOKENS.items():
        if tokenizer.specials[role] is not None:
            document[token_key] = tokenizer.specials[role]
    return document


def _json(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
