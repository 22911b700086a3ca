"""Read a Hugging Face model folder (GPT-2, BERT, RoBERTa, DistilBERT, BART, Marian, Blenderbot, LLaMA,
Qwen2, Mistral, Qwen3, T5) as a glassformer Run.

A folder holds config.json (with "model_type"), the weights (model.safetensors, or
pytorch_model.bin read with torch.load(weights_only=True), either possibly sharded with an
.index.json) and tokenizer.json. Each family module (hf_gpt2, hf_bert, hf_bart, hf_llama, ...) says how its
settings become a ModelConfig and gives a table of weight-name rules; this module applies the
table in either direction (hf_seq2seq holds the layer names BART, Marian and Blenderbot share) and checks a checkpoint against it strictly: a missing tensor, an
unused one or a wrong shape is one UserError naming them all. Tensors transformers itself
treats as non-weights (old causal-mask buffers, position_ids) are skipped, and tied copies of
one tensor under two names (GPT-2's lm_head.weight, BART's embed_tokens) are accepted.

A family module defines: MODEL_TYPE; BASE_PREFIX and HEAD_PREFIXES (how names sit inside the
head model: "transformer.", "bert.", "model."); ARCHITECTURES it loads; IGNORED and DROPPED name
patterns; SPECIAL_TOKENS (role -> tokenizer_config key, config.json id key, usual token);
read_config, framing, aliases and rules for import; check_export, export_config, headless and
write_config for export. A rule is (ours, hf) for a tensor that only changes name, or
(ours, hf, to_hf, to_ours) when it changes form; ours and hf are a name or a tuple of names
(GPT-2's fused c_attn is three of ours). One table serves both directions, so they cannot drift.
A module that names BASED_ON (Qwen2, Mistral and Qwen3 name hf_llama) takes from that module
every definition it does not give itself.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, NamedTuple

import torch
from tokenizers import Tokenizer as HFTokenizer

from glassformer.config import ModelConfig
from glassformer.errors import UserError

if TYPE_CHECKING:
    from glassformer.run_folder import Run
    from glassformer.text import SubwordTokenizer

CONFIG_FILE = "config.json"
GENERATION_FILE = "generation_config.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_SETTINGS = ("tokenizer_config.json", "special_tokens_map.json")  # the later one wins
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# --dtype: "keep" the checkpoint's floating-point type, or cast to one of these.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = ("keep", *DTYPES)
FAMILIES = {
    "gpt2": "hf_gpt2", "bert": "hf_bert", "roberta": "hf_roberta", "distilbert": "hf_distilbert", "bart": "hf_bart",
    "marian": "hf_marian", "blenderbot": "hf_blenderbot",
    "llama": "hf_llama", "qwen2": "hf_qwen2", "mistral": "hf_mistral", "qwen3": "hf_qwen3",
    "t5": "hf_t5",
}
SUPPORTED_MODEL_TYPES = tuple(FAMILIES)
# HF activation name -> ours. gelu_new, gelu_fast and gelu_pytorch_tanh are the same tanh
# approximation of GELU written three ways; gelu and gelu_python are the exact one.
ACTIVATIONS = {
    "relu": "relu", "gelu": "gelu", "gelu_python": "gelu", "silu": "silu", "swish": "silu",
    "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
}
EXPORT_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new", "silu": "silu"}
# Decoding settings kept in a Run's meta["generation"], for generate to honour and export to write back.
GENERATION_KEYS = (
    "bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "forced_bos_token_id",
    "forced_eos_token_id", "max_length", "min_length", "num_beams", "no_repeat_ngram_size", "length_penalty",
    "early_stopping",
)
# Old names transformers still renames on load, for every model (BERT's original files use them).
LEGACY_NAMES = ((r"LayerNorm\.gamma$", "LayerNorm.weight"), (r"LayerNorm\.beta$", "LayerNorm.bias"))
_LISTED = 5  # names shown per kind of mismatch


# Small helpers the family modules share --------------------------------------------------------
def require(hf: dict, name: str):
    """hf[name], or a UserError naming the missing setting."""
    if hf.get(name) is None:
        raise UserError(f"{CONFIG_FILE} lacks {name!r}")
    return hf[name]


def setting(name: str, value) -> str:
    """name=value as config.json writes it."""
    return f"{name}={json.dumps(value)}"


def read_labels(hf: dict) -> list[str]:
    """A classifier's label names in id order, from "id2label" (else "num_labels" of LABEL_i)."""
    id2label = hf.get("id2label") or {}
    n = len(id2label) or int(hf.get("num_labels", 2))
    return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(n)]


def label_settings(labels: list[str], n_labels: int) -> dict:
    """id2label and label2id as config.json writes them."""
    names = labels or [f"LABEL_{i}" for i in range(n_labels)]
    return {
        "id2label": {str(i): name for i, name in enumerate(names)},
        "label2id": {name: i for i, name in enumerate(names)},
    }


def linear(ours: str, hf: str) -> list[tuple[str, str]]:
    """The rules of one linear layer with a bias whose two tensors only change name."""
    return [(f"{ours}.weight", f"{hf}.weight"), (f"{ours}.bias", f"{hf}.bias")]


def offset_position_rule(ours: str, hf: str, offset: int, extra: dict) -> tuple:
    """A position table whose HF form has `offset` rows first that no position reads (BART's 2,
    RoBERTa's pad_token_id + 1). Import slices them off and keeps their values in extra (plain
    JSON numbers, exact for float32), so that an export writes the very same tensor; without them
    (a model trained here) the export writes zeros there."""
    def to_hf(table: torch.Tensor) -> torch.Tensor:
        rows = extra.get(hf)
        head = table.new_zeros(offset, table.size(1))
        if rows is not None and tuple(torch.tensor(rows).shape) == tuple(head.shape):
            head = torch.tensor(rows, dtype=table.dtype).to(table.device)
        return torch.cat([head, table])  # [offset + max_len, d_model]

    def to_ours(table: torch.Tensor) -> torch.Tensor:
        extra[hf] = table[:offset].tolist()
        return table[offset:]

    return (ours, hf, to_hf, to_ours)


def family_module(model_type: object) -> ModuleType:
    """The mapping module of model_type (completed from its BASED_ON module), or a UserError
    listing the supported ones."""
    if model_type not in FAMILIES:
        raise UserError(f"model_type {model_type!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    module = importlib.import_module(f"glassformer.interop.{FAMILIES[model_type]}")
    base = getattr(module, "BASED_ON", None)
    if base is None:
        return module
    merged = ModuleType(module.__name__, module.__doc__)
    for source in (base, module):
        merged.__dict__.update({name: value for name, value in vars(source).items() if not name.startswith("__")})
    return merged


# Rules ------------------------------------------------------------------------------------------
class Rule(NamedTuple):
    """Our tensors <-> HF tensors, and the two conversions (each returns one tensor or a tuple)."""

    ours: tuple[str, ...]
    hf: tuple[str, ...]
    to_hf: Callable[..., object]
    to_ours: Callable[..., object]


def _same(*tensors: torch.Tensor):
    return tensors if len(tensors) > 1 else tensors[0]


def rules(family: ModuleType, config: ModelConfig, kind: str, extra: dict) -> list[Rule]:
    """The family's rule table with every entry in the long form."""
    table = []
    for entry in family.rules(config, kind, extra):
        ours, hf, *convert = entry
        ours = (ours,) if isinstance(ours, str) else tuple(ours)
        hf = (hf,) if isinstance(hf, str) else tuple(hf)
        to_hf, to_ours = convert or (_same, _same)
        table.append(Rule(ours, hf, to_hf, to_ours))
    return table


def _apply(table: list[Rule], state: dict[str, torch.Tensor], forward: bool) -> dict[str, torch.Tensor]:
    out = {}
    for rule in table:
        sources, targets = (rule.ours, rule.hf) if forward else (rule.hf, rule.ours)
        values = (rule.to_hf if forward else rule.to_ours)(*(state[name] for name in sources))
        values = values if isinstance(values, tuple) else (values,)
        out.update(zip(targets, values))
    return out


def to_hf_state(table: list[Rule], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> HF names (each HF tensor once, tied copies left out)."""
    return _apply(table, state, forward=True)


def to_our_state(table: list[Rule], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF state dict (canonical names) -> ours."""
    return _apply(table, state, forward=False)


# Reading files -------------------------------------------------------------------------------------
def _read_json(path: Path, required: bool = True) -> dict:
    if not path.is_file():
        if required:
            raise UserError(f"no {path.name}")
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path.name} is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise UserError(f"{path.name} is not a JSON object")
    return document


def _load_one(file: Path) -> dict[str, torch.Tensor]:
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(file))
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and pickle raise many types for a damaged file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{file.name} is not a readable weights file ({reason})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{file.name} does not hold a state dict of tensors")
    return state


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of the folder's checkpoint (safetensors preferred; shards joined)."""
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return _load_one(path / name)
        index = path / f"{name}.index.json"
        if index.is_file():
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise UserError(f"{index.name} has no \"weight_map\"")
            state = {}
            for shard in sorted(set(map(str, weight_map.values()))):
                file = _inside(path, shard, index.name)
                if not file.is_file():
                    raise UserError(f"{index.name} names the shard {shard!r}, which is not in the folder")
                state.update(_load_one(file))
            return state
    raise UserError(f"no weights (expected {' or '.join(WEIGHT_FILES)})")


def _inside(path: Path, name: object, index: str) -> Path:
    """path / name for a shard an index names, refusing any name that leads out of the folder."""
    if not isinstance(name, str) or not name:
        raise UserError(f"{index} names a shard that is not a file name: {name!r}")
    file = (path / name).resolve()
    if Path(name).is_absolute() or not file.is_relative_to(path.resolve()):
        raise UserError(f"{index} names a shard outside the folder: {name!r}")
    return file


def checkpoint_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """The floating-point type most of the checkpoint's tensors are stored in (float32 if none)."""
    counts: dict[torch.dtype, int] = {}
    for tensor in state.values():
        if tensor.is_floating_point():
            counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.numel()
    return max(counts, key=counts.get) if counts else torch.float32


def resolve_dtype(dtype: str | torch.dtype, state: dict[str, torch.Tensor]) -> torch.dtype:
    """--dtype as a torch dtype: "keep" is the checkpoint's own."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "keep":
        return checkpoint_dtype(state)
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r} is not one of: {', '.join(DTYPE_CHOICES)}")
    return DTYPES[dtype]


def declared_tokens(path: Path) -> dict[str, str]:
    """The special tokens named in tokenizer_config.json / special_tokens_map.json."""
    declared = {}
    for name in TOKENIZER_SETTINGS:
        for key, value in _read_json(path / name, required=False).items():
            if isinstance(value, dict):
                value = value.get("content")
            if key.endswith("_token") and isinstance(value, str):
                declared[key] = value
    return declared


def read_tokenizers(path: Path, hf: dict, family: ModuleType) -> tuple[SubwordTokenizer, SubwordTokenizer]:
    """The folder's (source, target) tokenizers: tokenizer.json for both, or the family's own files
    when it has no tokenizer.json (`raw_tokenizers`: Marian's SentencePiece models), each with the
    family's special roles. A role takes the token tokenizer_config.json names, else the token of
    config.json's id, else the family's usual token (BERT's [CLS]), whichever the vocabulary has first.
    """
    file = path / TOKENIZER_FILE
    if file.is_file():
        try:
            raw = HFTokenizer.from_file(str(file))
        except Exception as error:  # the tokenizers library raises plain Exception
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(f"{TOKENIZER_FILE} is not a readable tokenizer ({reason})") from None
        tokenizer = _with_roles(raw, TOKENIZER_FILE, path, hf, family)
        return tokenizer, tokenizer
    own = family.raw_tokenizers(path) if hasattr(family, "raw_tokenizers") else None
    if own is None:
        raise UserError(f"no {TOKENIZER_FILE} (the tokenizer is read from the `tokenizers` library's JSON file)")
    (source_file, source), (target_file, target) = own
    source_tokenizer = _with_roles(source, source_file, path, hf, family)
    if target is source:
        return source_tokenizer, source_tokenizer
    return source_tokenizer, _with_roles(target, target_file, path, hf, family)


def _with_roles(raw: HFTokenizer, file: str, path: Path, hf: dict, family: ModuleType) -> SubwordTokenizer:
    from glassformer.text import SubwordTokenizer

    declared = declared_tokens(path)
    specials = {}
    for role, (token_key, id_key, default) in family.SPECIAL_TOKENS.items():
        candidates = [declared.get(token_key)]
        if id_key and isinstance(hf.get(id_key), int):
            candidates.append(raw.id_to_token(hf[id_key]))
        candidates.append(default)
        specials[role] = next((t for t in candidates if t is not None and raw.token_to_id(t) is not None), None)
    try:
        return SubwordTokenizer(raw, specials)
    except UserError as error:
        raise UserError(f"{file}: {error}") from None


def template_framing(raw: HFTokenizer) -> tuple[list[int], list[int]] | None:
    """The special ids the tokenizer's post-processor puts before and after one text, as
    transformers adds them: (prefix, suffix), or None when it adds none of its own."""
    def walk(processor: dict | None) -> tuple[list[int], list[int]] | None:
        kind = (processor or {}).get("type")
        if kind == "Sequence":
            found = [walk(p) for p in processor.get("processors", [])]
            return next((f for f in found if f is not None), None)
        if kind in ("BertProcessing", "RobertaProcessing"):
            return [processor["cls"][1]], [processor["sep"][1]]
        if kind == "TemplateProcessing":
            specials = processor.get("special_tokens", {})
            prefix: list[int] = []
            suffix: list[int] = []
            side = prefix
            for piece in processor.get("single", []):
                if "Sequence" in piece:
                    side = suffix
                elif "SpecialToken" in piece:
                    side.extend(specials[piece["SpecialToken"]["id"]]["ids"])
            return prefix, suffix
        return None

    try:
        return walk(json.loads(raw.to_str()).get("post_processor"))
    except (KeyError, TypeError, IndexError) as error:
        raise UserError(f"{TOKENIZER_FILE} has a post_processor of an unexpected form ({error})") from None


def framing_of(family: ModuleType, config: ModelConfig, tokenizer: SubwordTokenizer, settings: dict) -> dict:
    """The family's framing, with the text's own special tokens taken from the tokenizer's
    post-processor when it has one (LLaMA's <s> first, Marian's </s> last)."""
    ids = {"pad": tokenizer.pad_id, "start": tokenizer.start_id, "end": tokenizer.end_id}
    framing = family.framing(ids, settings)
    if config.family == "decoder-only" and config.head != "none":
        # A causal classifier reads a text as transformers' tokenizer gives it: nothing appended.
        framing["sequence_suffix"] = []
    template = template_framing(tokenizer.hf_tokenizer)
    if template is None:
        return framing
    prefix, suffix = template
    if config.family == "encoder-decoder":
        framing.update(source_prefix=prefix, source_suffix=suffix)
        if config.head != "none":  # a classifier reads one text, framed as a source
            framing.update(sequence_prefix=prefix, sequence_suffix=suffix)
    else:
        framing["sequence_prefix"] = prefix
        # A causal model's prompt is framed by the template; its training texts end as before.
        if suffix or config.family == "encoder-only" or config.head != "none":
            framing["sequence_suffix"] = suffix
    return framing


# Matching a checkpoint -------------------------------------------------------------------------------
def _canonical(family: ModuleType, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """Names as the family's head model has them (a bare BertModel's "pooler..." -> "bert.pooler...",
    "LayerNorm.gamma" -> "LayerNorm.weight").

    Returns:
        the renamed state, and whether the file already used the prefix.
    """
    prefixed = any(name.startswith(family.BASE_PREFIX) for name in state)
    outside = (family.BASE_PREFIX, *family.HEAD_PREFIXES)
    renamed = {}
    for name, tensor in state.items():
        for old, new in LEGACY_NAMES:
            name = re.sub(old, new, name)
        renamed[name if name.startswith(outside) else family.BASE_PREFIX + name] = tensor
    return renamed, prefixed


def _listed(names: list[str]) -> str:
    more = f" (and {len(names) - _LISTED} more)" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def match_weights(
    family: ModuleType, expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
    aliases: dict[str, str], prefixed: bool,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Check canonical-named state against expected (name -> tensor of the right shape).

    Returns:
        the state reduced to the expected names, and the names knowingly dropped (DROPPED).
    Raises:
        UserError naming every missing, unexpected and wrongly shaped tensor.
    """
    def shown(name: str) -> str:
        return name if prefixed or not name.startswith(family.BASE_PREFIX) else name[len(family.BASE_PREFIX):]

    def matches(name: str, patterns: tuple[str, ...]) -> bool:
        return any(re.search(p, name) for p in patterns)

    dropped = sorted(shown(n) for n in state if matches(n, family.DROPPED))
    state = {n: t for n, t in state.items() if not matches(n, family.IGNORED + family.DROPPED)}
    wrong = []
    for alias, name in aliases.items():
        if alias in state:
            tensor = state.pop(alias)
            if name not in state:
                state[name] = tensor
            elif tensor.shape != state[name].shape:
                wrong.append(f"{shown(alias)} {tuple(tensor.shape)} != {tuple(state[name].shape)}")
    missing = [shown(n) for n in expected if n not in state]
    extra = sorted(shown(n) for n in state if n not in expected)
    wrong += [
        f"{shown(n)} {tuple(state[n].shape)} != {tuple(t.shape)}"
        for n, t in expected.items() if n in state and state[n].shape != t.shape
    ]
    found = (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
    parts = [f"{label} {_listed(names)}" for label, names in found if names]
    if parts:
        raise UserError(f"weights do not match {family.MODEL_TYPE}: {'; '.join(parts)}")
    return {n: state[n] for n in expected}, dropped


# The whole folder -----------------------------------------------------------------------------------
def load_hf_folder(path: str | Path, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32") -> Run:
    """Load a Hugging Face model folder (SUPPORTED_MODEL_TYPES) as a Run, in eval mode.

    Args:
        dtype: "keep" the checkpoint's floating-point type (a bf16 checkpoint stays bf16),
            or "float32" / "bfloat16" / "float16" (or a torch dtype) to cast to.

    Raises:
        UserError, one line starting with the folder, for anything that does not map exactly.
    """
    path = Path(path)
    try:
        return _load(path, device, dtype)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None


def _load(path: Path, device: str | torch.device, dtype: str | torch.dtype) -> Run:
    from glassformer.models import build_model
    from glassformer.run_folder import Run

    hf = _read_json(path / CONFIG_FILE)
    family = family_module(hf.get("model_type"))
    architectures = hf.get("architectures") if isinstance(hf.get("architectures"), list) else []
    unknown = [a for a in architectures if a not in family.ARCHITECTURES]
    if unknown:
        supported = ", ".join(family.ARCHITECTURES)
        raise UserError(f"{unknown[0]} is not supported; {family.MODEL_TYPE} models load as: {supported}")
    settings = {**hf, **_read_json(path / GENERATION_FILE, required=False)}
    state, prefixed = _canonical(family, read_weights(path))
    dtype = resolve_dtype(dtype, state)
    try:
        config, kind, labels = family.read_config(hf, set(state))
    except UserError:  # a ConfigError is also a ValueError: let its own message through
        raise
    except (TypeError, ValueError, KeyError) as error:
        raise UserError(f"{CONFIG_FILE} has a value of the wrong kind ({error})") from None
    model = build_model(config, init=False).to(dtype)
    extra: dict = {}
    table = rules(family, config, kind, extra)
    expected = to_hf_state(table, model.state_dict())
    state, dropped = match_weights(family, expected, state, family.aliases(config, kind), prefixed)
    ours = to_our_state(table, state)
    _load_state(model, ours)
    tokenizer, target_tokenizer = read_tokenizers(path, hf, family)
    if max(tokenizer.vocab_size, target_tokenizer.vocab_size) > config.vocab_size:
        size = max(tokenizer.vocab_size, target_tokenizer.vocab_size)
        raise UserError(f"the tokenizer has {size} tokens, more than the model's vocabulary of {config.vocab_size}")
    meta = {
        "framing": framing_of(family, config, tokenizer, settings),
        "hf": {"model_type": family.MODEL_TYPE, "architectures": architectures},
        "generation": {k: settings[k] for k in GENERATION_KEYS if settings.get(k) is not None},
    }
    if extra:
        meta["hf_position_rows"] = extra
    if dropped:
        meta["hf_dropped"] = dropped
    model.to(device).eval()
    return Run(path, model, config, kind, tokenizer, target_tokenizer, labels, meta)


def _load_state(model: torch.nn.Module, ours: dict[str, torch.Tensor]) -> None:
    """Copy ours into model; every parameter must be given once (tied ones through their first name)."""
    missing, unexpected = model.load_state_dict(ours, strict=False)
    given = {id(p) for name, p in model.named_parameters(remove_duplicate=False) if name in ours}
    untouched = [name for name in missing if id(model.get_parameter(name)) not in given]
    if unexpected or untouched:  # a bug in a rule table, not a user mistake
        raise RuntimeError(f"rule table out of step with the model: {unexpected or untouched}")
