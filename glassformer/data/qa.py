"""Extractive question-answering examples and the JSON-lines file they are read from.

Each line is one JSON object:
    {"context": "...", "question": "...", "answer_start": 12, "answer_text": "..."}
where answer_start is the character offset of answer_text in context (as in SQuAD).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from glassformer.data.lines import numbered_lines
from glassformer.errors import DataError

_LINE = 'JSON objects with "context", "question", "answer_start" and "answer_text"'
_FIELDS = (("context", str), ("question", str), ("answer_start", int), ("answer_text", str))
_TYPE_NAMES = {str: "a string", int: "an integer"}


@dataclass(frozen=True)
class QAExample:
    """A question whose answer is the span context[answer_start:answer_start + len(answer_text)]."""

    context: str
    question: str
    answer_start: int
    answer_text: str

    @property
    def answer_end(self) -> int:
        """The character offset just past the answer."""
        return self.answer_start + len(self.answer_text)


def _example(data: object, where: str) -> QAExample:
    """Check one decoded JSON line and build its example; where is "file:line" for messages."""
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a JSON object, found {type(data).__name__}")
    for name, kind in _FIELDS:
        if name not in data:
            raise DataError(f'{where}: missing key "{name}" (expected {_LINE})')
        value = data[name]
        # bool is an int subclass; true is not an offset.
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DataError(f'{where}: "{name}" must be {_TYPE_NAMES[kind]}, found {value!r}')
    context, question = data["context"], data["question"]
    start, answer = data["answer_start"], data["answer_text"]
    for name in ("context", "question", "answer_text"):
        if not data[name].strip():
            raise DataError(f'{where}: "{name}" is empty')
    found = context[start:start + len(answer)] if start >= 0 else ""
    if found != answer:
        raise DataError(
            f"{where}: answer_text {answer!r} is not at answer_start={start} of the context "
            f"(found {found!r} there)"
        )
    return QAExample(context, question, start, answer)


def iter_qa(path: str | Path) -> Iterator[QAExample]:
    """One QAExample per non-blank JSON line, read in blocks, each answer checked to lie where it says."""
    for n, line in numbered_lines(path, _LINE):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
        yield _example(data, f"{path}:{n}")


def read_qa(path: str | Path) -> list[QAExample]:
    """Read one QAExample per non-blank JSON line, checking that each answer lies where it says.

    Args:
        path: a UTF-8 JSON-lines file.
    """
    return list(iter_qa(path))
