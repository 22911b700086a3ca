"""Subword tokenizer (BPE or WordPiece) on the `tokenizers` library: trained here, or foreign."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from glassformer.errors import ConfigError
from glassformer.text.base import Tokenizer
from glassformer.text.specials import ROLES, SPECIALS, UNK
from glassformer.text.word import plain_ascii

# When a foreign tokenizer has no token for a role, the role borrows the first of these
# that it does have. GPT-2, for instance, has only <|endoftext|> (given as start, end and
# unk): its pad becomes <|endoftext|> too, and its mask becomes that same token via unk.
FALLBACKS: dict[str, tuple[str, ...]] = {
    "pad": ("pad", "end", "unk"),
    "start": ("start", "end"),
    "end": ("end", "start"),
    "unk": ("unk", "end", "pad"),
    "mask": ("mask", "unk"),
}

# Marks the end of a word inside BPE pieces, so the decoder can put the spaces back.
_END_OF_WORD = "</w>"
# pre_tokenizers.Whitespace()'s pattern, for Python's re on plain ASCII text.
_WHITESPACE_WORD = re.compile(r"\w+|[^\w\s]+")
_SUBWORD_PREFIX = "##"
MODELS = ("bpe", "wordpiece")


def _edge_pieces(hf: HFTokenizer, texts: list[str], model: str) -> list[str]:
    """The marked single characters BPE/WordPiece training will create, sorted."""
    ends, inner = set(), set()  # the last characters of words (BPE), the others but the first (WordPiece)
    for text in texts:
        if hf.normalizer is not None:
            text = hf.normalizer.normalize_str(text)
        # Line by line: no word holds a line break, and the library splits a long text several
        # times slower than the same text line by line.
        for line in text.split("\n"):
            if model == "bpe" and plain_ascii(line):  # where Python's re splits as the Whitespace pre-tokenizer
                ends.update([word[-1] for word in _WHITESPACE_WORD.findall(line)])
                continue
            for word, _ in hf.pre_tokenizer.pre_tokenize_str(line):
                if model == "bpe":
                    ends.add(word[-1])
                else:
                    inner.update(word[1:])
    return sorted([c + _END_OF_WORD for c in ends] + [_SUBWORD_PREFIX + c for c in inner])


def _resolve_specials(hf: HFTokenizer, specials: Mapping[str, str | None]) -> dict[str, int]:
    """Turn a role -> token mapping into role -> id, applying FALLBACKS for missing roles."""
    unknown = sorted(set(specials) - set(ROLES))
    if unknown:
        expected = ", ".join(ROLES)
        raise ConfigError(f"unknown special role {unknown[0]!r} (expected some of: {expected})")
    given: dict[str, int] = {}
    for role, token in specials.items():
        if token is None:
            continue
        i = hf.token_to_id(token)
        if i is None:
            raise ConfigError(
                f"special token {token!r} (for {role}) is not in the tokenizer's vocabulary"
            )
        given[role] = i
    ids = {}
    for role in ROLES:
        found = [given[r] for r in FALLBACKS[role] if r in given]
        if not found:
            raise ConfigError(
                f"the tokenizer has no token for {role!r} nor for its fallbacks "
                f"({', '.join(FALLBACKS[role][1:])})"
            )
        ids[role] = found[0]
    return ids


class SubwordTokenizer(Tokenizer):
    """Wraps a `tokenizers.Tokenizer`, naming which of its tokens play the special roles."""

    def __init__(self, hf_tokenizer: HFTokenizer, specials: Mapping[str, str | None]):
        """Wrap hf_tokenizer (copied, with padding and truncation turned off).

        Args:
            hf_tokenizer: a trained `tokenizers.Tokenizer`, e.g. loaded from a model folder.
            specials: role ("pad", "start", "end", "unk", "mask") -> one of its tokens, or
                None when it has none; a missing role borrows another per FALLBACKS.
                BERT: {"pad": "[PAD]", "start": "[CLS]", "end": "[SEP]", "unk": "[UNK]",
                "mask": "[MASK]"}.
        """
        # A copy, so that switching off padding does not change the caller's object.
        self._hf = HFTokenizer.from_str(hf_tokenizer.to_str())
        self._hf.no_padding()
        self._hf.no_truncation()
        self._specials = {role: specials.get(role) for role in ROLES}
        ids = _resolve_specials(self._hf, specials)
        self.pad_id, self.start_id = ids["pad"], ids["start"]
        self.end_id, self.unk_id, self.mask_id = ids["end"], ids["unk"], ids["mask"]
        # "BPE" -> "bpe", "WordPiece" -> "wordpiece"; foreign Unigram/WordLevel keep their name.
        self.kind = type(self._hf.model).__name__.lower()
        vocab = self._hf.get_vocab(with_added_tokens=True)
        self._vocab_size = max(vocab.values()) + 1
        # Ids that no token claims (rare, in foreign files) read as "" in the list.
        table = [""] * self._vocab_size
        for token, i in vocab.items():
            table[i] = token
        self._tokens = table

    @property
    def hf_tokenizer(self) -> HFTokenizer:
        """The wrapped `tokenizers.Tokenizer` (padding and truncation off)."""
        return self._hf

    @property
    def specials(self) -> dict[str, str | None]:
        """The role -> token mapping this tokenizer was built with, before fallbacks."""
        return dict(self._specials)

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    def tokenize(self, text: str) -> list[str]:
        return self._hf.encode(text, add_special_tokens=False).tokens

    def encode(self, text: str) -> list[int]:
        return self._hf.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        ids = [int(i) for i in ids]
        for i in ids:
            self.id_to_token(i)  # raises a clear IndexError for an id out of range
        special = self.special_ids
        if skip_special:
            return self._hf.decode([i for i in ids if i not in special], skip_special_tokens=True)
        # Decode the runs between special tokens on their own and join with spaces, so
        # "<start>" does not glue onto the first word as the subword decoders would do.
        parts, run = [], []
        for i in ids:
            if i in special:
                if run:
                    parts.append(self._hf.decode(run, skip_special_tokens=False))
                    run = []
                parts.append(self._tokens[i])
            else:
                run.append(i)
        if run:
            parts.append(self._hf.decode(run, skip_special_tokens=False))
        return " ".join(parts)

    def id_to_token(self, i: int) -> str:
        i = int(i)
        if not 0 <= i < self._vocab_size:
            last = self._vocab_size - 1
            raise IndexError(f"token id {i} is outside the vocabulary (ids 0..{last})")
        return self._tokens[i]

    def token_to_id(self, token: str) -> int:
        i = self._hf.token_to_id(token)
        return self.unk_id if i is None else i

    def to_dict(self) -> dict[str, Any]:
        # The library's own JSON rides inside ours as an object, so the file stays one
        # readable JSON document.
        return {"kind": self.kind, "specials": self._specials, "hf": json.loads(self._hf.to_str())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubwordTokenizer:
        """Rebuild from the output of to_dict."""
        hf = HFTokenizer.from_str(json.dumps(data["hf"]))
        specials = data["specials"]
        if not isinstance(specials, dict):
            raise ConfigError('"specials" must map roles to tokens')
        return cls(hf, specials)

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, model: str = "bpe", lowercase: bool = False
    ) -> SubwordTokenizer:
        """Learn a BPE or WordPiece vocabulary from texts, with the five specials at ids 0..4.

        BPE splits on whitespace and punctuation first and marks word ends, so decode puts
        single spaces between words; WordPiece splits like BERT and marks word-inner pieces
        with "##". Training is deterministic for a given corpus.

        Args:
            texts: the training corpus.
            vocab_size: the target vocabulary size, specials included (a small corpus may
                stop short of it).
            model: "bpe" or "wordpiece".
            lowercase: lowercase text before splitting, here and when encoding.
        """
        if model not in MODELS:
            expected = ", ".join(MODELS)
            raise ConfigError(f"unknown subword model {model!r} (expected one of: {expected})")
        if vocab_size <= len(SPECIALS):
            raise ConfigError(
                f"vocab_size must exceed {len(SPECIALS)} (the specials), got {vocab_size}"
            )
        if iter(texts) is texts:
            texts = list(texts)  # read twice: once for the edge pieces, once to train (a collection that
            # iterates afresh each time, such as a file read in blocks, is read twice as it is)
        if model == "bpe":
            hf = HFTokenizer(models.BPE(unk_token=UNK, end_of_word_suffix=_END_OF_WORD))
            hf.pre_tokenizer = pre_tokenizers.Whitespace()
            hf.decoder = decoders.BPEDecoder(suffix=_END_OF_WORD)
        else:
            wordpiece = models.WordPiece(unk_token=UNK, continuing_subword_prefix=_SUBWORD_PREFIX)
            hf = HFTokenizer(wordpiece)
            hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            hf.decoder = decoders.WordPiece(prefix=_SUBWORD_PREFIX)
        if lowercase:
            hf.normalizer = normalizers.Lowercase()
        # The trainer gives marked single characters ("s</w>", "##s") ids in hash-map order,
        # which differs from process to process and, through tie-breaks between equally
        # frequent pairs, changes the merges. Registering them up front, sorted, fixes
        # their ids; they are then taken off the special list again.
        registered = SPECIALS + _edge_pieces(hf, texts, model)
        if model == "bpe":
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size,
                special_tokens=registered,
                end_of_word_suffix=_END_OF_WORD,
                show_progress=False,
            )
        else:
            trainer = trainers.WordPieceTrainer(
                vocab_size=vocab_size,
                special_tokens=registered,
                continuing_subword_prefix=_SUBWORD_PREFIX,
                show_progress=False,
            )
        hf.train_from_iterator(texts, trainer)
        data = json.loads(hf.to_str())
        data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in SPECIALS]
        hf = HFTokenizer.from_str(json.dumps(data))
        return cls(hf, dict(zip(ROLES, SPECIALS)))
