"""The file behind a prepared corpus: its examples counted and split, its tokenizers trained and its
labels gathered on the training split, each read in blocks and cached in the file's cache folder.

The results equal those of reading the file into memory: `split_examples` over its examples,
`build_tokenizers` on the training texts, the kind's `label_set`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glassformer.data.lines import file_digest, line_blocks
from glassformer.data.prepared import cache_root
from glassformer.data.split import split_examples
from glassformer.data.streamed import chunked
from glassformer.errors import DataError
from glassformer.files import atomic_write, atomic_write_text
from glassformer.tasks import KINDS
from glassformer.text import Tokenizer, load_tokenizer, train_tokenizer

_SOURCE_FILE = "source.json"
CHUNK = 2048
"""Examples encoded at a time (kinds other than text for language models)."""
ANNOUNCE_BYTES = 16 << 20
"""Files from this size on have each step of their preparation announced; smaller ones take a moment."""


def uses_prepared_data(data: str | None, kind: str | None) -> bool:
    """Whether training on `data` goes through a prepared corpus (a user's file of any trainable kind)."""
    return data is not None and isinstance(kind, str) and kind in KINDS and KINDS[kind].trainable


def reader_of(kind: str) -> str:
    """How a kind's files are read: "text" (lm and mlm share their lines) or the kind's own format."""
    return "text" if KINDS[kind].prepared_text else kind


# The source file --------------------------------------------------------------------------------
@dataclass
class Source:
    """A text file, known by its content: hash, size, count of non-blank lines, its cache folder."""

    path: Path
    sha256: str
    size: int
    n_examples: int
    folder: Path


def scan_source(path: str | Path, log: Callable[[str], None] = lambda line: None, kind: str = "lm") -> Source:
    """Hash the file; count (and check) its examples of `kind` the first time this content is seen
    as that kind (later, from the cache)."""
    sha, size = file_digest(path)
    folder, reader = cache_root() / sha[:24], reader_of(kind)
    record, counts = folder / _SOURCE_FILE, {}
    if record.is_file():
        try:
            known = json.loads(record.read_text(encoding="utf-8"))
            if known.get("sha256") == sha:
                counts = dict(known.get("examples", {}))
                if reader in counts:
                    return Source(Path(path), sha, size, int(counts[reader]), folder)
        except (json.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError):
            counts = {}
    what = "lines" if reader == "text" else f"{kind} examples"
    if size >= ANNOUNCE_BYTES:
        log(f"preparing {path} ({size / 1e6:,.1f} MB, new to the cache {cache_root()}): counting its {what}")
    if reader == "text":
        n = sum(len(lines) for lines, _ in line_blocks(path))
    else:
        n = sum(1 for _ in KINDS[kind].stream(path))  # reads every example, so a bad line is found now
    counts[reader] = n
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps({"sha256": sha, "size": size, "examples": counts,
                                          "first_seen_as": str(path)}) + "\n")
    return Source(Path(path), sha, size, n, folder)


# Splits -------------------------------------------------------------------------------------------
def split_indices(source: Source, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, valid, test) example indices, as `split_examples` splits the file's examples; cached."""
    cached = source.folder / f"split-seed{seed}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as parts:
                return parts["train"], parts["valid"], parts["test"]
        except (OSError, ValueError, KeyError):
            pass
    splits = split_examples(range(source.n_examples), seed)
    parts = {name: np.asarray(getattr(splits, name), dtype=np.int64) for name in ("train", "valid", "test")}
    tmp = cached.with_name(f".{cached.name}.{random.getrandbits(32):08x}.npz")
    np.savez(tmp, **parts)
    tmp.replace(cached)
    return parts["train"], parts["valid"], parts["test"]


# The tokenizers ----------------------------------------------------------------------------------
class TrainingTexts:
    """The texts of the training examples, read from the file in blocks each time it is iterated.

    For word and subword tokenizers a block's lines come joined by newlines (both split on
    whitespace first, so the counts are those of the lines one by one); for char, line by line.
    """

    def __init__(self, path: Path, n_examples: int, train: np.ndarray, joined: bool):
        self.path, self.joined = path, joined
        self.is_train = np.zeros(n_examples, dtype=bool)
        self.is_train[train] = True

    def __iter__(self) -> Iterator[str]:
        start = 0
        for lines, _ in line_blocks(self.path):
            keep = self.is_train[start : start + len(lines)]
            start += len(lines)
            yield from self._texts([line for line, k in zip(lines, keep) if k])

    def _texts(self, texts: list[str]) -> Iterator[str]:
        if not self.joined:
            yield from texts
        elif texts:
            yield "\n".join(texts)


class ExampleTexts(TrainingTexts):
    """The texts a kind trains its tokenizer on (`Kind.texts`) of the training examples, in blocks.

    Args:
        side: "source" or "target" (separate vocabularies), or "shared" (the source texts of a
            kind with one vocabulary; both sides where the kind has two).
    """

    def __init__(self, path: Path, n_examples: int, train: np.ndarray, joined: bool, kind: str, side: str):
        super().__init__(path, n_examples, train, joined)
        self.kind, self.side = KINDS[kind], side

    def __iter__(self) -> Iterator[str]:
        start = 0
        for examples in chunked(self.kind.stream(self.path), CHUNK):
            keep = self.is_train[start : start + len(examples)]
            start += len(examples)
            sources, targets = self.kind.texts([e for e, k in zip(examples, keep) if k])
            if self.side == "target":
                texts = targets
            elif self.side == "shared" and self.kind.two_vocabularies:
                texts = sources + targets
            else:
                texts = sources
            yield from self._texts(texts)


def _cached_tokenizer(cached: Path, texts, tokenizer_kind: str, vocab_size: int | None, lowercase: bool) -> Tokenizer:
    if cached.is_file():
        try:
            return load_tokenizer(cached)
        except DataError:
            pass
    tokenizer = train_tokenizer(tokenizer_kind, texts, vocab_size, lowercase)
    atomic_write(cached, tokenizer.save)
    return tokenizer


def corpus_tokenizer(source: Source, train: np.ndarray, kind: str, vocab_size: int | None, lowercase: bool,
                     split_name: str, log: Callable[[str], None] = lambda line: None) -> Tokenizer:
    """The tokenizer of a text file's training lines, as `build_tokenizers` trains it; cached by its settings.

    Args:
        kind: the tokenizer's kind (word, char, bpe, wordpiece).
    """
    spec = f"{kind}-v{vocab_size}-{'lower' if lowercase else 'cased'}-{split_name}"
    cached = source.folder / f"tokenizer-{spec}.json"
    if not cached.is_file() and source.size >= ANNOUNCE_BYTES:
        log(f"training the {kind} tokenizer on the {len(train):,} training lines of {source.path}")
    texts = TrainingTexts(source.path, source.n_examples, train, joined=kind != "char")
    return _cached_tokenizer(cached, texts, kind, vocab_size, lowercase)


def corpus_tokenizers(source: Source, train: np.ndarray, kind: str, tokenizer_kind: str, vocab_size: int | None,
                      lowercase: bool, shared: bool, split_name: str,
                      log: Callable[[str], None] = lambda line: None) -> tuple[Tokenizer, Tokenizer]:
    """(source, target) tokenizers of the training examples of any kind, as `build_tokenizers` trains them."""
    if reader_of(kind) == "text":
        tokenizer = corpus_tokenizer(source, train, tokenizer_kind, vocab_size, lowercase, split_name, log)
        return tokenizer, tokenizer
    sides = ("source", "target") if KINDS[kind].two_vocabularies and not shared else ("shared",)
    made = []
    for side in sides:
        spec = f"{kind}-{side}-{tokenizer_kind}-v{vocab_size}-{'lower' if lowercase else 'cased'}-{split_name}"
        cached = source.folder / f"tokenizer-{spec}.json"
        if not cached.is_file() and source.size >= ANNOUNCE_BYTES:
            log(f"training the {side} {tokenizer_kind} tokenizer on the {len(train):,} training examples of {source.path}")
        texts = ExampleTexts(source.path, source.n_examples, train, tokenizer_kind != "char", kind, side)
        made.append(_cached_tokenizer(cached, texts, tokenizer_kind, vocab_size, lowercase))
    return made[0], made[-1]


# Labels ---------------------------------------------------------------------------------------------
def file_labels(source: Source, kind: str, train: np.ndarray, split_name: str) -> tuple[set[str], set[str]]:
    """(labels of the training examples, labels of the others) of a file of a labelled kind; cached."""
    cached = source.folder / f"labels-{kind}-{split_name}.json"
    if cached.is_file():
        try:
            known = json.loads(cached.read_text(encoding="utf-8"))
            return set(known["train"]), set(known["held_out"])
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
    is_train = np.zeros(source.n_examples, dtype=bool)
    is_train[train] = True
    seen: tuple[set[str], set[str]] = (set(), set())
    for i, example in enumerate(KINDS[kind].stream(source.path)):
        seen[0 if is_train[i] else 1].update(KINDS[kind].example_labels(example))
    atomic_write_text(cached, json.dumps({"train": sorted(seen[0]), "held_out": sorted(seen[1])}) + "\n")
    return seen
