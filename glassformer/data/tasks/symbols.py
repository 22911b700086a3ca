"""copy and reverse: repeat a sequence of symbol words as it is, or back to front.

The simplest tests that a sequence-to-sequence model works: copy needs attention to look
at the same position, reverse at the mirrored one.
"""

from __future__ import annotations

import random

from glassformer.data.examples import Pair
from glassformer.data.tasks.task import Task

SYMBOLS = tuple("abcdefghijklmnopqrst")  # 20 one-letter words
MIN_LENGTH, MAX_LENGTH = 4, 12
SIZES = (10_000, 300, 300)


def _symbols(rng: random.Random) -> list[str]:
    """Draw MIN_LENGTH..MAX_LENGTH symbols, uniformly and independently."""
    return rng.choices(SYMBOLS, k=rng.randint(MIN_LENGTH, MAX_LENGTH))


def make_copy(rng: random.Random) -> Pair:
    """Draw one copy example: the target is the source; word j aligns to word j."""
    words = _symbols(rng)
    return Pair(" ".join(words), " ".join(words), tuple(range(len(words))))


def make_reverse(rng: random.Random) -> Pair:
    """Draw one reverse example: the target is the source backwards; word j aligns to n-1-j."""
    words = _symbols(rng)
    n = len(words)
    return Pair(" ".join(words), " ".join(reversed(words)), tuple(range(n - 1, -1, -1)))


COPY = Task(
    name="copy",
    kind="seq2seq",
    family="encoder-decoder",
    default_preset="tiny-seq2seq",
    tokenizer="word",
    description="copy a sequence of 4-12 letter symbols (the simplest seq2seq check)",
    default_steps=1000,
    sizes=SIZES,
    make=make_copy,
)

REVERSE = Task(
    name="reverse",
    kind="seq2seq",
    family="encoder-decoder",
    default_preset="tiny-seq2seq",
    tokenizer="word",
    description="reverse a sequence of 4-12 letter symbols (attention must look backwards)",
    default_steps=1500,
    sizes=SIZES,
    make=make_reverse,
)
