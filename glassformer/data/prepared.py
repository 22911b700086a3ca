"""A prepared corpus on disk: every example's ids in one memory-mapped token file, and an index.

Layout of a store folder:
    tokens.bin     the framed ids of every example, one after another (uint16 while the
                   vocabulary fits in 65,536 ids, uint32 beyond), little-endian
    offsets.npy    int64 [n_examples + 1]: example i is tokens[offsets[i]:offsets[i+1]]
    meta.json      written last: format, dtype, counts, SHA-256 of both files, where it came from

Opening checks lengths and checksums, so a truncated or damaged store is one clear DataError
instead of wrong batches. Stores live under the cache folder (GLASSFORMER_CACHE_DIR, else
~/.cache/glassformer), keyed by the source file's content hash and the tokenizer's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from glassformer.errors import DataError

FORMAT = "glassformer-prepared"
VERSION = 1
TOKENS_FILE = "tokens.bin"
OFFSETS_FILE = "offsets.npy"
META_FILE = "meta.json"
_HASH_BLOCK = 16 << 20


def cache_root() -> Path:
    """Where prepared corpora are kept: $GLASSFORMER_CACHE_DIR/prepared, else ~/.cache/glassformer/prepared."""
    root = os.environ.get("GLASSFORMER_CACHE_DIR") or Path.home() / ".cache" / "glassformer"
    return Path(root) / "prepared"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


class TokenStore:
    """An opened store: examples by index, read from the memory map on demand."""

    def __init__(self, path: Path, meta: dict, tokens: np.ndarray, offsets: np.ndarray):
        self.path, self.meta, self.tokens, self.offsets = path, meta, tokens, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        """The framed length of every example, [n_examples]."""
        return np.diff(self.offsets)

    def example(self, i: int) -> list[int]:
        """The framed ids of example i."""
        return self.tokens[self.offsets[i] : self.offsets[i + 1]].tolist()


def write_store(path: str | Path, blocks: Iterable[tuple[np.ndarray, np.ndarray]], vocab_size: int, meta: dict) -> TokenStore:
    """Write (ids, lengths) blocks into a store folder at path, atomically, and open it.

    Args:
        blocks: for each block of examples, their framed ids one after another and each one's length.
        vocab_size: every id is below this; picks the token dtype.
        meta: where the store came from (source file, its hash, the tokenizer's), kept in meta.json.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(vocab_size)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        digest, lengths, n_tokens = hashlib.sha256(), [], 0
        with open(work / TOKENS_FILE, "wb") as f:
            for ids, block_lengths in blocks:
                if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
                    raise ValueError(f"an id outside the vocabulary (0..{vocab_size - 1})")
                data = ids.astype(dtype).tobytes()
                digest.update(data)
                f.write(data)
                lengths.append(np.asarray(block_lengths, dtype=np.int64))
                n_tokens += len(ids)
        offsets = np.zeros(sum(map(len, lengths)) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(lengths) if lengths else np.empty(0, np.int64), out=offsets[1:])
        np.save(work / OFFSETS_FILE, offsets)
        meta = {"format": FORMAT, "version": VERSION, **meta, "dtype": dtype.str, "vocab_size": vocab_size,
                "n_examples": len(offsets) - 1, "n_tokens": n_tokens, "tokens_sha256": digest.hexdigest(),
                "offsets_sha256": _file_sha256(work / OFFSETS_FILE)}
        (work / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if path.exists():
            shutil.rmtree(path)
        os.replace(work, path)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return open_store(path, verify=False)


def open_store(path: str | Path, verify: bool = True) -> TokenStore:
    """Open a store folder; DataError (one line) when it is missing, incomplete, truncated or damaged.

    Args:
        verify: also compare both files' SHA-256 with those recorded (about a second per 600 MB).
    """
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise DataError(f"{path}: not a prepared corpus (no {META_FILE}; preparation did not finish)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{meta_path}: damaged ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a prepared corpus ({META_FILE} has no \"format\": \"{FORMAT}\")")
    if meta.get("version", 0) > VERSION:
        raise DataError(f"{path}: prepared by a newer glassformer (format {meta['version']} > {VERSION})")
    tokens_path, offsets_path = path / TOKENS_FILE, path / OFFSETS_FILE
    dtype = np.dtype(meta["dtype"])
    expected = meta["n_tokens"] * dtype.itemsize
    found = tokens_path.stat().st_size if tokens_path.is_file() else None
    if found != expected:
        what = "missing" if found is None else f"{found:,} bytes"
        raise DataError(f"{tokens_path}: truncated or damaged ({what}, expected {expected:,} bytes); prepare it again")
    if verify:
        for file, key in ((tokens_path, "tokens_sha256"), (offsets_path, "offsets_sha256")):
            if not file.is_file() or _file_sha256(file) != meta[key]:
                raise DataError(f"{file}: damaged (its checksum differs from the one recorded); prepare it again")
    try:
        offsets = np.load(offsets_path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise DataError(f"{offsets_path}: damaged ({error}); prepare it again") from None
    if offsets.shape != (meta["n_examples"] + 1,) or int(offsets[-1]) != meta["n_tokens"]:
        raise DataError(f"{offsets_path}: damaged (does not match {META_FILE}); prepare it again")
    tokens = np.memmap(tokens_path, dtype=dtype, mode="r") if expected else np.empty(0, dtype)
    return TokenStore(path, meta, tokens, offsets)
