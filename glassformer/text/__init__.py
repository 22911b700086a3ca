"""Tokenizers (word, char, BPE, WordPiece) with the same special ids and one JSON file each."""

from glassformer.text.base import Tokenizer, VocabTokenizer
from glassformer.text.char import CharTokenizer
from glassformer.text.io import KINDS, load_tokenizer, train_tokenizer
from glassformer.text.specials import (
    END,
    END_ID,
    MASK,
    MASK_ID,
    PAD,
    PAD_ID,
    SPECIALS,
    START,
    START_ID,
    UNK,
    UNK_ID,
)
from glassformer.text.subword import SubwordTokenizer
from glassformer.text.word import WordTokenizer, split_words

__all__ = [
    "CharTokenizer",
    "END",
    "END_ID",
    "KINDS",
    "MASK",
    "MASK_ID",
    "PAD",
    "PAD_ID",
    "SPECIALS",
    "START",
    "START_ID",
    "SubwordTokenizer",
    "Tokenizer",
    "UNK",
    "UNK_ID",
    "VocabTokenizer",
    "WordTokenizer",
    "load_tokenizer",
    "split_words",
    "train_tokenizer",
]
