"""Reading (and hashing) a user's file, with the one-line errors every reader gives; writing files atomically."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

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


def cache_dir() -> Path:
    """The folder glassformer keeps what it can rebuild in: $GLASSFORMER_CACHE_DIR, else ~/.cache/glassformer."""
    return Path(os.environ.get("GLASSFORMER_CACHE_DIR") or Path.home() / ".cache" / "glassformer")


HASH_BLOCK = 4 << 20
"""Bytes read and hashed at a time: one buffer, read into and hashed while it is still in the cache."""


def sha256_of(f: BinaryIO) -> tuple[str, int]:
    """(SHA-256 hex digest, number of bytes) of what is left to read in an open binary file."""
    digest, size, known = hashlib.sha256(), 0, os.fstat(f.fileno()).st_size
    buffer = bytearray(min(HASH_BLOCK, known) if known else 1 << 20)  # 0: empty, or a pipe
    view = memoryview(buffer)
    while n := f.readinto(buffer):
        digest.update(view[:n])
        size += n
    return digest.hexdigest(), size


SETTLED_S = 2.0
"""A file last changed at least this long before it is hashed has its digest remembered (`content_sha256`)."""
_DIGESTS: dict[tuple[int, ...], tuple[str, int]] = {}
_MAX_DIGESTS = 64


def content_sha256(f: BinaryIO) -> tuple[str, int]:
    """`sha256_of` a whole open file, remembered for this process by what `os.fstat` says of it (device,
    inode, size, modification and change times), so that a data file hashed twice unchanged (`--resume`
    checks the data, then prepares it) is read once. Only a regular file read from its start that was
    last changed SETTLED_S or more before is remembered: a change after that gets a later timestamp,
    even where timestamps are as coarse as the kernel's tick."""
    info = os.fstat(f.fileno())
    if not stat.S_ISREG(info.st_mode) or f.tell() != 0:
        return sha256_of(f)
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    settled = time.time_ns() - max(info.st_mtime_ns, info.st_ctime_ns) >= SETTLED_S * 1e9
    digest = sha256_of(f)
    if settled:
        if len(_DIGESTS) >= _MAX_DIGESTS:
            _DIGESTS.pop(next(iter(_DIGESTS)))
        _DIGESTS[key] = digest
    return digest


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex; DataError as read_bytes gives for a missing file."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{path}: is a directory (expected a data file)")
    try:
        with open(p, "rb") as f:
            return content_sha256(f)[0]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


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


def atomic_write(path: str | Path, write) -> None:
    """Call write(tmp_path) for a temporary file beside path, then move it over path in one step.

    A crash before the move leaves the previous file intact; after it, the new one is complete.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the mode any other file would
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
