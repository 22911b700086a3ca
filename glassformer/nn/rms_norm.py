"""RMSNorm: x / sqrt(mean(x²) + eps) * g, a LayerNorm without the mean and the bias (LLaMA, T5).

Zhang & Sennrich (2019) found that re-centring is not what makes LayerNorm work; dividing by the
root mean square alone is cheaper and trains as well. T5's "LayerNorm" is exactly this.
"""

from __future__ import annotations

import torch
from torch import nn

from glassformer.config import ModelConfig


class RMSNorm(nn.Module):
    """x / rms(x) * g over the last dimension, computed in float32 whatever the input's dtype.

    Args:
        d: width of the normalised dimension.
        eps: added to the mean square before the square root.
    """

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., d] -> [..., d]."""
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


def norm_layer(config: ModelConfig, d: int | None = None) -> nn.Module:
    """The normalisation config.norm_type names, over d (default d_model) with config.norm_eps."""
    d = config.d_model if d is None else d
    if config.norm_type == "rmsnorm":
        return RMSNorm(d, eps=config.norm_eps)
    return nn.LayerNorm(d, eps=config.norm_eps)
