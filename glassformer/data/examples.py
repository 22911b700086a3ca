"""The three shapes of training example: a translation pair, a line of text, a labelled line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pair:
    """A sequence-to-sequence example.

    Args:
        source: the input sentence.
        target: the sentence the model should produce.
        alignment: for each whitespace-split target word j, the index (0-based, among the
            whitespace-split source words) of the source word it translates, or -1 when it
            translates none; None when unknown (user files).
    """

    source: str
    target: str
    alignment: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Text:
    """A language-model (or masked language-model) example: one line of text."""

    text: str


@dataclass(frozen=True)
class Labeled:
    """A classification example: a label and the text it belongs to."""

    label: str
    text: str


Example = Pair | Text | Labeled
