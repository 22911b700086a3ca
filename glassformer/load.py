"""Load any model folder: a glassformer run folder or a Hugging Face model folder, told apart by its config.json.

This sits above both `run_folder` (glassformer's own format) and `interop` (other libraries'
formats, which give back the same `Run`): neither imports the other's loader, and commands
load through `load_model`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from glassformer.run_folder import CONFIG_FILE, RUN_FORMAT, Run, load_run
from glassformer.tasks import KINDS


def folder_format(path: str | Path) -> str:
    """"hugging-face" when config.json names another library's "model_type", else "glassformer"
    (a folder that is neither is left to `load_run`, which says what is wrong with it)."""
    config_path = Path(path) / CONFIG_FILE
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return "glassformer"
    foreign = isinstance(document, dict) and document.get("format") != RUN_FORMAT and "model_type" in document
    return "hugging-face" if foreign else "glassformer"


def load_model(path: str | Path, device: str | torch.device = "cpu", weights: bool = True, dtype="float32") -> Run:
    """A run folder or a Hugging Face model folder as a model ready to use, in eval mode.

    Args:
        weights: read the weights (False leaves freshly initialised ones; glassformer runs only).
        dtype: of a Hugging Face folder: "keep" its checkpoint's type, or cast ("float32",
            "bfloat16"); glassformer's own runs are float32.
    """
    if folder_format(path) == "hugging-face":
        from glassformer.interop import load_foreign_folder  # imported late: optional heavy mapping code

        return load_foreign_folder(Path(path), device=device, dtype=dtype)
    return load_run(path, device=device, weights=weights, kinds=KINDS)
