"""A run folder: what every command needs to use a trained model, written atomically.

Layout:
    config.json              {"format": "glassformer-run", "model": ModelConfig, "kind", "labels", ...}
    tokenizer.json           one shared tokenizer, or
    source_tokenizer.json / target_tokenizer.json   separate vocabularies (encoder-decoder)
    model.safetensors        the weights commands use (the best by validation when training)
    checkpoint/              training state for --resume (see glassformer.train.checkpoint)
    metrics.jsonl            one JSON object per logged step or evaluation

Weights are safetensors and everything else JSON: nothing in a run folder is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from glassformer.config import ModelConfig
from glassformer.errors import UserError
from glassformer.files import atomic_write, atomic_write_text
from glassformer.framing import Framing
from glassformer.models import build_model
from glassformer.text import Tokenizer, load_tokenizer

RUN_FORMAT = "glassformer-run"
RUN_VERSION = 2
# Tensors that run format 1 named otherwise: the output projection has since become a module.
RENAMED_SINCE_V1 = {"lm_head.weight": "lm_head.proj.weight", "lm_head.bias": "lm_head.proj.bias"}
SHA256_KEY = "glassformer.sha256"  # safetensors metadata: what the weights hashed to when written
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SHARED_TOKENIZER = "tokenizer.json"
SOURCE_TOKENIZER = "source_tokenizer.json"
TARGET_TOKENIZER = "target_tokenizer.json"


@dataclass
class Run:
    """A model ready to use, with the tokenizers and labels it was trained with."""

    path: Path
    model: nn.Module
    config: ModelConfig
    kind: str
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    labels: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer of the model's input (the source side of an encoder-decoder)."""
        return self.source_tokenizer

    @property
    def framing(self) -> Framing:
        """How the run's texts are framed (an imported tokenizer's own layout, else glassformer's)."""
        return Framing.from_meta(self.meta)

    def with_model(self, model: nn.Module) -> "Run":
        """The same run with another model object (an unwrapped or reloaded copy of its model)."""
        return Run(self.path, model, self.config, self.kind, self.source_tokenizer, self.target_tokenizer,
                   self.labels, self.meta)


def unique_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's persistent tensors, whole, with tied aliases dropped (safetensors stores each once).

    Sharded (DTensor) weights are gathered, which every process of the group must take part in.
    """
    seen: set[int] = set()
    state = {}
    for name, tensor in model.state_dict().items():
        local = getattr(tensor, "_local_tensor", tensor)
        key = local.untyped_storage().data_ptr() if local.numel() else id(tensor)
        if key in seen:
            continue
        seen.add(key)
        if hasattr(tensor, "full_tensor"):
            tensor = tensor.full_tensor()
        state[name] = tensor.detach().contiguous().cpu()
    return state


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write model's weights to a safetensors file, atomically."""
    save_tensors(unique_state(model), path)


def save_tensors(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write named tensors to a safetensors file, atomically, with their SHA-256 in its metadata."""
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=weights_metadata(state)))


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def weights_metadata(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """The safetensors metadata glassformer writes: the format, and a SHA-256 that load_weights checks."""
    return {"format": "pt", SHA256_KEY: tensors_sha256(state)}


def current_name(name: str) -> str:
    """A tensor's name in the present run format, given its name in any earlier one."""
    return RENAMED_SINCE_V1.get(name, name)


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Read weights saved by save_weights into model; a missing or extra tensor is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file")
    try:
        state = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            recorded = (f.metadata() or {}).get(SHA256_KEY)
    except Exception as error:  # safetensors raises its own error types for damaged files
        raise UserError(f"{path}: not a readable safetensors file ({error})") from None
    if recorded is not None and tensors_sha256(state) != recorded:
        raise UserError(f"{path}: {path.name} is corrupted (its tensors no longer match the SHA-256 recorded "
                        "when it was written); train or copy it again")
    state = {current_name(name): tensor for name, tensor in state.items()}
    expected = unique_state(model)
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:5])}")
        if wrong:
            parts.append(
                "wrong shape " + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong[:5])
            )
        raise UserError(f"{path}: weights do not fit the model: {'; '.join(parts)}")
    model.load_state_dict(state, strict=False)


# Run folders -----------------------------------------------------------------------------------
def save_run(
    path: str | Path,
    model: nn.Module,
    config: ModelConfig,
    kind: str,
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer | None = None,
    labels: list[str] | None = None,
    meta: dict[str, Any] | None = None,
    weights: bool = True,
) -> Path:
    """Write a run folder that `load_run` reads back.

    Args:
        target_tokenizer: a separate target vocabulary, or None when the source one is shared.
        labels: class or tag names of a classify/tag model, in id order.
        meta: anything else worth keeping (task name, data file, training config).
        weights: also write model.safetensors.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    shared = target_tokenizer is None or target_tokenizer is source_tokenizer
    if shared:
        atomic_write(path / SHARED_TOKENIZER, source_tokenizer.save)
    else:
        atomic_write(path / SOURCE_TOKENIZER, source_tokenizer.save)
        atomic_write(path / TARGET_TOKENIZER, target_tokenizer.save)
    document = {
        "format": RUN_FORMAT, "version": RUN_VERSION, "kind": kind, "model": config.to_dict(),
        "labels": list(labels or []), "shared_tokenizer": shared, **(meta or {}),
    }
    atomic_write_text(path / CONFIG_FILE, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    if weights:
        save_weights(model, path / WEIGHTS_FILE)
    return path


def read_run_config(path: str | Path) -> dict[str, Any]:
    """The config.json of a run folder, checked; UserError when path is not a run folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    if not path.is_dir():
        raise UserError(f"{path}: not a folder (expected a run folder from `glassformer train`)")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise UserError(f"{path}: not a run folder (no {CONFIG_FILE})")
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{config_path}: not valid JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != RUN_FORMAT:
        raise UserError(f"{path}: not a glassformer run folder ({CONFIG_FILE} has no \"format\": \"{RUN_FORMAT}\")")
    version = document.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise UserError(f"{config_path}: \"version\" must be a whole number, got {version!r}")
    if version > RUN_VERSION:
        raise UserError(f"{path}: written by a newer glassformer (run format {document['version']} > {RUN_VERSION})")
    return document


def load_run(path: str | Path, device: str | torch.device = "cpu", weights: bool = True,
             kinds: Collection[str] | None = None) -> Run:
    """Load a glassformer run folder as a model ready to use, in eval mode (`glassformer.load.load_model`
    also reads Hugging Face folders, and checks the run's kind against `glassformer.tasks.KINDS`).

    Args:
        weights: read model.safetensors (False leaves freshly initialised weights).
        kinds: the task kinds the caller knows; a run of another kind is refused (None: any name).
    """
    path = Path(path)
    document = read_run_config(path)
    try:
        config = ModelConfig.from_dict(document["model"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise UserError(f"{path / CONFIG_FILE}: the \"model\" settings are damaged ({type(error).__name__}: {error})") from None
    kind = document.get("kind")
    known = f"one of {', '.join(kinds)}" if kinds is not None else "a task kind's name"
    if not isinstance(kind, str) or (kinds is not None and kind not in kinds) or \
            not isinstance(document.get("labels", []), list):
        raise UserError(f"{path / CONFIG_FILE}: \"kind\" must be {known} and \"labels\" a list")
    if document.get("shared_tokenizer", True):
        source = target = load_tokenizer(path / SHARED_TOKENIZER)
    else:
        source, target = load_tokenizer(path / SOURCE_TOKENIZER), load_tokenizer(path / TARGET_TOKENIZER)
    for side, tokenizer, size in (("source", source, config.vocab_size),
                                  ("target", target, config.tgt_vocab_size or config.vocab_size)):
        if tokenizer.vocab_size > size:
            raise UserError(f"{path}: the {side} tokenizer has {tokenizer.vocab_size} tokens, more than the model's "
                            f"vocabulary of {size}")
    model = build_model(config, init=not weights)
    if weights:
        load_weights(model, path / WEIGHTS_FILE)
    model.to(device).eval()
    meta = {k: v for k, v in document.items() if k not in ("format", "version", "kind", "model", "labels", "shared_tokenizer")}
    return Run(path, model, config, document["kind"], source, target, list(document.get("labels", [])), meta)
