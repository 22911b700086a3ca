"""grammar-mlm: masked-word prediction on the grammar-lm sentences, to pre-train an encoder."""

from __future__ import annotations

from glassformer.data.tasks.grammar import is_grammatical
from glassformer.data.tasks.grammar_lm import make_example
from glassformer.data.tasks.task import Task

__all__ = ["TASK", "is_grammatical"]

TASK = Task(
    name="grammar-mlm",
    kind="mlm",
    family="encoder-only",
    default_preset="small-encoder",
    tokenizer="word",
    description="masked language model on the grammar-lm sentences (encoder pre-training)",
    default_steps=2000,
    sizes=(20_000, 500, 500),
    make=make_example,
)
