"""Shuffle examples with a seed and cut them into train, valid and test splits."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from glassformer.errors import ConfigError, DataError

E = TypeVar("E")


@dataclass(frozen=True)
class Splits(Generic[E]):
    """The three splits of a data set."""

    train: list[E]
    valid: list[E]
    test: list[E]

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(train, valid, test) example counts."""
        return len(self.train), len(self.valid), len(self.test)


def split_examples(
    examples: Sequence[E], seed: int, valid_fraction: float = 0.05, test_fraction: float = 0.05
) -> Splits[E]:
    """Shuffle examples deterministically and split them; every split gets at least one.

    Args:
        examples: at least three examples.
        seed: seeds the shuffle, so the same seed gives the same splits.
        valid_fraction: share of examples for validation (rounded, at least one).
        test_fraction: share of examples for testing (rounded, at least one).
    """
    fractions_ok = 0 <= valid_fraction < 1 and 0 <= test_fraction < 1
    if not fractions_ok or valid_fraction + test_fraction >= 1:
        raise ConfigError(
            f"valid_fraction ({valid_fraction}) and test_fraction ({test_fraction}) must be "
            "between 0 and 1 and sum to less than 1"
        )
    n = len(examples)
    if n < 3:
        examples_word = "example" if n == 1 else "examples"
        raise DataError(
            f"only {n} {examples_word}; need at least 3 to make train, valid and test splits"
        )
    n_valid = max(1, round(n * valid_fraction))
    n_test = max(1, round(n * test_fraction))
    # Rounding up both held-out splits can leave train empty on tiny data sets.
    while n - n_valid - n_test < 1:
        if n_valid >= n_test:
            n_valid -= 1
        else:
            n_test -= 1
    order = list(examples)
    random.Random(seed).shuffle(order)
    held_out = n_valid + n_test
    return Splits(train=order[held_out:], valid=order[:n_valid], test=order[n_valid:held_out])
