"""T5's relative position bias (Raffel et al. 2020, 2.1): positions as a learned number per head
added to each attention score, chosen by the distance from the query to the key.

Nothing is added to the embeddings. Instead every score q_i · k_j gets b[h, bucket(j - i)]: one
learned scalar per head and bucket of distance. Distances below half the buckets each have their
own bucket; longer ones share buckets whose width grows logarithmically up to max_distance,
beyond which all distances share the last. In the encoder the sign matters (keys before and
after a query get separate halves of the buckets); in the decoder only past keys exist.

The bias is computed once per stack and given to every layer's self-attention (the same
[1, H, T, S] tensor; cross-attention has none). When decoding with a KV cache it is computed for
the new query positions only, against every key so far.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from glassformer.config import ModelConfig
from glassformer.nn.hooks import HookPoint


def relative_bucket(distance: torch.Tensor, bidirectional: bool, n_buckets: int, max_distance: int) -> torch.Tensor:
    """The bucket of each key-minus-query distance.

    Args:
        distance: integer key position - query position, any shape.
        bidirectional: keys after the query count (encoder) or are never seen (decoder).
        n_buckets: buckets in all; bidirectional gives each direction half of them.
        max_distance: distances from here on fall in the direction's last bucket.
    Returns:
        int64 buckets in [0, n_buckets), distance's shape.
    """
    offset = torch.zeros_like(distance)
    if bidirectional:
        n_buckets //= 2
        offset = (distance > 0).long() * n_buckets  # keys after the query: the upper half
        steps = distance.abs()
    else:
        steps = (-distance).clamp(min=0)  # how far back; a later key would be 0 but is masked
    n_exact = n_buckets // 2
    # Distances from n_exact up to max_distance spread over the other buckets on a log scale.
    log_ratio = torch.log(steps.float() / n_exact) / math.log(max_distance / n_exact)
    far = n_exact + (log_ratio * (n_buckets - n_exact)).long()
    far = far.clamp(max=n_buckets - 1)
    return offset + torch.where(steps < n_exact, steps, far)


class RelativePositionBias(nn.Module):
    """One learned bias per head and distance bucket, shared by a stack's self-attention layers.

    Args:
        bidirectional: True for the encoder, False for the decoder (only past keys).
    """

    def __init__(self, config: ModelConfig, bidirectional: bool):
        super().__init__()
        self.bidirectional = bidirectional
        self.n_buckets = config.relative_buckets
        self.max_distance = config.relative_max_distance
        self.buckets = nn.Embedding(config.relative_buckets, config.n_heads)  # [buckets, H]
        direction = "both directions" if bidirectional else "past keys only (causal)"
        what = f"relative position bias per head, {self.n_buckets} buckets of key - query distance, {direction}"
        self.hook_bias = HookPoint(("B", "H", "T", "S"), what)

    def forward(self, t: int, s: int, offset: int = 0) -> torch.Tensor:
        """The bias of t queries at positions offset ... offset + t - 1 over s keys at 0 ... s - 1.

        Returns:
            [1, H, T, S], to be added to the scores of every head.
        """
        device = self.buckets.weight.device
        query_pos = torch.arange(offset, offset + t, device=device)[:, None]
        key_pos = torch.arange(s, device=device)[None, :]
        bucket = relative_bucket(key_pos - query_pos, self.bidirectional, self.n_buckets, self.max_distance)  # [T, S]
        bias = self.buckets(bucket).permute(2, 0, 1)[None]  # [T, S, H] -> [1, H, T, S]
        return self.hook_bias(bias)

    def extra_repr(self) -> str:
        return f"buckets={self.n_buckets}, max_distance={self.max_distance}, bidirectional={self.bidirectional}"
