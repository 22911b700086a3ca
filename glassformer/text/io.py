"""Dispatch on tokenizer kind: train a new tokenizer, or load any saved one from its JSON file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from glassformer.errors import ConfigError, DataError
from glassformer.files import read_bytes
from glassformer.text.base import FILE_FORMAT, Tokenizer
from glassformer.text.char import CharTokenizer
from glassformer.text.subword import SubwordTokenizer
from glassformer.text.word import WordTokenizer

KINDS = ("word", "char", "bpe", "wordpiece")

# The vocabulary size a subword tokenizer aims for when none is given; small, because the
# built-in corpora are small.
DEFAULT_SUBWORD_VOCAB = 1000


def train_tokenizer(
    kind: str, texts: Iterable[str], vocab_size: int | None = None, lowercase: bool = False
) -> Tokenizer:
    """Train a tokenizer of the given kind on texts.

    Args:
        kind: "word", "char", "bpe" or "wordpiece".
        texts: the training corpus.
        vocab_size: cap (word, char) or target (bpe, wordpiece) size, specials included;
            None means no cap, or DEFAULT_SUBWORD_VOCAB for subword kinds.
        lowercase: lowercase text before splitting, in training and encoding.
    """
    if kind == "word":
        return WordTokenizer.train(texts, lowercase=lowercase, max_size=vocab_size)
    if kind == "char":
        return CharTokenizer.train(texts, lowercase=lowercase, max_size=vocab_size)
    if kind in ("bpe", "wordpiece"):
        size = DEFAULT_SUBWORD_VOCAB if vocab_size is None else vocab_size
        return SubwordTokenizer.train(texts, size, model=kind, lowercase=lowercase)
    raise ConfigError(f"unknown tokenizer kind {kind!r} (expected one of: {', '.join(KINDS)})")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read back a tokenizer written by Tokenizer.save, whatever its kind.

    Args:
        path: the JSON file.
    """
    name = str(path)
    raw = read_bytes(path, "a tokenizer JSON file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{name}: not a tokenizer file (not valid UTF-8)") from None
    except json.JSONDecodeError as e:
        reason = f"invalid JSON at line {e.lineno}: {e.msg}"
        raise DataError(f"{name}: not a tokenizer file ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT or "kind" not in data:
        raise DataError(
            f'{name}: not a glassformer tokenizer file (expected a JSON object with '
            f'"format": "{FILE_FORMAT}" and a "kind")'
        )
    kind = data["kind"]
    if kind == "word":
        cls = WordTokenizer
    elif kind == "char":
        cls = CharTokenizer
    elif "hf" in data:
        cls = SubwordTokenizer  # bpe, wordpiece, or a wrapped foreign model kind
    else:
        expected = ", ".join(KINDS)
        raise DataError(f"{name}: unknown tokenizer kind {kind!r} (expected one of: {expected})")
    try:
        return cls.from_dict(data)
    except KeyError as e:
        raise DataError(f"{name}: broken {kind} tokenizer (missing field {e.args[0]!r})") from None
    except Exception as e:  # the tokenizers library raises plain Exception on a bad model
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{name}: broken {kind} tokenizer ({reason})") from None
