"""The interface every tokenizer offers, and the fixed-table implementation word and char share."""

from __future__ import annotations

import json
from collections import Counter
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, normalizers

from glassformer.errors import ConfigError
from glassformer.text.specials import END_ID, MASK_ID, PAD_ID, SPECIALS, START_ID, UNK, UNK_ID

_LOWERCASE = normalizers.Lowercase()


def lowercase(text: str) -> str:
    """text lowercased as the `tokenizers` library does it, so that a tokenizer.json agrees with us:
    character by character (Python's str.lower would end a Greek word with a final sigma)."""
    return _LOWERCASE.normalize_str(text)


# Written into every saved tokenizer so that load_tokenizer can tell our files from others.
FILE_FORMAT = "glassformer-tokenizer"
FILE_VERSION = 1


class Tokenizer(ABC):
    """Text to pieces to ids and back; every kind has the same special roles and methods."""

    kind: str
    pad_id: int
    start_id: int
    end_id: int
    unk_id: int
    mask_id: int

    @property
    def special_ids(self) -> frozenset[int]:
        """The ids playing a special role (pad, start, end, unk, mask)."""
        return frozenset((self.pad_id, self.start_id, self.end_id, self.unk_id, self.mask_id))

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """How many ids there are; every id is below this."""

    @property
    @abstractmethod
    def tokens(self) -> list[str]:
        """Every token, in id order."""

    @abstractmethod
    def tokenize(self, text: str) -> list[str]:
        """Split text into the pieces this tokenizer knows, adding no special tokens."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Map text to ids, adding no special tokens; unknown pieces become unk_id."""

    @abstractmethod
    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Map ids back to text, leaving out special tokens when skip_special is true."""

    @abstractmethod
    def id_to_token(self, i: int) -> str:
        """The token with id i; IndexError when i is outside the vocabulary."""

    @abstractmethod
    def token_to_id(self, token: str) -> int:
        """The id of token, or unk_id when the vocabulary lacks it."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer, as JSON-ready data with a "kind" field."""

    def save(self, path: str | Path) -> None:
        """Write this tokenizer to one UTF-8 JSON file that load_tokenizer reads back.

        Args:
            path: the file to write; its folder must exist.
        """
        data = {"format": FILE_FORMAT, "version": FILE_VERSION, **self.to_dict()}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, vocab_size={self.vocab_size})"


class VocabTokenizer(Tokenizer):
    """A tokenizer whose vocabulary is a fixed list of tokens, the five specials first.

    Subclasses say how text splits into pieces (_split) and how pieces join back (separator).
    """

    separator: str = " "
    pad_id, start_id, end_id, unk_id, mask_id = PAD_ID, START_ID, END_ID, UNK_ID, MASK_ID

    def __init__(self, tokens: Sequence[str], lowercase: bool = False):
        """Build from a token list.

        Args:
            tokens: every token in id order; the first five must be SPECIALS.
            lowercase: whether text is lowercased before it is split.
        """
        tokens = list(tokens)
        if tokens[: len(SPECIALS)] != SPECIALS:
            raise ConfigError(
                f"a {self.kind} vocabulary must start with {', '.join(SPECIALS)}, "
                f"found {', '.join(map(str, tokens[:len(SPECIALS)]))}"
            )
        self._ids = {t: i for i, t in enumerate(tokens)}
        if len(self._ids) != len(tokens):
            dup = next(t for t, n in Counter(tokens).items() if n > 1)
            raise ConfigError(f"the {self.kind} vocabulary lists {dup!r} twice")
        self._tokens = tokens
        self.lowercase = lowercase

    @abstractmethod
    def _split(self, text: str) -> list[str]:
        """Split already-normalised text into pieces."""

    @abstractmethod
    def pre_tokenizer(self):
        """The `tokenizers` pre-tokenizer that splits text exactly as _split does."""

    @abstractmethod
    def hf_decoder(self):
        """The `tokenizers` decoder that joins pieces as decode does (None: with spaces)."""

    def to_hf_tokenizer(self) -> HFTokenizer:
        """This vocabulary as a `tokenizers.Tokenizer` (a WordLevel model) that encodes every text
        to the same ids, so that `transformers.PreTrainedTokenizerFast` can read it; the five
        specials are its special tokens, at the same ids."""
        hf = HFTokenizer(models.WordLevel(dict(self._ids), unk_token=UNK))
        if self.lowercase:
            hf.normalizer = normalizers.Lowercase()
        hf.pre_tokenizer = self.pre_tokenizer()
        decoder = self.hf_decoder()
        if decoder is not None:
            hf.decoder = decoder
        hf.add_special_tokens(SPECIALS)
        return hf

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    def tokenize(self, text: str) -> list[str]:
        return self._split(lowercase(text) if self.lowercase else text)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(piece, UNK_ID) for piece in self.tokenize(text)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        # int() so that tensors and numpy arrays of ids decode too.
        ids = [int(i) for i in ids]
        if skip_special:  # an unknown piece stays visible as <unk>: dropping it would change the text silently
            ids = [i for i in ids if i >= len(SPECIALS) or i == UNK_ID]
        return self.separator.join(self.id_to_token(i) for i in ids)

    def id_to_token(self, i: int) -> str:
        i = int(i)
        if not 0 <= i < len(self._tokens):
            last = len(self._tokens) - 1
            raise IndexError(f"token id {i} is outside the vocabulary (ids 0..{last})")
        return self._tokens[i]

    def token_to_id(self, token: str) -> int:
        return self._ids.get(token, UNK_ID)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lowercase": self.lowercase, "tokens": self._tokens}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VocabTokenizer:
        """Rebuild from the output of to_dict."""
        tokens, lowercase = data["tokens"], data.get("lowercase", False)
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ConfigError('"tokens" must be a list of strings')
        if not isinstance(lowercase, bool):
            raise ConfigError('"lowercase" must be true or false')
        return cls(tokens, lowercase=lowercase)
