"""Language-model training on packed text: random blocks of max_len + 1 tokens from one long stream.

The training examples, each `<start> text <end>`, are laid end to end in file order, so the end
token separates documents and no position is padding. Every step draws its blocks' start
positions from (seed, step) alone: a resumed run draws the very blocks an uninterrupted one
would, and each process of a distributed run takes its own rows of the global batch.
"""

from __future__ import annotations

import numpy as np
import torch

from glassformer.data.prepared import TokenStore
from glassformer.errors import UserError
from glassformer.train.batches import Batch


class PackedStream:
    """The training examples of a store as one stream of tokens, read in blocks from the memory map.

    Args:
        store: the token store.
        indices: the training examples' indices into it.
        block: tokens per block (the model's max_len, plus one for the shifted targets).
    """

    def __init__(self, store: TokenStore, indices: np.ndarray, block: int):
        order = np.sort(np.asarray(indices, dtype=np.int64))
        self.store, self.block = store, block
        self.starts = np.asarray(store.offsets[order], dtype=np.int64)
        self.ends = np.asarray(store.offsets[order + 1], dtype=np.int64)
        self.cumulative = np.concatenate([[0], np.cumsum(self.ends - self.starts)])
        """Where each example begins in the stream, [n + 1]."""
        if self.n_tokens < block:
            raise UserError(f"the training split has {self.n_tokens:,} tokens; packed blocks need at least {block}")

    @property
    def n_tokens(self) -> int:
        return int(self.cumulative[-1])

    def read(self, position: int) -> np.ndarray:
        """The block of tokens that starts `position` tokens into the stream."""
        k = int(np.searchsorted(self.cumulative, position, side="right")) - 1
        pieces, need, skip = [], self.block, position - int(self.cumulative[k])
        while need:
            start = int(self.starts[k]) + skip
            take = min(need, int(self.ends[k]) - start)
            pieces.append(self.store.tokens[start : start + take])
            need, skip, k = need - take, 0, k + 1
        return np.concatenate(pieces).astype(np.int64)

    def positions(self, seed: int, step: int, batch_size: int) -> torch.Tensor:
        """The start positions of a step's global batch of blocks, [batch_size]."""
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        return torch.randint(0, self.n_tokens - self.block + 1, (batch_size,), generator=generator)

    def batch(self, seed: int, step: int, batch_size: int, rows: list[int]) -> Batch:
        """Rows `rows` of the step's global batch: ids [B, max_len] and their next tokens as targets."""
        starts = self.positions(seed, step, batch_size)[rows].tolist()
        blocks = torch.from_numpy(np.stack([self.read(p) for p in starts]))  # [B, max_len + 1]
        targets = blocks[:, 1:].contiguous()
        return Batch({"ids": blocks[:, :-1].contiguous()}, targets, targets.numel())


class BlockOrder:
    """Which rows of each global batch this process takes; the blocks themselves come from (seed, step).

    The same interface as BatchOrder, so checkpoints and resume treat both alike.
    """

    def __init__(self, batch_size: int, rank: int = 0, world: int = 1):
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self.steps = 0

    def next(self) -> list[int]:
        self.steps += 1
        return list(range(self.rank, self.batch_size, self.world))

    def state(self) -> dict:
        return {"epoch": 0, "position": self.steps}

    def load_state(self, state: dict) -> None:
        self.steps = int(state["position"])
