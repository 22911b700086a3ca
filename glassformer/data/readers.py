"""Read a user's data files into examples, checking each line and naming the culprit."""

from __future__ import annotations

from pathlib import Path

from glassformer.data.examples import Labeled, Pair, Text
from glassformer.errors import DataError
from glassformer.files import read_bytes

_BOM = b"\xef\xbb\xbf"

# What a line of each kind of file looks like, as error messages describe it.
_PAIR_LINE = "'source<TAB>target'"
_LABELED_LINE = "'label<TAB>text'"
_TEXT_LINE = "text"


def _read_lines(path: str | Path, expected: str) -> list[tuple[int, str]]:
    """Return the non-blank lines of a UTF-8 file with their 1-based line numbers.

    Args:
        path: the file.
        expected: what a line should look like, for the empty-file message.
    """
    name = str(path)
    data = read_bytes(path, f"a file of lines of {expected}")
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{name}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at column {column})"
        ) from None
    # split("\n") rather than splitlines(), which also breaks at form feeds and other
    # separators and would throw the line numbers off.
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    if not lines:
        raise DataError(f"{name}: file is empty (expected lines of {expected})")
    return lines


def _read_fields(path: str | Path, names: tuple[str, str]) -> list[tuple[str, str]]:
    """Read a two-column TSV file, each field stripped and non-empty."""
    expected = f"'{names[0]}<TAB>{names[1]}'"
    rows = []
    for n, line in _read_lines(path, expected):
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
        rows.append((fields[0], fields[1]))
    return rows


def read_pairs(path: str | Path) -> list[Pair]:
    """Read 'source<TAB>target' lines (blank lines skipped) into Pairs without alignment.

    Args:
        path: a UTF-8 TSV file.
    """
    return [Pair(source, target) for source, target in _read_fields(path, ("source", "target"))]


def read_labeled(path: str | Path) -> list[Labeled]:
    """Read 'label<TAB>text' lines (blank lines skipped) into Labeled examples.

    Args:
        path: a UTF-8 TSV file.
    """
    return [Labeled(label, text) for label, text in _read_fields(path, ("label", "text"))]


def read_text(path: str | Path) -> list[Text]:
    """Read one Text per non-blank line, with surrounding whitespace stripped.

    Args:
        path: a UTF-8 text file.
    """
    return [Text(line.strip()) for _, line in _read_lines(path, _TEXT_LINE)]
