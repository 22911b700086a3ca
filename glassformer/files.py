"""Reading a user's file, with the one-line errors every reader gives."""

from __future__ import annotations

from pathlib import Path

from glassformer.errors import DataError


def read_bytes(path: str | Path, expected: str) -> bytes:
    """The file's bytes; DataError naming the path when it is missing, a folder or unreadable.

    Args:
        expected: what the file should be, for the message about a folder ("a tokenizer JSON file").
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{path}: is a directory (expected {expected})")
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex; DataError as read_bytes gives for a missing file."""
    import hashlib

    digest = hashlib.sha256()
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{path}: is a directory (expected a data file)")
    try:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    return digest.hexdigest()


def check_output_file(path: str | Path, what: str = "the output file") -> Path:
    """path may be written as a file: not a folder, and its folder exists; else DataError naming it."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{path}: is a folder (expected {what}, e.g. {p / 'out'}{p.suffix or ''})")
    parent = p.parent
    if not parent.exists():
        raise DataError(f"{parent}: no such folder for {what}")
    if not parent.is_dir():
        raise DataError(f"{parent}: not a folder, so {what} cannot go there")
    return p
