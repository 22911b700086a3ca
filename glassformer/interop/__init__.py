"""Weights from and to other implementations, mapped by name (no model code of its own).

- Hugging Face folders: `load_hf_folder` reads GPT-2, BERT, BART and LLaMA-family (Llama, Qwen2,
  Mistral, Qwen3) folders as a Run
  (`glassformer.load.load_model` does so for any folder whose config.json names a
  "model_type"); `export_hf` writes one back that `transformers` loads.
- PyTorch's own `torch.nn.Transformer`: `load_torch_transformer`.
"""

from pathlib import Path

from glassformer.interop.hf_export import export_hf
from glassformer.interop.hf_folder import SUPPORTED_MODEL_TYPES, load_hf_folder
from glassformer.interop.torch_nn import load_torch_transformer

__all__ = ["SUPPORTED_MODEL_TYPES", "export_hf", "load_foreign_folder", "load_hf_folder", "load_torch_transformer"]


def load_foreign_folder(path: Path, device="cpu", dtype="float32"):
    """Load a model folder written by another library (Hugging Face layout) as a Run."""
    return load_hf_folder(path, device=device, dtype=dtype)
