"""Export attention maps in the layout the bertviz notebook views take, as safetensors or JSON.

bertviz (a separate project, not a dependency) draws attention from per-layer tensors of shape
[batch, heads, queries, keys]. The export holds one such tensor per layer with batch 1, named
by the keyword arguments of bertviz's `head_view` / `model_view`, so that, in a notebook,

    from glassformer.inspect.bertviz import load_bertviz
    head_view(**load_bertviz("attention.safetensors"))

shows them. Keys:
    encoder-decoder:  encoder_attention, decoder_attention, cross_attention (tuples of
                      [1, H, S, S], [1, H, T, T], [1, H, T, S]), encoder_tokens, decoder_tokens
    decoder-only, encoder-only:  attention (a tuple of [1, H, T, T]), tokens

Files:
    .safetensors  tensors "<key>.<layer>" (float32); the token lists are JSON strings in the
                  file's metadata under their key, plus "format": "glassformer-bertviz".
    .json         {"format": "glassformer-bertviz", "<key>": [layer][1][H][T][S] numbers or
                  a token list}.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, safe_open, save_file

from glassformer.errors import UserError
from glassformer.files import check_output_file
from glassformer.inspect.attention_data import AttentionSet

FORMAT = "glassformer-bertviz"
_TENSOR_KEYS = ("encoder_attention", "decoder_attention", "cross_attention", "attention")
_TOKEN_KEYS = ("encoder_tokens", "decoder_tokens", "tokens")


def bertviz_data(attention: AttentionSet) -> dict:
    """The AttentionSet as bertviz's keyword arguments: tuples of [1, H, T, S] tensors and token lists."""

    def layers(kind: str) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(np.asarray(m, dtype=np.float32))[None] for m in attention.maps[kind])

    if attention.family == "encoder-decoder":
        return {
            "encoder_attention": layers("self"), "decoder_attention": layers("decoder"),
            "cross_attention": layers("cross"),
            "encoder_tokens": list(attention.source_tokens), "decoder_tokens": list(attention.target_tokens),
        }
    if attention.family == "decoder-only":
        return {"attention": layers("decoder"), "tokens": list(attention.target_tokens)}
    return {"attention": layers("self"), "tokens": list(attention.source_tokens)}


def save_bertviz(data: dict, path: str | Path) -> Path:
    """Write bertviz_data's output to a .safetensors or .json file (chosen by the suffix)."""
    path = check_output_file(path, "the attention export")
    tensors = {k: v for k, v in data.items() if k in _TENSOR_KEYS}
    tokens = {k: v for k, v in data.items() if k in _TOKEN_KEYS}
    if path.suffix == ".safetensors":
        flat = {f"{key}.{i}": t.contiguous() for key, layers in tensors.items() for i, t in enumerate(layers)}
        metadata = {"format": FORMAT, **{k: json.dumps(v, ensure_ascii=False) for k, v in tokens.items()}}
        save_file(flat, str(path), metadata=metadata)
    elif path.suffix == ".json":
        document = {"format": FORMAT, **{k: [t.tolist() for t in v] for k, v in tensors.items()}, **tokens}
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    else:
        raise UserError(f"{path}: the export is written as .safetensors or .json, not {path.suffix or 'no suffix'!r}")
    return path


def load_bertviz(path: str | Path) -> dict:
    """Read a file written by save_bertviz back into bertviz's keyword arguments."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        flat = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise UserError(f"{path}: not a glassformer bertviz export")
        data: dict = {k: json.loads(v) for k, v in metadata.items() if k in _TOKEN_KEYS}
        for key in _TENSOR_KEYS:
            n = sum(1 for name in flat if name.rsplit(".", 1)[0] == key)
            if n:
                data[key] = tuple(flat[f"{key}.{i}"] for i in range(n))
        return data
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UserError(f"{path}: not a glassformer bertviz export")
    data = {k: v for k, v in document.items() if k in _TOKEN_KEYS}
    for key in _TENSOR_KEYS:
        if key in document:
            data[key] = tuple(torch.tensor(layer, dtype=torch.float32) for layer in document[key])
    return data
