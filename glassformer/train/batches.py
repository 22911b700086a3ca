"""Ids and padded batches as every task kind makes them, and a batch order that can resume mid-epoch.

How a kind's examples become ids and batches is the kind's own (`glassformer.tasks`).

Targets use -100 (PyTorch's ignore_index) where no prediction is scored: padding, and in
masked-LM every position that was not chosen for prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassformer.text import Tokenizer

IGNORE = -100


@dataclass
class Encoded:
    """A split as ids: sources/sequences, and targets (seq2seq ids, class ids, per-token tag ids,
    or answer (start, end) positions), in example order."""

    kind: str
    inputs: list[list[int]]
    targets: list[list[int]] | list[int] | None
    skipped: int = 0
    """Examples left out because they exceed the model's maximum length."""
    segments: list[list[int]] | None = None
    """Segment ids per input (question 0, context 1) for question answering."""

    def __len__(self) -> int:
        return len(self.inputs)


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    """Right-pad lists of ids to one [B, T] tensor."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


@dataclass
class Batch:
    """Model inputs (keyword arguments by name) and the targets scored by the loss."""

    inputs: dict[str, torch.Tensor]
    targets: torch.Tensor
    n_targets: int
    """Scored target positions (tokens, or sequences for classification)."""

    def to(self, device) -> "Batch":
        return Batch({k: v.to(device) for k, v in self.inputs.items()}, self.targets.to(device), self.n_targets)


def mask_tokens(
    ids: torch.Tensor, tokenizer: Tokenizer, prob: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: choose `prob` of the real tokens; of those 80% become <mask>, 10% a random
    token, 10% stay. Returns (masked ids, targets with IGNORE at unchosen positions)."""
    special = torch.tensor(sorted(tokenizer.special_ids))
    candidates = ~torch.isin(ids, special)
    draw = torch.rand(ids.shape, generator=generator)
    chosen = candidates & (draw < prob)
    # Every sequence predicts at least one token, so no batch row is wasted.
    first = (candidates & ~chosen.any(dim=1, keepdim=True)).long().argmax(dim=1)
    rows = ~chosen.any(dim=1) & candidates.any(dim=1)
    chosen[rows, first[rows]] = True
    targets = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    action = torch.rand(ids.shape, generator=generator)
    masked = ids.clone()
    masked[chosen & (action < 0.8)] = tokenizer.mask_id
    randomise = chosen & (action >= 0.8) & (action < 0.9)
    low = len(tokenizer.special_ids)
    random_ids = torch.randint(low, tokenizer.vocab_size, ids.shape, generator=generator)
    masked[randomise] = random_ids[randomise]
    return masked, targets


class BatchOrder:
    """Shuffled batches of example indices, epoch after epoch, fixed by (seed, epoch).

    The position (epoch, batch) is all the state there is, so a resumed run continues with the
    very batch an uninterrupted run would have taken next. Each of `world` processes takes every
    world-th example of the global batch.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if n_examples < 1:
            raise ValueError("no training examples")
        self.n, self.batch_size, self.seed = n_examples, batch_size, seed
        self.rank, self.world = rank, world
        self.epoch, self.position = 0, 0
        self._perm: torch.Tensor | None = None

    def _permutation(self) -> torch.Tensor:
        # Kept as a tensor (8 bytes an example), not a list of Python ints (about 36): a corpus
        # of tens of millions of lines would otherwise spend a gigabyte on its batch order.
        if self._perm is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm = torch.randperm(self.n, generator=generator)
        return self._perm

    @property
    def batches_per_epoch(self) -> int:
        return max(1, self.n // self.batch_size)

    def next(self) -> list[int]:
        """This process's share of the next global batch."""
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._perm = self.epoch + 1, 0, None
        perm = self._permutation()
        start = self.position * self.batch_size
        global_batch = perm[start : start + self.batch_size] if self.n >= self.batch_size else perm
        self.position += 1
        return global_batch[self.rank :: self.world].tolist()

    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict) -> None:
        self.epoch, self.position, self._perm = int(state["epoch"]), int(state["position"]), None
