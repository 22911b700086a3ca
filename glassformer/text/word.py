"""Word-level tokenizer: one id per word or punctuation mark, as the articles count a vocabulary."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from tokenizers import Regex, pre_tokenizers

from glassformer.errors import ConfigError
from glassformer.text.base import VocabTokenizer
from glassformer.text.base import lowercase as lowercase_text  # the name lowercase is a parameter here
from glassformer.text.specials import SPECIALS

# A word is a run of letters/digits/underscores, keeping inner apostrophes ("didn't");
# every other non-space character is a piece of its own, so "tired." -> "tired", ".".
# The split is the `tokenizers` library's own pre-tokenizer (the pattern's matches kept, the
# rest dropped), so that a tokenizer.json written for transformers splits exactly as we do:
# Python's re and the library's regex engine disagree on what \w covers outside ASCII, and only
# the library's has \X, a user-perceived character (grapheme cluster). Pieces are made of whole
# clusters, so an accent written as a combining mark stays on its letter and an emoji keeps its
# skin tone and zero-width-joined parts: decoding (pieces joined by spaces) gives every
# character back.
WORD_PATTERN = r"(?:(?=\w)\X)+(?:'(?:(?=\w)\X)+)*|(?=[^\w\s])\X"


def word_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """The `tokenizers` pre-tokenizer that splits text into words as split_words does."""
    return pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True)


_SPLITTER = word_pre_tokenizer()
_CLUSTERS = pre_tokenizers.Split(Regex(r"\X"), behavior="isolated")
# On ASCII text every cluster is one character and the two engines agree, except that Python
# counts the separators \x1c-\x1f as whitespace; Python's re is 4x faster there, so plain ASCII
# text takes it.
PIECE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
_SEPARATORS = re.compile(r"[\x1c-\x1f]")


def plain_ascii(text: str) -> bool:
    """Whether text is split by PIECE exactly as by the library's pre-tokenizer (faster)."""
    return text.isascii() and not _SEPARATORS.search(text)


def split_words(text: str) -> list[str]:
    """Split text into words and single punctuation marks (or emoji), dropping whitespace."""
    if plain_ascii(text):
        return PIECE.findall(text)
    if "\n" in text:  # no piece holds a line break: plain ASCII lines take the faster way, and the
        # library splits a long text several times slower than the same text line by line
        return [piece for line in text.split("\n") for piece in split_words(line)]
    return [piece for piece, _ in _SPLITTER.pre_tokenize_str(text)]


def graphemes(text: str) -> list[str]:
    """text cut into grapheme clusters (Unicode's user-perceived characters), as split_words sees them."""
    return [piece for piece, _ in _CLUSTERS.pre_tokenize_str(text)]


class WordTokenizer(VocabTokenizer):
    """Words and punctuation marks as tokens; decode joins them with single spaces."""

    kind = "word"
    separator = " "

    def _split(self, text: str) -> list[str]:
        return split_words(text)

    def pre_tokenizer(self) -> pre_tokenizers.PreTokenizer:
        return word_pre_tokenizer()

    def hf_decoder(self) -> None:
        return None  # the library joins word-level pieces with single spaces, as decode does

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
            counts.update(split_words(lowercase_text(text) if lowercase else text))
        # Sorting on (count, word) rather than first appearance makes the ids independent
        # of corpus order, so the same corpus shuffled gives the same vocabulary.
        kept = [w for w, c in counts.items() if c >= min_freq]
        words = sorted(kept, key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max_size - len(SPECIALS)]
        return cls(SPECIALS + words, lowercase=lowercase)
