"""Read a user's data files into examples, checking each line and naming the culprit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from glassformer.data.examples import Labeled, Pair, Text
from glassformer.data.lines import numbered_lines
from glassformer.errors import DataError

# What a line of each kind of file looks like, as error messages describe it.
_PAIR_LINE = "'source<TAB>target'"
_LABELED_LINE = "'label<TAB>text'"
_TEXT_LINE = "text"


def _iter_fields(path: str | Path, names: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """The rows of a two-column TSV file, each field stripped and non-empty, read in blocks."""
    expected = f"'{names[0]}<TAB>{names[1]}'"
    for n, line in numbered_lines(path, expected):
        fields = line.split("\t")
        if len(fields) != 2:
            found = f"{len(fields)} field" + ("" if len(fields) == 1 else "s")
            raise DataError(f"{path}:{n}: expected {expected} (2 fields), found {found}")
        fields = [f.strip() for f in fields]
        for field_name, value in zip(names, fields):
            if not value:
                raise DataError(
                    f"{path}:{n}: the {field_name} field is empty (expected {expected})"
                )
        yield fields[0], fields[1]


def iter_pairs(path: str | Path) -> Iterator[Pair]:
    """The Pairs of a file of 'source<TAB>target' lines (blank lines skipped), read in blocks."""
    return (Pair(source, target) for source, target in _iter_fields(path, ("source", "target")))


def read_pairs(path: str | Path) -> list[Pair]:
    """Read 'source<TAB>target' lines (blank lines skipped) into Pairs without alignment.

    Args:
        path: a UTF-8 TSV file.
    """
    return list(iter_pairs(path))


def iter_labeled(path: str | Path) -> Iterator[Labeled]:
    """The Labeled examples of a file of 'label<TAB>text' lines (blank lines skipped), read in blocks."""
    return (Labeled(label, text) for label, text in _iter_fields(path, ("label", "text")))


def read_labeled(path: str | Path) -> list[Labeled]:
    """Read 'label<TAB>text' lines (blank lines skipped) into Labeled examples.

    Args:
        path: a UTF-8 TSV file.
    """
    return list(iter_labeled(path))


def iter_text(path: str | Path) -> Iterator[Text]:
    """One Text per non-blank line, surrounding whitespace stripped, read in blocks."""
    return (Text(line.strip()) for _, line in numbered_lines(path, _TEXT_LINE))


def read_text(path: str | Path) -> list[Text]:
    """Read one Text per non-blank line, with surrounding whitespace stripped.

    Args:
        path: a UTF-8 text file.
    """
    return list(iter_text(path))
