"""Word-level tokenizer: one id per word or punctuation mark, as the articles count a vocabulary."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from glassformer.errors import ConfigError
from glassformer.text.base import VocabTokenizer
from glassformer.text.specials import SPECIALS

# A word is a run of letters/digits/underscores, keeping inner apostrophes ("didn't");
# every other non-space character is a piece of its own, so "tired." -> "tired", ".".
_PIECE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_WORD_START = re.compile(r"\w")
ZWJ = "\u200d"


def split_words(text: str) -> list[str]:
    """Split text into words and single punctuation marks (or emoji), dropping whitespace.

    Outside ASCII the pieces are made of whole user-perceived characters (grapheme clusters), so
    an accent written as a combining mark stays on its letter and an emoji keeps its skin tone
    and zero-width-joined parts: decoding (pieces joined by spaces) gives every character back.
    """
    if text.isascii():
        return _PIECE.findall(text)
    pieces, word = [], []
    clusters = graphemes(text)
    for i, cluster in enumerate(clusters):
        if _WORD_START.match(cluster):
            word.append(cluster)
        elif cluster == "'" and word and i + 1 < len(clusters) and _WORD_START.match(clusters[i + 1]):
            word.append(cluster)
        else:
            if word:
                pieces.append("".join(word))
                word = []
            if not cluster.isspace():
                pieces.append(cluster)
    if word:
        pieces.append("".join(word))
    return pieces


def graphemes(text: str) -> list[str]:
    """text cut into grapheme clusters, as Unicode's rules (UAX #29) join the common cases:
    a character with its combining marks, variation selectors and emoji modifiers, emoji
    joined by zero-width joiners, and regional-indicator pairs (flags)."""
    clusters: list[str] = []
    for ch in text:
        if clusters and _continues(clusters[-1], ch):
            clusters[-1] += ch
        else:
            clusters.append(ch)
    return clusters


def _is_extend(ch: str) -> bool:
    code = ord(ch)
    return (unicodedata.category(ch) in ("Mn", "Me", "Mc") or ch == ZWJ or 0xFE00 <= code <= 0xFE0F
            or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F)


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _continues(cluster: str, ch: str) -> bool:
    if ch in "\r\n" or cluster[-1] in "\r\n":
        return cluster == "\r" and ch == "\n"
    if _is_extend(ch):
        return True
    if cluster.endswith(ZWJ):
        return unicodedata.category(ch) == "So"  # emoji joined into one: man ZWJ woman ZWJ girl
    return _is_regional(ch) and len(cluster) == 1 and _is_regional(cluster)


class WordTokenizer(VocabTokenizer):
    """Words and punctuation marks as tokens; decode joins them with single spaces."""

    kind = "word"
    separator = " "

    def _split(self, text: str) -> list[str]:
        return split_words(text)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        lowercase: bool = False,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> WordTokenizer:
        """Count the words of texts and keep them, most frequent first, ties alphabetical.

        Args:
            texts: the training corpus, one string per sentence or line.
            lowercase: lowercase text before splitting, here and when encoding.
            min_freq: drop words seen fewer times than this.
            max_size: cap on the vocabulary size, the five specials included.
        """
        if min_freq < 1:
            raise ConfigError(f"min_freq must be at least 1, got {min_freq}")
        if max_size is not None and max_size < len(SPECIALS):
            raise ConfigError(
                f"max_size must be at least {len(SPECIALS)} (the specials), got {max_size}"
            )
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(split_words(text.lower() if lowercase else text))
        # Sorting on (count, word) rather than first appearance makes the ids independent
        # of corpus order, so the same corpus shuffled gives the same vocabulary.
        kept = [w for w, c in counts.items() if c >= min_freq]
        words = sorted(kept, key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max_size - len(SPECIALS)]
        return cls(SPECIALS + words, lowercase=lowercase)
