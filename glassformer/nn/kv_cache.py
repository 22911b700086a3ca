"""Key/value caches for incremental decoding.

`KVCache` holds a self-attention layer's keys and values in a buffer written at explicit
positions (prefill writes a whole prompt, each later step writes one position). `MemoryKV`
holds a cross-attention layer's keys and values of the encoder output, computed once per
source. Both can be reordered along the batch when beam search reselects its beams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class KVCache:
    """Keys and values of one self-attention layer, [B, H, L, D] buffers filled from position 0.

    Args:
        max_len: capacity L in positions; the buffer is allocated on the first write.
    """

    def __init__(self, max_len: int):
        self.max_len = max_len
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.length = 0

    def update(self, pos: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v [B, H, T, D] at positions pos ... pos + T - 1; return all keys and values so far.

        Returns:
            keys and values [B, H, pos + T, D].
        """
        end = pos + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions, asked to write up to {end}")
        if pos > self.length:
            raise ValueError(f"KV cache write at position {pos} leaves a gap after {self.length}")
        if self.k is None:
            shape = (k.size(0), k.size(1), self.max_len, k.size(3))
            self.k = k.new_zeros(shape)
            self.v = v.new_zeros(shape)
        self.k[:, :, pos:end] = k
        self.v[:, :, pos:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` [B'] (beam search reselects beams this way)."""
        if self.k is not None:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)


class MemoryKV:
    """Cross-attention keys and values of the encoder output [B, H, S, D], computed once."""

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    @property
    def filled(self) -> bool:
        return self.k is not None

    def store(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k, self.v = k, v

    def reorder(self, index: torch.Tensor) -> None:
        if self.k is not None:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)


@dataclass
class LayerCache:
    """What one decoder layer keeps between decoding steps."""

    self_attn: KVCache
    cross_attn: MemoryKV | None = None


@dataclass
class DecoderCache:
    """A cache for a whole decoder stack, with the number of positions already written."""

    layers: list[LayerCache] = field(default_factory=list)

    @classmethod
    def empty(cls, n_layers: int, max_len: int, cross: bool) -> "DecoderCache":
        return cls([LayerCache(KVCache(max_len), MemoryKV() if cross else None) for _ in range(n_layers)])

    @property
    def length(self) -> int:
        return self.layers[0].self_attn.length if self.layers else 0

    def reorder(self, index: torch.Tensor) -> None:
        for layer in self.layers:
            layer.self_attn.reorder(index)
            if layer.cross_attn is not None:
                layer.cross_attn.reorder(index)
