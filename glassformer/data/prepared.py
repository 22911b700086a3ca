"""A prepared corpus on disk: every example's ids in one memory-mapped token file, and an index.

Layout of a store folder:
    tokens.bin     the framed ids of every example, one after another (uint16 while the
                   vocabulary fits in 65,536 ids, uint32 beyond), little-endian
    offsets.npy    int64 [n_examples + 1]: example i is tokens[offsets[i]:offsets[i+1]]
    meta.json      written last: format, dtype, counts, SHA-256 of every file, where it came from
    NAME.bin, NAME-offsets.npy
                   the same for each further column a task kind keeps beside the ids (a
                   translation's target ids, a tag per position, a class label, an answer span),
                   example i's values being NAME[offsets[i]:offsets[i+1]]

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
from functools import cached_property
from pathlib import Path

import numpy as np

from glassformer.errors import DataError
from glassformer.files import cache_dir, sha256_of

FORMAT = "glassformer-prepared"
VERSION = 1
TOKENS_FILE = "tokens.bin"
OFFSETS_FILE = "offsets.npy"
META_FILE = "meta.json"


def cache_root() -> Path:
    """Where prepared corpora are kept: $GLASSFORMER_CACHE_DIR/prepared, else ~/.cache/glassformer/prepared."""
    return cache_dir() / "prepared"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def narrowest(counts: np.ndarray) -> np.ndarray:
    """Counts (never negative) as uint8 or uint16 when they fit, else as int64; no copy when already so."""
    top = int(counts.max()) if len(counts) else 0
    dtype = np.uint8 if top < 1 << 8 else np.uint16 if top < 1 << 16 else np.int64
    return counts.astype(dtype, copy=False)


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return sha256_of(f)[0]


class TokenStore:
    """An opened store: examples by index, read from the memory map on demand.

    Args:
        columns: name -> (values, offsets) of each further column, memory-mapped too.
    """

    def __init__(self, path: Path, meta: dict, tokens: np.ndarray, offsets: np.ndarray,
                 columns: dict[str, tuple[np.ndarray, np.ndarray]] | None = None):
        self.path, self.meta, self.tokens, self.offsets = path, meta, tokens, offsets
        self.columns = columns or {}

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def lengths(self) -> np.ndarray:
        """The framed length of every example, [n_examples], in the narrowest unsigned dtype that holds
        them (computed once: 1 or 2 bytes an example, fast to pick from in any order)."""
        return narrowest(np.diff(self.offsets))

    def example(self, i: int) -> list[int]:
        """The framed ids of example i."""
        return self.tokens[self.offsets[i] : self.offsets[i + 1]].tolist()

    def value(self, column: str, i: int) -> list[int]:
        """Example i's values in a further column."""
        values, offsets = self.columns[column]
        return values[offsets[i] : offsets[i + 1]].tolist()

    def column_lengths(self, column: str) -> np.ndarray:
        """How many values each example has in a further column, [n_examples]."""
        return np.diff(self.columns[column][1])

    def rows(self, indices: np.ndarray, column: str | None = None, scalar: bool = False) -> "StoreRows":
        """Examples `indices` (ids, or a further column's values) as a read-on-demand sequence."""
        return StoreRows(self, indices, column, scalar)


class StoreRows:
    """Examples of a store picked by index, each read as a list of ints (or one int, scalar) when asked for.

    What an `Encoded` split holds in place of lists: nothing is read before a batch needs it.
    """

    def __init__(self, store: TokenStore, indices: np.ndarray, column: str | None = None, scalar: bool = False):
        self.store, self.indices, self.column, self.scalar = store, indices, column, scalar

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        row = self.store.example(j) if self.column is None else self.store.value(self.column, j)
        return row[0] if self.scalar else row

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class _ColumnWriter:
    """One ragged column being written: its values appended to a file, its lengths kept for the offsets."""

    def __init__(self, values_path: Path, offsets_path: Path, dtype: np.dtype, low: int, high: int):
        self.values_path, self.offsets_path, self.dtype, self.low, self.high = values_path, offsets_path, dtype, low, high
        self.file = open(values_path, "wb")
        self.digest, self.lengths, self.n_values = hashlib.sha256(), [], 0

    def write(self, values: np.ndarray, lengths: np.ndarray, what: str) -> None:
        values = np.asarray(values)
        if len(values) and (values.min() < self.low or values.max() >= self.high):
            raise ValueError(f"{what} outside {self.low}..{self.high - 1}")
        data = values.astype(self.dtype).tobytes()
        self.digest.update(data)
        self.file.write(data)
        self.lengths.append(np.asarray(lengths, dtype=np.int64))
        self.n_values += len(values)

    def finish(self) -> int:
        """Close the values file, write the offsets; the number of examples."""
        self.file.close()
        offsets = np.zeros(sum(map(len, self.lengths)) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(self.lengths) if self.lengths else np.empty(0, np.int64), out=offsets[1:])
        np.save(self.offsets_path, offsets)
        self.lengths = []
        return len(offsets) - 1


def column_files(name: str) -> tuple[str, str]:
    """The values and offsets file names of a further column."""
    return f"{name}.bin", f"{name}-offsets.npy"


def write_store(path: str | Path, blocks: Iterable[tuple], vocab_size: int, meta: dict,
                columns: dict[str, tuple[np.dtype, int, int]] | None = None) -> TokenStore:
    """Write blocks of examples into a store folder at path, atomically, and open it.

    Args:
        blocks: for each block of examples, (ids, lengths) or (ids, lengths, {column: (values, lengths)}):
            their framed ids one after another and each one's length, and the same for each further column.
        vocab_size: every id is below this; picks the token dtype.
        meta: where the store came from (source file, its hash, the tokenizer's), kept in meta.json.
        columns: name -> (dtype, lowest value, highest value + 1) of each further column.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype, columns = token_dtype(vocab_size), columns or {}
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tokens = _ColumnWriter(work / TOKENS_FILE, work / OFFSETS_FILE, dtype, 0, vocab_size)
        writers = {name: _ColumnWriter(*(work / f for f in column_files(name)), np.dtype(kind), low, high)
                   for name, (kind, low, high) in columns.items()}
        try:
            for block in blocks:
                tokens.write(block[0], block[1], "an id outside the vocabulary:")
                for name, writer in writers.items():
                    writer.write(*block[2][name], f"a value of {name}")
        finally:
            for writer in (tokens, *writers.values()):
                writer.file.close()
        n_examples = tokens.finish()
        described = {}
        for name, writer in writers.items():
            if writer.finish() != n_examples:
                raise ValueError(f"column {name} has values for another number of examples than the ids")
            described[name] = {"dtype": writer.dtype.str, "n_values": writer.n_values, "sha256": writer.digest.hexdigest(),
                               "offsets_sha256": _file_sha256(writer.offsets_path)}
        meta = {"format": FORMAT, "version": VERSION, **meta, "dtype": dtype.str, "vocab_size": vocab_size,
                "n_examples": n_examples, "n_tokens": tokens.n_values, "tokens_sha256": tokens.digest.hexdigest(),
                "offsets_sha256": _file_sha256(work / OFFSETS_FILE), **({"columns": described} if described else {})}
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
        verify: also compare both files' SHA-256 with those recorded (about a second per GB).
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
    tokens, offsets = _open_column(tokens_path, offsets_path, dtype, meta["n_tokens"], meta["n_examples"])
    checks = [(tokens_path, meta["tokens_sha256"]), (offsets_path, meta["offsets_sha256"])]
    columns = {}
    for name, column in meta.get("columns", {}).items():
        values_path, column_offsets = (path / f for f in column_files(name))
        columns[name] = _open_column(values_path, column_offsets, np.dtype(column["dtype"]), column["n_values"],
                                     meta["n_examples"])
        checks += [(values_path, column["sha256"]), (column_offsets, column["offsets_sha256"])]
    if verify:
        for file, digest in checks:
            if not file.is_file() or _file_sha256(file) != digest:
                raise DataError(f"{file}: damaged (its checksum differs from the one recorded); prepare it again")
    return TokenStore(path, meta, tokens, offsets, columns)


def _open_column(values_path: Path, offsets_path: Path, dtype: np.dtype, n_values: int,
                 n_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of a column, memory-mapped; DataError when either file is cut short or damaged."""
    expected = n_values * dtype.itemsize
    found = values_path.stat().st_size if values_path.is_file() else None
    if found != expected:
        what = "missing" if found is None else f"{found:,} bytes"
        raise DataError(f"{values_path}: truncated or damaged ({what}, expected {expected:,} bytes); prepare it again")
    try:
        offsets = np.load(offsets_path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise DataError(f"{offsets_path}: damaged ({error}); prepare it again") from None
    if offsets.shape != (n_examples + 1,) or int(offsets[-1]) != n_values:
        raise DataError(f"{offsets_path}: damaged (does not match {META_FILE}); prepare it again")
    values = np.memmap(values_path, dtype=dtype, mode="r") if expected else np.empty(0, dtype)
    return values, offsets
