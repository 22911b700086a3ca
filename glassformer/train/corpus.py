"""A user's text file as a prepared corpus: split, tokenizer and token store, each made once and cached.

For language-model and masked-LM data (`--data FILE --kind lm|mlm`) nothing holds the text in
memory: the file is read in blocks to count its lines, to train the tokenizer on the training
split and to write the token store; training then reads examples from the memory map. Each
step's result is cached in the source file's folder under `cache_root()`, named by the file's
content hash, so a second run, `--resume` and `evaluate` start at once, and a changed file gets
a folder of its own. The splits and ids equal those of reading the file with `read_text`,
`split_examples` and `encode_examples`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glassformer.data.lines import file_digest, line_blocks
from glassformer.data.prepared import TokenStore, cache_root, open_store, write_store
from glassformer.data.split import split_examples
from glassformer.errors import DataError, UserError
from glassformer.files import atomic_write, atomic_write_text
from glassformer.framing import Framing
from glassformer.tasks import KINDS
from glassformer.text import Tokenizer, load_tokenizer, train_tokenizer
from glassformer.text.batch_encode import BatchEncoder, tokenizer_digest
from glassformer.train.batches import Encoded

_SOURCE_FILE = "source.json"


def uses_prepared_data(data: str | None, kind: str | None) -> bool:
    """Whether training on `data` goes through a prepared corpus (text files for lm and mlm)."""
    return data is not None and isinstance(kind, str) and kind in KINDS and KINDS[kind].prepared_text


# The source file --------------------------------------------------------------------------------
@dataclass
class Source:
    """A text file, known by its content: hash, size, count of non-blank lines, its cache folder."""

    path: Path
    sha256: str
    size: int
    n_examples: int
    folder: Path


def scan_source(path: str | Path, log: Callable[[str], None] = lambda line: None) -> Source:
    """Hash the file; count its lines the first time this content is seen (later, from the cache)."""
    sha, size = file_digest(path)
    folder = cache_root() / sha[:24]
    record = folder / _SOURCE_FILE
    if record.is_file():
        try:
            known = json.loads(record.read_text(encoding="utf-8"))
            if known.get("sha256") == sha:
                return Source(Path(path), sha, size, int(known["n_examples"]), folder)
        except (json.JSONDecodeError, KeyError, ValueError, TypeError):
            pass
    log(f"preparing {path} ({size / 1e6:,.1f} MB, new to the cache {cache_root()}): counting its lines")
    n = sum(len(lines) for lines, _ in line_blocks(path))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps({"sha256": sha, "size": size, "n_examples": n, "first_seen_as": str(path)}) + "\n")
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


# The tokenizer ------------------------------------------------------------------------------------
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
            kept = [line for line, k in zip(lines, keep) if k]
            if self.joined:
                if kept:
                    yield "\n".join(kept)
            else:
                yield from kept


def corpus_tokenizer(source: Source, train: np.ndarray, kind: str, vocab_size: int | None, lowercase: bool,
                     split_name: str, log: Callable[[str], None] = lambda line: None) -> Tokenizer:
    """The tokenizer trained on the training split, as `build_tokenizers` trains it; cached by its settings."""
    spec = f"{kind}-v{vocab_size}-{'lower' if lowercase else 'cased'}-{split_name}"
    cached = source.folder / f"tokenizer-{spec}.json"
    if cached.is_file():
        try:
            return load_tokenizer(cached)
        except DataError:
            pass
    log(f"training the {kind} tokenizer on the {len(train):,} training lines of {source.path}")
    texts = TrainingTexts(source.path, source.n_examples, train, joined=kind != "char")
    tokenizer = train_tokenizer(kind, texts, vocab_size, lowercase)
    atomic_write(cached, tokenizer.save)
    return tokenizer


# The token store -----------------------------------------------------------------------------------
def store_folder(source: Source, tokenizer: Tokenizer, framing: Framing) -> Path:
    return source.folder / f"tokens-{tokenizer_digest(tokenizer, framing)[:24]}"


def build_store(source: Source, tokenizer: Tokenizer, framing: Framing, progress: bool = False) -> TokenStore:
    """Encode every line of the file, framed as the run frames a text, into a token store, in blocks,
    with a progress bar in bytes."""
    encoder = BatchEncoder(tokenizer, framing)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=source.size, unit="B", unit_scale=True, desc="preparing", dynamic_ncols=True, mininterval=1.0)

    def blocks():
        for lines, size in line_blocks(source.path):
            yield encoder.encode_lines(lines)
            if bar is not None:
                bar.update(size)

    start = time.perf_counter()
    meta = {"source": str(source.path), "source_sha256": source.sha256, "source_bytes": source.size,
            "tokenizer_sha256": tokenizer_digest(tokenizer, framing), "tokenizer_kind": tokenizer.kind}
    try:
        store = write_store(store_folder(source, tokenizer, framing), blocks(), tokenizer.vocab_size, meta)
    finally:
        if bar is not None:
            bar.close()
    store.meta["seconds"] = time.perf_counter() - start
    return store


def prepared_store(source: Source, tokenizer: Tokenizer, framing: Framing, progress: bool = False,
                   log: Callable[[str], None] = print) -> TokenStore:
    """The file's token store for this tokenizer and framing: opened and checked when cached, else built now.

    A damaged or truncated store is reported in one line and built again.
    """
    folder = store_folder(source, tokenizer, framing)
    if (folder / "meta.json").is_file():
        try:
            store = open_store(folder)
            if store.meta.get("source_sha256") == source.sha256 and len(store) == source.n_examples:
                return store
            log(f"{folder}: does not match {source.path}; preparing it again")
        except DataError as error:
            log(f"{str(error).removesuffix('; prepare it again')}; preparing it again")
    log(f"tokenizing {source.path} into {folder}")
    return build_store(source, tokenizer, framing, progress)


# Splits of a prepared corpus --------------------------------------------------------------------------
class StoreRows:
    """Examples of a token store picked by index, read as lists of ids when asked for (what `Encoded.inputs` holds)."""

    def __init__(self, store: TokenStore, indices: np.ndarray):
        self.store, self.indices = store, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> list[int]:
        return self.store.example(int(self.indices[i]))


def sample_positions(n: int, cap: int | None, seed: int) -> np.ndarray:
    """A fixed, seeded choice of at most `cap` of n positions, in order; all of them when cap is None, 0 or >= n."""
    if not cap or n <= cap:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.asarray(random.Random(seed).sample(range(n), cap), dtype=np.int64))


@dataclass
class Corpus:
    """A prepared corpus: training examples from one store, held-out ones from it or another."""

    kind: str
    tokenizer: Tokenizer
    stores: dict[str, TokenStore]
    indices: dict[str, np.ndarray]
    """Example indices of each split ("train", "valid", "test") into stores[split]."""

    def encoded(self, split: str, max_len: int, cap: int | None = None, seed: int = 0) -> Encoded:
        """A split as the kind's `encode` would give it (examples longer than the model skipped),
        optionally a fixed sample of at most `cap` examples."""
        indices = self.indices[split]
        indices = indices[sample_positions(len(indices), cap, seed)]
        limit = max_len + KINDS[self.kind].extra_tokens
        fits = self.stores[split].lengths[indices] <= limit
        return Encoded(self.kind, StoreRows(self.stores[split], indices[fits]), None, int((~fits).sum()))

    def size(self, split: str) -> int:
        return len(self.indices[split])


def load_corpus(data: str, kind: str, seed: int, framing: Framing, valid_data: str | None = None,
                tokenizer: Tokenizer | None = None,
                tokenizer_kind: str = "word", vocab_size: int | None = None, lowercase: bool = False,
                progress: bool = False, log: Callable[[str], None] = print) -> Corpus:
    """Split, tokenizer and token store(s) of a text file (and a held-out file), each from the cache or made now.

    Args:
        framing: the run's framing of a text (`Framing()` for a new run's own tokenizer).
        tokenizer: the tokenizer to encode with (a run being resumed or fine-tuned); None trains
            one of `tokenizer_kind` on the training split, as a new run does.
    """
    source = scan_source(data, log)
    if valid_data is None:
        train, valid, test = split_indices(source, seed)
        held_out = None
    else:
        held_out = scan_source(valid_data, log)
        if held_out.n_examples < 2:
            raise UserError(f"{valid_data}: needs at least 2 examples (half validation, half test)")
        train = np.arange(source.n_examples, dtype=np.int64)
        half = held_out.n_examples // 2
        valid, test = np.arange(half, dtype=np.int64), np.arange(half, held_out.n_examples, dtype=np.int64)
    if tokenizer is None:
        split_name = "all" if valid_data is not None else f"seed{seed}"
        tokenizer = corpus_tokenizer(source, train, tokenizer_kind, vocab_size, lowercase, split_name, log)
    store = prepared_store(source, tokenizer, framing, progress, log)
    other = store if held_out is None else prepared_store(held_out, tokenizer, framing, progress, log)
    return Corpus(kind, tokenizer, {"train": store, "valid": other, "test": other},
                  {"train": train, "valid": valid, "test": test})


def encoded_file(path: str, kind: str, tokenizer: Tokenizer, max_len: int, framing: Framing, progress: bool = False,
                 log: Callable[[str], None] = print) -> Encoded:
    """Every line of a text file as an encoded split, through its prepared store (made now if need be)."""
    source = scan_source(path)
    store = prepared_store(source, tokenizer, framing, progress, log)
    corpus = Corpus(kind, tokenizer, {"test": store}, {"test": np.arange(len(store), dtype=np.int64)})
    return corpus.encoded("test", max_len)
