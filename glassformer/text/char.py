"""Character-level tokenizer: one id per character; decode joins them with nothing between."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Regex, decoders, pre_tokenizers

from glassformer.errors import ConfigError
from glassformer.text.base import VocabTokenizer
from glassformer.text.base import lowercase as lowercase_text  # the name lowercase is a parameter here
from glassformer.text.specials import SPECIALS


class CharTokenizer(VocabTokenizer):
    """Single characters (spaces included) as tokens."""

    kind = "char"
    separator = ""

    def _split(self, text: str) -> list[str]:
        return list(text)

    def pre_tokenizer(self) -> pre_tokenizers.PreTokenizer:
        # [\s\S] is any one code point, newlines included, as list(text) takes them.
        return pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")

    def hf_decoder(self) -> decoders.Decoder:
        return decoders.Fuse()  # characters join with nothing between, as decode does

    @classmethod
    def train(
        cls, texts: Iterable[str], lowercase: bool = False, max_size: int | None = None
    ) -> CharTokenizer:
        """Collect the characters of texts, sorted by code point after the specials.

        Args:
            texts: the training corpus.
            lowercase: lowercase text before splitting, here and when encoding.
            max_size: cap on the vocabulary size, specials included; the most frequent
                characters are kept (ties by code point), then sorted.
        """
        if max_size is not None and max_size < len(SPECIALS):
            raise ConfigError(
                f"max_size must be at least {len(SPECIALS)} (the specials), got {max_size}"
            )
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(lowercase_text(text) if lowercase else text)
        chars = sorted(counts)
        if max_size is not None and len(chars) > max_size - len(SPECIALS):
            kept = sorted(chars, key=lambda c: (-counts[c], c))[: max_size - len(SPECIALS)]
            chars = sorted(kept)
        return cls(SPECIALS + chars, lowercase=lowercase)
