"""What a built-in task is, and how its splits are drawn from a generator of examples."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from glassformer.data.conll import Tagged
from glassformer.data.examples import Example, Labeled, Pair, Text
from glassformer.data.qa import QAExample
from glassformer.data.split import Splits

# Draws one example from the task's generator; the same rng state gives the same example.
MakeExample = Callable[[random.Random], Example]


def _key(example: Example) -> str:
    """The part of an example that must not repeat: the input the model sees."""
    if isinstance(example, Pair):
        return example.source
    if isinstance(example, (Text, Labeled)):
        return example.text
    if isinstance(example, Tagged):
        return " ".join(example.tokens)
    if isinstance(example, QAExample):
        return f"{example.context}\n{example.question}"
    raise TypeError(f"not an example: {example!r}")


def draw_splits(make: MakeExample, sizes: tuple[int, int, int], seed: str) -> Splits:
    """Draw distinct examples until the three splits are full.

    No input appears twice, within a split or across splits, so the test set measures
    generalisation rather than memory.

    Args:
        make: draws one example.
        sizes: (train, valid, test) example counts.
        seed: seeds the draw.
    """
    rng = random.Random(seed)
    n_train, n_valid, n_test = sizes
    wanted = n_train + n_valid + n_test
    seen: set[str] = set()
    drawn: list[Example] = []
    # A generous bound: reaching it means the generator's language is too small.
    for _ in range(50 * wanted):
        example = make(rng)
        key = _key(example)
        if key not in seen:
            seen.add(key)
            drawn.append(example)
            if len(drawn) == wanted:
                break
    else:
        raise RuntimeError(f"generator gave only {len(drawn)} distinct examples of {wanted}")
    # Test first, then valid, then train: changing the train size leaves test unchanged.
    test, valid, train = drawn[:n_test], drawn[n_test:n_test + n_valid], drawn[n_test + n_valid:]
    return Splits(train=train, valid=valid, test=test)


@dataclass(frozen=True)
class Task:
    """A built-in data set made by code, with the defaults to train a model on it.

    Args:
        name: the name the CLI and get_task use.
        kind: "seq2seq", "lm", "mlm", "classify", "tag" or "qa".
        family: "encoder-decoder", "decoder-only" or "encoder-only".
        default_preset: the model preset to train on it when none is given.
        tokenizer: the default tokenizer kind.
        description: one line for `glassformer tasks`.
        default_steps: a training step budget that reaches the task's goal on CPU.
        sizes: (train, valid, test) example counts.
        make: draws one example from an rng.
    """

    name: str
    kind: str
    family: str
    default_preset: str
    tokenizer: str
    description: str
    default_steps: int
    sizes: tuple[int, int, int]
    make: MakeExample = field(repr=False, compare=False)

    def splits(self, seed: int = 0) -> Splits:
        """Generate the task's train/valid/test splits; the same seed gives the same splits.

        Args:
            seed: seeds the generator.
        """
        # The task name joins the seed so that two tasks never draw in lockstep.
        return draw_splits(self.make, self.sizes, f"{self.name}/{seed}")
