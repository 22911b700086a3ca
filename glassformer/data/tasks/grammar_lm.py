"""grammar-lm: next-word prediction on sentences of a small grammar with agreement.

Because the language is known exactly, a sample from the model can be checked with
is_grammatical, and perplexity has a floor to compare against.
"""

from __future__ import annotations

import random

from glassformer.data.examples import Text
from glassformer.data.tasks.grammar import generate, is_grammatical
from glassformer.data.tasks.task import Task

__all__ = ["TASK", "is_grammatical", "make_example"]


def make_example(rng: random.Random) -> Text:
    """Draw one sentence of the grammar."""
    return Text(generate(rng))


TASK = Task(
    name="grammar-lm",
    kind="lm",
    family="decoder-only",
    default_preset="small-lm",
    tokenizer="word",
    description="language model on a small English-like grammar (agreement, relative clauses)",
    default_steps=2000,
    sizes=(20_000, 500, 500),
    make=make_example,
)
