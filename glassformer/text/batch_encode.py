"""Encode a block of lines at once into one array of framed ids, as `sequence_ids` gives line by line.

Each kind takes its fastest exact path: subword tokenizers go through the `tokenizers` library's
parallel `encode_batch` (glassformer's own BPE and WordPiece a few dozen lines per text, joined by
the end token, which the library cuts at before anything else: it makes one object per text, and
one per line costs more than the encoding itself); the word tokenizer runs its own regular
expression once over the whole block (a newline marks where a line ends) and looks the pieces up
in one pass; the char tokenizer maps code points through a lookup table in numpy. A block holding
the literal "<mask>" (which `sequence_ids` turns into the mask id) is encoded line by line with
`sequence_ids` itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from itertools import chain, repeat

import numpy as np
from tokenizers import models, normalizers, pre_tokenizers

from glassformer.framing import MASK_TEXT, Framing, sequence_ids
from glassformer.text.base import Tokenizer, lowercase
from glassformer.text.char import CharTokenizer
from glassformer.text.specials import SPECIALS
from glassformer.text.subword import SubwordTokenizer
from glassformer.text.word import PIECE, WordTokenizer, plain_ascii, split_words

# word.py's pattern, plus the newline that ends each line of a block.
_PIECE_OR_NEWLINE = re.compile(PIECE.pattern + r"|\n")
_LINE_END = -1
LINES_PER_TEXT = 64
"""Lines joined into one text for the `tokenizers` library (measured on 4 MB of lines, BPE of 8,000:
64 lines a text take 40% less CPU than one line a text, 512 no less than 64)."""


def line_separator(tokenizer: SubwordTokenizer) -> str | None:
    """The end token when lines joined by it encode as each line alone with its id between them, else None.

    So it is for glassformer's own BPE and WordPiece: the specials are the only added tokens, so the
    library cuts the text at each of them before anything else, then lowercases (or not), splits
    on whitespace and punctuation and encodes each piece between them on its own. A foreign
    tokenizer may treat the pieces after the first differently (a prefix space only at the start,
    a post-processor), so it encodes line by line.
    """
    hf = tokenizer.hf_tokenizer
    if not (isinstance(hf.pre_tokenizer, (pre_tokenizers.Whitespace, pre_tokenizers.BertPreTokenizer))
            and (hf.normalizer is None or isinstance(hf.normalizer, normalizers.Lowercase))
            and hf.post_processor is None
            and (isinstance(hf.model, models.WordPiece) or isinstance(hf.model, models.BPE) and hf.model.dropout is None)):
        return None
    added = hf.get_added_tokens_decoder()
    end = added.get(tokenizer.end_id)
    if sorted(t.content for t in added.values()) != sorted(SPECIALS) or end is None or not end.special or any(
            (end.lstrip, end.rstrip, end.single_word, end.normalized)):
        return None
    return end.content


def frame(body: np.ndarray, lengths: np.ndarray, prefix: tuple[int, ...], suffix: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(prefix + ids + suffix of every line in one int64 array, the framed length of each line).

    Args:
        body: the lines' ids one after another, unframed.
        lengths: how many of them belong to each line.
    """
    framed = lengths + len(prefix) + len(suffix)
    ends = np.cumsum(framed)
    starts = ends - framed
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.int64)
    is_body = np.ones(out.shape, dtype=bool)
    for j, token in enumerate(prefix):
        out[starts + j], is_body[starts + j] = token, False
    for j, token in enumerate(suffix):
        out[ends - len(suffix) + j], is_body[ends - len(suffix) + j] = token, False
    out[is_body] = body
    return out, framed


class BatchEncoder:
    """`sequence_ids` (start, text, end as framing says) for many lines at once.

    Args:
        tokenizer: any glassformer tokenizer.
        framing: the run's framing (the default for models trained here).
    """

    def __init__(self, tokenizer: Tokenizer, framing: Framing):
        self.tokenizer, self.framing = tokenizer, framing
        self.prefix = (tokenizer.start_id,) if framing.sequence_prefix is None else tuple(framing.sequence_prefix)
        self.suffix = (tokenizer.end_id,) if framing.sequence_suffix is None else tuple(framing.sequence_suffix)
        self._separator = line_separator(tokenizer) if isinstance(tokenizer, SubwordTokenizer) else None
        if isinstance(tokenizer, WordTokenizer):
            self._vocab = {token: i for i, token in enumerate(tokenizer.tokens)}
            self._vocab["\n"] = _LINE_END
        elif isinstance(tokenizer, CharTokenizer):
            codes = [ord(t) for t in tokenizer.tokens if len(t) == 1]
            self._table = np.full(max(codes + [ord("\n")]) + 1, tokenizer.unk_id, dtype=np.int64)
            for i, token in enumerate(tokenizer.tokens):
                if len(token) == 1:
                    self._table[ord(token)] = i
            self._table[ord("\n")] = _LINE_END

    def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(framed ids of the lines one after another, framed length of each line).

        Args:
            lines: non-empty lines with no surrounding whitespace (as `read_text` gives them).
        """
        if not lines:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        masked = [i for i, line in enumerate(lines) if MASK_TEXT in line]
        if masked:
            return self._with_masks(lines, masked)
        tokenizer = self.tokenizer
        if isinstance(tokenizer, SubwordTokenizer):
            hf = tokenizer.hf_tokenizer
            # encode_batch_fast (tokenizers >= 0.20) skips the character offsets nobody reads here.
            batch = getattr(hf, "encode_batch_fast", hf.encode_batch)
            separator = self._separator
            if separator is not None and not any(separator in line for line in lines):
                texts = [separator.join(lines[i : i + LINES_PER_TEXT]) + separator
                         for i in range(0, len(lines), LINES_PER_TEXT)]
                ids = np.fromiter(chain.from_iterable(e.ids for e in batch(texts, add_special_tokens=False)),
                                  dtype=np.int64)
                ends = np.flatnonzero(ids == tokenizer.end_id)
                if len(ends) == len(lines):  # else some line made the end id itself: line by line below
                    return frame(ids[ids != tokenizer.end_id], np.diff(ends, prepend=-1) - 1, self.prefix, self.suffix)
            id_lists = [e.ids for e in batch(lines, add_special_tokens=False)]
            lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
            body = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=int(lengths.sum()))
            return frame(body, lengths, self.prefix, self.suffix)
        if isinstance(tokenizer, (WordTokenizer, CharTokenizer)):
            block = "\n".join(lines) + "\n"
            if tokenizer.lowercase:
                block = lowercase(block)  # as the tokenizer lowercases (the `tokenizers` library's way)
            if isinstance(tokenizer, WordTokenizer):
                if plain_ascii(block.replace("\n", " ")):
                    pieces = _PIECE_OR_NEWLINE.findall(block)
                else:  # outside ASCII the split is the tokenizers library's (split_words), line by line
                    pieces = [p for line in block.split("\n")[:-1] for p in (*split_words(line), "\n")]
                ids = np.fromiter(map(self._vocab.get, pieces, repeat(tokenizer.unk_id)), dtype=np.int64, count=len(pieces))
            else:
                codes = np.frombuffer(block.encode("utf-32-le"), dtype=np.uint32)
                ids = np.full(codes.shape, tokenizer.unk_id, dtype=np.int64)
                known = codes < len(self._table)
                ids[known] = self._table[codes[known]]
            ends = np.flatnonzero(ids == _LINE_END)
            lengths = np.diff(ends, prepend=-1) - 1
            return frame(ids[ids != _LINE_END], lengths, self.prefix, self.suffix)
        return self._one_by_one(lines)

    def _with_masks(self, lines: list[str], masked: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The lines holding "<mask>" one by one through `sequence_ids`, the others at once."""
        masked_set = set(masked)
        plain = [line for i, line in enumerate(lines) if i not in masked_set]
        ids, lengths = self.encode_lines(plain) if plain else (np.empty(0, np.int64), np.empty(0, np.int64))
        rows = iter(np.split(ids, np.cumsum(lengths)[:-1]) if len(plain) else [])
        pieces = [np.asarray(sequence_ids(self.tokenizer, line, self.framing), dtype=np.int64) if i in masked_set
                  else next(rows) for i, line in enumerate(lines)]
        return np.concatenate(pieces), np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))

    def _one_by_one(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = [sequence_ids(self.tokenizer, line, self.framing) for line in lines]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        return np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum())), lengths


def tokenizer_digest(tokenizer: Tokenizer, framing: Framing) -> str:
    """SHA-256 of the tokenizer's canonical JSON and the framing: equal digests, equal ids for every text."""
    document = {"tokenizer": tokenizer.to_dict(), "framing": framing.__dict__}
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, default=list)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
