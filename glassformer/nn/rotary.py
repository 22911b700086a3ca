"""Rotary position embedding (RoFormer, Su et al. 2021; LLaMA): positions rotate queries and keys.

Each pair of dimensions (i, i + D/2) of a head's query and key is turned by the angle
position * theta_i, theta_i = rope_theta^(-2i/D). The dot product of a query at m and a key at n
then depends on m - n only, so attention sees relative positions and nothing is added to the
embeddings. LLaMA 3 stretches the low frequencies for long contexts ("llama3" scaling).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from glassformer.config import ModelConfig


def rope_frequencies(d_head: int, theta: float = 10000.0, scaling: dict | None = None) -> torch.Tensor:
    """theta_i = theta^(-2i/D) for i < D/2, rescaled as scaling's "rope_type" says.

    Returns:
        [D/2] float32.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, d_head, 2, dtype=torch.int64).float() / d_head))
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "llama3":
        inv_freq = _llama3(inv_freq, scaling)
    return inv_freq


def _llama3(inv_freq: torch.Tensor, scaling: dict) -> torch.Tensor:
    """LLaMA 3.1: wavelengths longer than the original context / low_freq_factor are stretched by
    `factor`, those shorter than context / high_freq_factor kept, the ones between blended."""
    factor = float(scaling["factor"])
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    context = float(scaling["original_max_position_embeddings"])
    wavelength = 2 * math.pi / inv_freq
    stretched = torch.where(wavelength > context / low, inv_freq / factor, inv_freq)
    smooth = (context / wavelength - low) / (high - low)
    blended = (1 - smooth) * stretched / factor + smooth * stretched
    between = (wavelength >= context / high) & (wavelength <= context / low)
    return torch.where(between, blended, stretched)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, T, D] by the angles whose cos and sin [B|1, 1, T, D] are given."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """cos and sin of position * theta_i for given positions, shared by every layer."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        inv_freq = rope_frequencies(config.d_head, config.rope_theta, config.rope_scaling)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Position ids [B|1, T] -> cos, sin [B|1, 1, T, D] in float32."""
        angles = positions.float()[..., None] * self.inv_freq.float()  # [B, T, D/2]
        angles = torch.cat((angles, angles), dim=-1)[:, None]  # [B, 1, T, D]
        return angles.cos(), angles.sin()
