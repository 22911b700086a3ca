"""Map the weights of PyTorch's own `torch.nn.Transformer` family onto glassformer's names.

`torch.nn.Transformer` has no embeddings or output projection: the mapping covers the encoder
and decoder stacks (and their final norms); embeddings and the output layer keep their values.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from glassformer.errors import UserError

_LAYER_PARTS = {
    # torch name inside a layer -> glassformer name inside a layer
    "self_attn.out_proj": "self_attn.w_o",
    "multihead_attn.out_proj": "cross_attn.w_o",
    "linear1": "ffn.w_1",
    "linear2": "ffn.w_2",
}
_ENCODER_NORMS = {"norm1": "self_attn_residual.norm", "norm2": "ffn_residual.norm"}
_DECODER_NORMS = {"norm1": "self_attn_residual.norm", "norm2": "cross_attn_residual.norm", "norm3": "ffn_residual.norm"}
_LAYER_KEY = re.compile(r"^(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def _split_in_proj(prefix: str, attn: str, kind: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    q, k, v = tensor.chunk(3, dim=0)
    return {f"{prefix}{attn}.w_q.{kind}": q, f"{prefix}{attn}.w_k.{kind}": k, f"{prefix}{attn}.w_v.{kind}": v}


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A `torch.nn.Transformer` (or `TransformerEncoder`, keys under "encoder.") state dict,
    renamed to glassformer's keys. Unknown keys raise a UserError listing them."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in _in_proj_keys(state).items():
        if key in ("encoder.norm.weight", "encoder.norm.bias", "decoder.norm.weight", "decoder.norm.bias"):
            stack, _, kind = key.split(".")
            out[f"{stack}.final_norm.{kind}"] = tensor
            continue
        match = _LAYER_KEY.match(key)
        if not match:
            unknown.append(key)
            continue
        stack, index, part, kind = match.groups()
        prefix = f"{stack}.layers.{index}."
        norms = _ENCODER_NORMS if stack == "encoder" else _DECODER_NORMS
        if part in ("self_attn.in_proj", "multihead_attn.in_proj"):
            attn = "self_attn" if part.startswith("self") else "cross_attn"
            out.update(_split_in_proj(prefix, attn, kind, tensor))
        elif part in _LAYER_PARTS:
            out[f"{prefix}{_LAYER_PARTS[part]}.{kind}"] = tensor
        elif part in norms:
            out[f"{prefix}{norms[part]}.{kind}"] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise UserError(f"not a torch.nn.Transformer state dict; unknown keys: {', '.join(unknown[:8])}")
    return out


def _in_proj_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # nn.MultiheadAttention names its packed projection `in_proj_weight`, not `in_proj.weight`.
    return {re.sub(r"in_proj_(weight|bias)$", r"in_proj.\1", k): v for k, v in state.items()}


def load_torch_transformer(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy a `torch.nn.Transformer`/`TransformerEncoder` state dict into model's stacks.

    Returns:
        the model's parameter names left untouched (embeddings, output layer, heads).
    Raises:
        UserError when a tensor is missing for a layer of the model or shapes differ.
    """
    converted = convert_state_dict(state)
    own = model.state_dict()
    mismatched = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in converted.items() if k in own and own[k].shape != v.shape
    ]
    extra = [k for k in converted if k not in own]
    if mismatched or extra:
        raise UserError(f"torch.nn.Transformer weights do not fit: {'; '.join((mismatched + extra)[:8])}")
    model.load_state_dict(converted, strict=False)
    stacks = ("encoder.", "decoder.")
    missing = [k for k in own if k.startswith(stacks) and k not in converted]
    if missing:
        raise UserError(f"torch.nn.Transformer state dict lacks: {', '.join(missing[:8])}")
    return [name for name, _ in model.named_parameters() if name not in converted]
