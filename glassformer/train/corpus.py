"""A user's data file as a prepared corpus: split, tokenizers, labels and token store, each made once and cached.

Whatever the kind (`--data FILE --kind lm|mlm|seq2seq|classify|tag|qa`), nothing holds the
file in memory: it is read in blocks to count its examples, to train the tokenizer(s) and
gather the labels of the training split, and to write the token store; training then reads
examples by index from the memory map, and held-out examples (for the metrics of the model's
predictions) are read back from the file only when a kind needs them. Each step's result is
cached in the source file's folder under `cache_root()`, named by the file's content hash, so
a second run, `--resume` and `evaluate` start at once, and a changed file gets a folder of its
own. The splits, tokenizers, labels and ids equal those of reading the file with the kind's
`read`, `split_examples` and the kind's `encode`.

The source file, its split, tokenizers and labels are `corpus_source`'s; the token store is made here.
Text for language models is encoded in blocks by `BatchEncoder`; other kinds' examples through
their own `store_rows` (the code `encode` runs), a few thousand at a time.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from glassformer.data.lines import BLOCK_BYTES, line_blocks
from glassformer.data.prepared import TokenStore, open_store, write_store
from glassformer.data.split import Splits
from glassformer.data.streamed import LazyExamples, chunked
from glassformer.errors import DataError, UserError
from glassformer.framing import Framing
from glassformer.tasks import KINDS
from glassformer.text import Tokenizer
from glassformer.text.batch_encode import BatchEncoder, tokenizer_digest
from glassformer.train.batches import Encoded
from glassformer.train.corpus_source import (ANNOUNCE_BYTES, CHUNK, Source, corpus_tokenizers, file_labels, reader_of,
                                             scan_source, split_indices)

TEXT_BLOCK_BYTES = BLOCK_BYTES
"""Text for language models is encoded this many bytes of lines at a time."""
_UNLIMITED = 1 << 30
"""The max_len examples are stored for when their rows do not depend on it: none is cut or skipped."""


# The token store -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Encoding:
    """Everything the ids of a prepared corpus depend on besides the file: kind, tokenizers, framing, labels."""

    kind: str
    source: Tokenizer
    target: Tokenizer
    framing: Framing
    labels: tuple[str, ...] = ()
    max_len: int | None = None
    """The model's max_len, for kinds whose rows depend on it (`Kind.stored_for_max_len`); else None."""

    @property
    def is_text(self) -> bool:
        return reader_of(self.kind) == "text"

    def digest(self) -> str:
        if self.is_text:  # text for language models: the tokenizer and framing alone
            return tokenizer_digest(self.source, self.framing)
        document = {"kind": self.kind, "source": tokenizer_digest(self.source, self.framing),
                    "target": tokenizer_digest(self.target, self.framing), "labels": list(self.labels),
                    "max_len": self.max_len}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode("utf-8")).hexdigest()


def store_folder(source: Source, encoding: Encoding) -> Path:
    name = "tokens" if encoding.is_text else encoding.kind
    return source.folder / f"{name}-{encoding.digest()[:24]}"


def _flat(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(the rows' values one after another, each row's length)."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    return np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum())), lengths


def _example_blocks(source: Source, encoding: Encoding) -> Iterator[tuple]:
    """(ids, lengths, columns) of each chunk of a file's examples, as the kind's `store_rows` makes them."""
    kind = KINDS[encoding.kind]
    max_len = encoding.max_len if kind.stored_for_max_len else _UNLIMITED
    for examples in chunked(kind.stream(source.path), CHUNK):
        inputs, columns = kind.store_rows(examples, encoding.source, encoding.target, list(encoding.labels),
                                          encoding.framing, max_len)
        yield (*_flat(inputs), {name: _flat(rows) for name, rows in columns.items()}), len(examples)


def build_store(source: Source, encoding: Encoding, progress: bool = False) -> TokenStore:
    """Encode every example of the file into a token store, in blocks, with a progress bar
    (bytes for text, examples for the other kinds)."""
    bar = None
    if progress:
        from tqdm import tqdm

        total, unit = (source.size, "B") if encoding.is_text else (source.n_examples, " examples")
        bar = tqdm(total=total, unit=unit, unit_scale=True, desc="preparing", dynamic_ncols=True, mininterval=1.0)

    def blocks():
        if encoding.is_text:
            encoder = BatchEncoder(encoding.source, encoding.framing)
            pieces = ((encoder.encode_lines(lines), size) for lines, size in line_blocks(source.path, TEXT_BLOCK_BYTES))
        else:
            pieces = _example_blocks(source, encoding)
        for block, done in pieces:
            yield block
            if bar is not None:
                bar.update(done)

    start = time.perf_counter()
    meta = {"source": str(source.path), "source_sha256": source.sha256, "source_bytes": source.size,
            "tokenizer_sha256": encoding.digest(), "tokenizer_kind": encoding.source.kind, "kind": encoding.kind}
    columns = {} if encoding.is_text else KINDS[encoding.kind].store_columns(encoding.source, encoding.target,
                                                                             list(encoding.labels))
    try:
        store = write_store(store_folder(source, encoding), blocks(), encoding.source.vocab_size, meta, columns)
    finally:
        if bar is not None:
            bar.close()
    store.meta["seconds"] = time.perf_counter() - start
    return store


def prepared_store(source: Source, encoding: Encoding, progress: bool = False,
                   log: Callable[[str], None] = print) -> TokenStore:
    """The file's token store for this encoding: opened and checked when cached, else built now.

    A damaged or truncated store is reported in one line and built again.
    """
    folder, again = store_folder(source, encoding), False
    if (folder / "meta.json").is_file():
        try:
            store = open_store(folder)
            if store.meta.get("source_sha256") == source.sha256 and len(store) == source.n_examples:
                return store
            log(f"{folder}: does not match {source.path}; preparing it again")
        except DataError as error:
            log(f"{str(error).removesuffix('; prepare it again')}; preparing it again")
        again = True
    if again or source.size >= ANNOUNCE_BYTES:
        log(f"tokenizing {source.path} into {folder}")
    return build_store(source, encoding, progress)


# Splits of a prepared corpus --------------------------------------------------------------------------
def sample_positions(n: int, cap: int | None, seed: int) -> np.ndarray:
    """A fixed, seeded choice of at most `cap` of n positions, in order; all of them when cap is None, 0 or >= n."""
    if not cap or n <= cap:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.asarray(random.Random(seed).sample(range(n), cap), dtype=np.int64))


@dataclass
class Corpus:
    """A prepared corpus: training examples from one store, held-out ones from it or another.

    The stores of text for language models are opened at once; other kinds' by `open`, once the
    model's max_len is known (question answering stores rows cut to fit it).
    """

    kind: str
    tokenizer: Tokenizer
    stores: dict[str, TokenStore]
    indices: dict[str, np.ndarray]
    """Example indices of each split ("train", "valid", "test") into stores[split]."""
    target_tokenizer: Tokenizer | None = None
    labels: list[str] = field(default_factory=list)
    sources: dict[str, Source] = field(default_factory=dict)
    """The file each split's examples come from."""
    framing: Framing = field(default_factory=Framing)

    @property
    def target(self) -> Tokenizer:
        return self.target_tokenizer or self.tokenizer

    def encoding(self, max_len: int | None = None) -> Encoding:
        kind = KINDS[self.kind]
        return Encoding(self.kind, self.tokenizer, self.target, self.framing, tuple(self.labels),
                        max_len if kind.stored_for_max_len else None)

    def open(self, max_len: int, progress: bool = False, log: Callable[[str], None] = print) -> "Corpus":
        """Open (or prepare) the token stores of the splits for a model of this max_len."""
        if reader_of(self.kind) == "text":
            return self
        encoding, opened = self.encoding(max_len), {}
        for split in ("train", "valid", "test"):
            source = self.sources[split]
            if source.path not in opened:
                opened[source.path] = prepared_store(source, encoding, progress, log)
            self.stores[split] = opened[source.path]
        return self

    def encoded(self, split: str, max_len: int, cap: int | None = None, seed: int = 0) -> Encoded:
        """A split as the kind's `encode` would give it (examples longer than the model skipped),
        optionally a fixed sample of at most `cap` examples."""
        kind, store = KINDS[self.kind], self.stores[split]
        indices = self.indices[split]
        indices = indices[sample_positions(len(indices), cap, seed)]
        fits = kind.store_fits(store, indices, max_len)
        return kind.from_store(store, indices[fits], int((~fits).sum()))

    def examples(self, split: str, cap: int | None = None, seed: int = 0) -> LazyExamples | list:
        """The examples of a held-out split (or the same sample of it as `encoded`), read from the file
        when first asked for; none for text, whose kinds score no predictions."""
        if reader_of(self.kind) == "text":
            return []
        indices = self.indices[split]
        return self._read(split, indices[sample_positions(len(indices), cap, seed)])

    def leading_examples(self, split: str, n: int) -> LazyExamples:
        """The first n examples of a split, in split order, read from the file when first asked for."""
        return self._read(split, self.indices[split][:n])

    def _read(self, split: str, positions: np.ndarray) -> LazyExamples:
        path, kind = self.sources[split].path, KINDS[self.kind]
        return LazyExamples(lambda: kind.stream(path), positions)

    def held_out(self, cap: int | None, seed: int) -> Splits:
        """Splits with no training examples and the validation and test samples `encoded` takes."""
        return Splits([], self.examples("valid", cap, seed), self.examples("test", cap, seed + 1))

    def size(self, split: str) -> int:
        return len(self.indices[split])


def load_corpus(data: str, kind: str, seed: int, framing: Framing, valid_data: str | None = None,
                tokenizer: Tokenizer | None = None,
                tokenizer_kind: str = "word", vocab_size: int | None = None, lowercase: bool = False,
                progress: bool = False, log: Callable[[str], None] = print,
                target_tokenizer: Tokenizer | None = None, shared_vocab: bool = True) -> Corpus:
    """Split, tokenizers, labels and (for text) token store(s) of a data file (and a held-out file),
    each from the cache or made now.

    Args:
        framing: the run's framing of a text (`Framing()` for a new run's own tokenizer).
        tokenizer: the (source) tokenizer to encode with (a run being resumed or fine-tuned); None
            trains one of `tokenizer_kind` on the training split, as a new run does.
        target_tokenizer: with tokenizer, the run's target tokenizer (None: the same one).
        shared_vocab: kinds with two sides (seq2seq) train one tokenizer on both.
    """
    source = scan_source(data, log, kind)
    if valid_data is None:
        train, valid, test = split_indices(source, seed)
        held_out = source
    else:
        held_out = scan_source(valid_data, log, kind)
        if held_out.n_examples < 2:
            raise UserError(f"{valid_data}: needs at least 2 examples (half validation, half test)")
        train = np.arange(source.n_examples, dtype=np.int64)
        half = held_out.n_examples // 2
        valid, test = np.arange(half, dtype=np.int64), np.arange(half, held_out.n_examples, dtype=np.int64)
    split_name = "all" if valid_data is not None else f"seed{seed}"
    if tokenizer is None:
        tokenizer, target_tokenizer = corpus_tokenizers(source, train, kind, tokenizer_kind, vocab_size, lowercase,
                                                        shared_vocab, split_name, log)
    target_tokenizer = target_tokenizer or tokenizer
    labels = []
    if KINDS[kind].labelled:
        train_labels, held_out_labels = file_labels(source, kind, train, split_name)
        if held_out is not source:
            held_out_labels = set.union(*file_labels(held_out, kind, np.empty(0, np.int64), "held-out"))
        labels = KINDS[kind].labels_from(train_labels, held_out_labels)
    corpus = Corpus(kind, tokenizer, {}, {"train": train, "valid": valid, "test": test},
                    None if target_tokenizer is tokenizer else target_tokenizer, labels,
                    {"train": source, "valid": held_out, "test": held_out}, framing)
    if reader_of(kind) == "text":
        store = prepared_store(source, corpus.encoding(), progress, log)
        other = store if held_out is source else prepared_store(held_out, corpus.encoding(), progress, log)
        corpus.stores = {"train": store, "valid": other, "test": other}
    return corpus


def encoded_file(path: str, kind: str, tokenizer: Tokenizer, max_len: int, framing: Framing, progress: bool = False,
                 log: Callable[[str], None] = print) -> Encoded:
    """Every line of a text file as an encoded split, through its prepared store (made now if need be)."""
    source = scan_source(path)
    store = prepared_store(source, Encoding(kind, tokenizer, tokenizer, framing), progress, log)
    corpus = Corpus(kind, tokenizer, {"test": store}, {"test": np.arange(len(store), dtype=np.int64)})
    return corpus.encoded("test", max_len)
