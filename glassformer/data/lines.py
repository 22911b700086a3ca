"""Stream a text file's lines in blocks, as `read_text` reads them, in memory bounded by the block.

A corpus of gigabytes never sits in memory as one string or one list: each block is a few
megabytes of whole lines, decoded, stripped, blank lines dropped (the same lines, in the same
order, as `read_text` gives).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from glassformer.errors import DataError
from glassformer.files import content_sha256

BLOCK_BYTES = 4 << 20
_BOM = b"\xef\xbb\xbf"


def _open(path: str | Path, expected: str = "text"):
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{path}: is a directory (expected a file of lines of {expected})")
    try:
        return open(p, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def byte_blocks(path: str | Path, block_bytes: int = BLOCK_BYTES, expected: str = "text") -> Iterator[bytes]:
    """The file's bytes in pieces that end at a line break (the last piece may not)."""
    with _open(path, expected) as f:
        rest = b""
        while True:
            chunk = f.read(block_bytes)
            if not chunk:
                break
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                rest = chunk
                continue
            rest = chunk[cut:]
            yield chunk[:cut]
        if rest:
            yield rest


def line_blocks(path: str | Path, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[list[str], int]]:
    """(non-blank lines, stripped; bytes read) for each block of the file.

    Raises DataError naming the line of the first byte that is not UTF-8, and for a file
    with no non-blank line.
    """
    line_no, any_line, first = 0, False, True
    for raw in byte_blocks(path, block_bytes):
        size = len(raw)
        if first and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        first = False
        text = _decoded(raw, path, line_no)
        line_no += raw.count(b"\n")
        lines = [s for s in map(str.strip, text.split("\n")) if s]
        any_line = any_line or bool(lines)
        yield lines, size
    if not any_line:
        raise DataError(f"{path}: file is empty (expected lines of text)")


def _decoded(raw: bytes, path, line_no: int) -> str:
    """A block's text; DataError naming the line and column of its first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = line_no + raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {column})") from None


def numbered_lines(path: str | Path, expected: str, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line break) for each non-blank line, read in blocks.

    The lines a reader of user files checks one by one (pairs, labelled lines, CoNLL, JSON
    lines): a trailing carriage return is dropped, nothing else is stripped. DataError for a
    byte that is not UTF-8 (naming its line) and for a file with no non-blank line.

    Args:
        expected: what a line should look like, for the messages about a folder or an empty file.
    """
    line_no, any_line, first = 0, False, True
    for raw in byte_blocks(path, block_bytes, expected):
        if first and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        first = False
        pieces = _decoded(raw, path, line_no).split("\n")
        if raw.endswith(b"\n"):
            pieces.pop()  # what follows the block's last line break starts the next block
        for n, line in enumerate(pieces, start=line_no + 1):
            line = line.rstrip("\r")
            if line.strip():
                any_line = True
                yield n, line
        line_no += raw.count(b"\n")
    if not any_line:
        raise DataError(f"{path}: file is empty (expected lines of {expected})")


def file_digest(path: str | Path) -> tuple[str, int]:
    """(SHA-256 hex digest of the file's bytes, its size in bytes), read in blocks (once per process for
    a file that has not changed: `content_sha256`)."""
    with _open(path) as f:
        return content_sha256(f)
