"""Examples of a file too large for memory: taken in chunks, or a few picked by their place in the file."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

import numpy as np


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Lists of `size` consecutive items (the last may be shorter)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def pick_examples(examples: Iterable, positions: Sequence[int] | np.ndarray) -> list:
    """The examples at `positions` (0-based places in the iterable), in the order of positions;
    reading stops after the last one needed."""
    wanted = np.asarray(positions, dtype=np.int64)
    if not len(wanted):
        return []
    order = np.argsort(wanted, kind="stable")
    targets = wanted[order]
    found: list = [None] * len(wanted)
    k = 0
    for i, example in enumerate(examples):
        while k < len(targets) and targets[k] == i:
            found[order[k]] = example
            k += 1
        if k == len(targets):
            break
    if k < len(targets):
        raise IndexError(f"position {int(targets[k])} is past the last example ({i})")
    return found


class LazyExamples(Sequence):
    """A list of examples read from their file the first time one is asked for (a held-out sample
    that only some kinds' metrics and the final printed examples need).

    Args:
        read: the examples' source, iterated from the start (a kind's `stream` of the file).
        positions: which examples, by place in the file, in the order they are listed.
    """

    def __init__(self, read: Callable[[], Iterable], positions: np.ndarray):
        self._read, self.positions = read, positions
        self._examples: list | None = None

    def _loaded(self) -> list:
        if self._examples is None:
            self._examples = pick_examples(self._read(), self.positions)
        return self._examples

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i):
        return self._loaded()[i]
