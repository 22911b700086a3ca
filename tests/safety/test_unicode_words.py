"""The word tokenizer keeps whole user-perceived characters, and decoding shows unknown words as <unk>."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glassformer.text.char import CharTokenizer
from glassformer.text.word import WordTokenizer, graphemes, split_words

E_ACUTE = "e\u0301"  # e + COMBINING ACUTE ACCENT
THUMBS_MEDIUM = "\U0001F44D\U0001F3FD"  # thumbs up + skin tone
FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # man ZWJ woman ZWJ girl
FLAGS = "\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA"  # FR DE
NAMASTE = "\u0928\u092e\u0938\u094d\u0924\u0947"  # Devanagari, with a virama and a spacing vowel sign


def test_grapheme_clusters_stay_whole():
    text = f"caf{E_ACUTE} au lait, {THUMBS_MEDIUM}{FAMILY} {FLAGS} didn't {NAMASTE}!"
    assert split_words(text) == [f"caf{E_ACUTE}", "au", "lait", ",", THUMBS_MEDIUM, FAMILY, "\U0001F1EB\U0001F1F7",
                                 "\U0001F1E9\U0001F1EA", "didn't", NAMASTE, "!"]
    assert graphemes(FAMILY + E_ACUTE) == [FAMILY, E_ACUTE]


@pytest.mark.parametrize("text", [f"le caf{E_ACUTE} est bon", f"bravo {THUMBS_MEDIUM} !", f"la {FAMILY} est l{E_ACUTE}",
                                  f"{FLAGS} {NAMASTE}"])
def test_word_tokenizer_round_trips_any_unicode_it_knows(text):
    tokenizer = WordTokenizer.train([text])
    assert 3 not in tokenizer.encode(text)
    decoded = tokenizer.decode(tokenizer.encode(text))
    assert decoded == " ".join(split_words(text)) and split_words(decoded) == split_words(text)
    assert [c for c in graphemes(decoded) if c != " "] == [c for c in graphemes(text) if c != " "]


def test_ascii_splits_as_before():
    old = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
    text = "I didn't know -- 'twas 3.5 o'clock, said_she (really?) ''a'' b'"
    assert split_words(text) == old.findall(text)


def test_decoding_shows_unknown_words_as_unk():
    tokenizer = WordTokenizer.train(["the cat sat"])
    assert tokenizer.decode(tokenizer.encode("the zebra sat")) == "the <unk> sat"
    assert tokenizer.decode([1, 5, 0, 2]) == tokenizer.decode([5])  # the other specials are still left out
    assert CharTokenizer.train(["abc"]).decode(CharTokenizer.train(["abc"]).encode("abz")) == "ab<unk>"


def _blank(text: str) -> bool:
    """Whitespace as Unicode's White_Space (the split's regex engine) has it: Python's isspace
    also counts the separators U+001C-U+001F, which the split keeps as pieces."""
    return text.isspace() and not any("\x1c" <= c <= "\x1f" for c in text)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_splitting_never_loses_or_splits_a_character(text):
    pieces = split_words(text)
    assert "".join(pieces) == "".join(c for c in graphemes(text) if not _blank(c))
    assert not any(_blank(piece) or not piece for piece in pieces)
    assert split_words(" ".join(pieces)) == pieces  # what decoding prints splits back the same
