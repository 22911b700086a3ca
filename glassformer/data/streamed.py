"""Examples of a file too large for memory: taken in chunks, or a few picked by their place in the file."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import numpy as np


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Lists of `size` consecutive items (the last may be shorter)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def mapped_ahead(function: Callable, items: Iterable, ahead: int = 2) -> Iterator:
    """function(item) for each item, in order, computed up to `ahead` items in advance on as many threads.

    For work that spends its time outside the GIL (the `tokenizers` library's batch encoder):
    while the caller handles one result, the next ones are being computed, so the Python around
    the work (reading the next block, copying ids out, writing them) overlaps it. Items are drawn
    from `items` on the calling thread; at most `ahead` of them wait or are being worked on at once.
    """
    with ThreadPoolExecutor(max_workers=ahead) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


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
