"""Ids and padded batches as every task kind makes them, and a batch order that can resume mid-epoch.

How a kind's examples become ids and batches is the kind's own (`glassformer.tasks`).

Targets use -100 (PyTorch's ignore_index) where no prediction is scored: padding, and in
masked-LM every position that was not chosen for prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from glassformer.data.prepared import narrowest
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
    lengths: np.ndarray | None = None
    """Each example's padded width in a batch, [n], when known without reading the rows (a prepared corpus)."""

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


BUCKET_BATCHES = 50
"""Batches whose examples are sorted by length together when batches are bucketed."""


def sorted_in_runs(indices: np.ndarray, lengths: np.ndarray, run: int) -> np.ndarray:
    """indices with each run of `run` consecutive ones (the last may be shorter) sorted by their
    lengths[index], ties keeping their order: a stable sort of each run, all full runs at once."""
    keys, whole = lengths[indices], len(indices) // run * run
    out = np.empty_like(indices)
    within = np.argsort(keys[:whole].reshape(-1, run), axis=1, kind="stable")  # by radix for uint8 and uint16
    within += np.arange(0, whole, run)[:, None]
    np.take(indices, within.ravel(), out=out[:whole])
    out[whole:] = indices[whole:][np.argsort(keys[whole:], kind="stable")]
    return out


class BatchOrder:
    """Shuffled batches of example indices, epoch after epoch, fixed by (seed, epoch).

    The position (epoch, batch) is all the state there is, so a resumed run continues with the
    very batch an uninterrupted run would have taken next. Each of `world` processes takes every
    world-th example of the global batch.

    With `lengths`, batches are bucketed by length to waste little padding: the epoch's shuffled
    examples are cut into runs of BUCKET_BATCHES batches, each run sorted by length (ties keep
    the shuffled order) and cut into batches, and the batches are shuffled. An epoch then uses
    exactly the examples it uses without bucketing, only grouped otherwise.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 lengths: np.ndarray | None = None):
        if n_examples < 1:
            raise ValueError("no training examples")
        if lengths is not None and len(lengths) != n_examples:
            raise ValueError(f"{len(lengths)} lengths for {n_examples} examples")
        self.n, self.batch_size, self.seed = n_examples, batch_size, seed
        self.rank, self.world = rank, world
        self.lengths = None if lengths is None else narrowest(np.asarray(lengths))
        self.epoch, self.position = 0, 0
        self._batches: torch.Tensor | None = None

    def _generator(self, salt: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + salt)

    def epoch_batches(self) -> torch.Tensor:
        """The global batches of the current epoch, [batches_per_epoch, batch_size] (one batch of all when fewer)."""
        # Kept as a tensor (8 bytes an example), not a list of Python ints (about 36): a corpus
        # of tens of millions of lines would otherwise spend a gigabyte on its batch order.
        if self._batches is None:
            perm = torch.randperm(self.n, generator=self._generator())
            width = min(self.batch_size, self.n)
            used = perm[: self.batches_per_epoch * width]
            if self.lengths is not None:
                used = torch.from_numpy(sorted_in_runs(used.numpy(), self.lengths, width * BUCKET_BATCHES))
            batches = used.view(self.batches_per_epoch, width)
            if self.lengths is not None:
                batches = batches[torch.randperm(len(batches), generator=self._generator(salt=500_009))]
            self._batches = batches
        return self._batches

    @property
    def batches_per_epoch(self) -> int:
        return max(1, self.n // self.batch_size)

    def next(self) -> list[int]:
        """This process's share of the next global batch."""
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None
        global_batch = self.epoch_batches()[self.position]
        self.position += 1
        return global_batch[self.rank :: self.world].tolist()

    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict) -> None:
        self.epoch, self.position, self._batches = int(state["epoch"]), int(state["position"]), None
