"""Tokenizers: fixed special ids, round trips, unknown pieces, save/load, foreign wrapping."""

import json

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers

from glassformer.errors import ConfigError, DataError
from glassformer.text import (
    SPECIALS,
    CharTokenizer,
    SubwordTokenizer,
    WordTokenizer,
    load_tokenizer,
    train_tokenizer,
)

# Article C's sentences: 10 distinct words between them.
ARTICLE_C = ["when you play the game of thrones", "you win or you die"]

CORPUS = [
    "the small dog sees a red bird",
    "the animal didn't cross the street because it was too tired.",
    "unbelievable things happen when you play the game of thrones",
    "you win or you die",
    "a quick brown fox jumps over the lazy dog",
] * 4
SAMPLE = "the small dog sees a red bird"


def make(kind):
    return train_tokenizer(kind, CORPUS, vocab_size=120 if kind in ("bpe", "wordpiece") else None)


ALL_KINDS = ["word", "char", "bpe", "wordpiece"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_special_ids_are_fixed(kind):
    tok = make(kind)
    assert tok.kind == kind
    assert (tok.pad_id, tok.start_id, tok.end_id, tok.unk_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.tokens[:5] == SPECIALS == ["<pad>", "<start>", "<end>", "<unk>", "<mask>"]
    assert [tok.token_to_id(t) for t in SPECIALS] == [0, 1, 2, 3, 4]
    assert len(tok.tokens) == tok.vocab_size


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_round_trip(kind):
    tok = make(kind)
    ids = tok.encode(SAMPLE)
    assert tok.unk_id not in ids
    assert all(i >= 5 for i in ids)  # encode adds no specials
    assert tok.decode(ids) == SAMPLE
    assert tok.decode([1, *ids, 2, 0, 0]) == SAMPLE
    gap = "" if kind == "char" else " "
    assert tok.decode([1, *ids, 2], skip_special=False) == f"<start>{gap}{SAMPLE}{gap}<end>"
    assert [tok.id_to_token(i) for i in ids] == tok.tokenize(SAMPLE)


def test_word_split_and_decode():
    tok = WordTokenizer.train(CORPUS)
    assert tok.tokenize("it was too tired.") == ["it", "was", "too", "tired", "."]
    assert tok.tokenize("didn't") == ["didn't"]
    assert tok.decode(tok.encode("it was too tired.")) == "it was too tired ."
    assert tok.decode([1, tok.token_to_id("dog"), 2], skip_special=False) == "<start> dog <end>"


def test_char_decode_joins_with_nothing():
    tok = CharTokenizer.train(["ab ba", "cab"])
    assert tok.tokens == SPECIALS + [" ", "a", "b", "c"]
    assert tok.decode(tok.encode("a cab")) == "a cab"
    assert tok.encode("abz") == [6, 7, 3]


def test_word_vocab_of_article_c():
    tok = WordTokenizer.train(ARTICLE_C)
    assert tok.vocab_size == 10 + 5
    # "you" appears three times, so it gets the first free id; the rest sort alphabetically.
    assert tok.tokens[5:] == ["you", "die", "game", "of", "or", "play", "the", "thrones", "when", "win"]
    assert tok.encode("you die") == [5, 6]


def test_word_options():
    texts = ["The cat. the dog", "the cat"]
    assert WordTokenizer.train(texts).vocab_size == 5 + 5  # the, cat, ., The, dog
    lower = WordTokenizer.train(texts, lowercase=True)
    assert lower.tokens[5:] == ["the", "cat", ".", "dog"]
    assert lower.encode("THE DOG") == [5, 8]
    assert WordTokenizer.train(texts, lowercase=True, min_freq=2).tokens[5:] == ["the", "cat"]
    assert WordTokenizer.train(texts, lowercase=True, max_size=6).tokens == SPECIALS + ["the"]
    with pytest.raises(ConfigError):
        WordTokenizer.train(texts, max_size=3)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_unknown_becomes_unk(kind):
    tok = make(kind)
    assert tok.encode("日") == [3]
    assert tok.token_to_id("no-such-token-here") == 3
    if kind == "word":
        assert tok.encode("the zebra") == [tok.token_to_id("the"), 3]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_save_load_identical(kind, tmp_path):
    tok = make(kind)
    path = tmp_path / f"{kind}.json"
    tok.save(path)
    again = load_tokenizer(path)
    assert type(again) is type(tok) and again.kind == kind
    assert again.tokens == tok.tokens
    for text in CORPUS[:5] + ["日本 zebra!"]:
        assert again.encode(text) == tok.encode(text)
        assert again.decode(tok.encode(text)) == tok.decode(tok.encode(text))
    assert json.loads(path.read_text(encoding="utf-8"))["kind"] == kind


def test_subword_pieces_and_decode():
    words = ["unbelievable", "believe", "able", "unable", "believable", "un"] * 10
    tok = SubwordTokenizer.train(words, vocab_size=30, model="wordpiece")
    assert tok.tokenize("unbelievable unable") == ["un", "##believ", "##able", "un", "##able"]
    assert tok.decode(tok.encode("unbelievable unable")) == "unbelievable unable"
    bpe = SubwordTokenizer.train(words, vocab_size=26, model="bpe")
    assert bpe.tokenize("unbelievable unable") == ["un", "believable</w>", "un", "able</w>"]
    assert bpe.decode(bpe.encode("unbelievable unable")) == "unbelievable unable"


@pytest.mark.parametrize("model", ["bpe", "wordpiece"])
def test_subword_training_is_deterministic(model):
    a = SubwordTokenizer.train(CORPUS, vocab_size=90, model=model)
    b = SubwordTokenizer.train(list(reversed(CORPUS)), vocab_size=90, model=model)
    assert a.tokens == b.tokens
    assert a.vocab_size == 90


def test_subword_lowercase():
    tok = SubwordTokenizer.train(CORPUS, vocab_size=100, model="bpe", lowercase=True)
    assert tok.encode("THE Dog") == tok.encode("the dog")


def test_load_errors(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(DataError, match=f"^{missing}: no such file$"):
        load_tokenizer(missing)
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"kind": "word", "tok', encoding="utf-8")
    with pytest.raises(DataError, match=f"^{garbled}: not a tokenizer file"):
        load_tokenizer(garbled)
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(DataError, match=f"^{foreign}: not a glassformer tokenizer file"):
        load_tokenizer(foreign)
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"format": "glassformer-tokenizer", "version": 1, "kind": "word", "tokens": ["a"]}',
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=f"^{broken}: broken word tokenizer"):
        load_tokenizer(broken)
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"format": "glassformer-tokenizer", "kind": "morse"}', encoding="utf-8")
    with pytest.raises(DataError, match="unknown tokenizer kind 'morse'"):
        load_tokenizer(unknown)
    with pytest.raises(DataError, match="is a directory"):
        load_tokenizer(tmp_path)


def test_train_tokenizer_unknown_kind():
    with pytest.raises(ConfigError, match="expected one of: word, char, bpe, wordpiece"):
        train_tokenizer("sentencepiece", CORPUS)


def test_id_out_of_range():
    tok = WordTokenizer.train(ARTICLE_C)
    with pytest.raises(IndexError, match="token id 15 is outside the vocabulary"):
        tok.decode([15])


def _bert_like() -> HFTokenizer:
    """A tiny WordPiece tokenizer laid out like BERT's: [PAD]=0, [UNK]=100, [CLS]=101, ..."""
    vocab = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
    for i, w in enumerate(["hello", "world", "un", "##believ", "##able"]):
        vocab[w] = 200 + i
    for i in range(1, 100):
        vocab[f"[unused{i}]"] = i
    for i in range(104, 200):
        vocab[f"[unused{i}]"] = i
    hf = HFTokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.decoder = decoders.WordPiece()
    hf.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return hf


def test_wrap_foreign_tokenizer(tmp_path):
    specials = {"pad": "[PAD]", "start": "[CLS]", "end": "[SEP]", "unk": "[UNK]", "mask": "[MASK]"}
    tok = SubwordTokenizer(_bert_like(), specials)
    assert (tok.pad_id, tok.start_id, tok.end_id, tok.unk_id, tok.mask_id) == (0, 101, 102, 100, 103)
    assert tok.kind == "wordpiece" and tok.vocab_size == 205
    assert tok.tokenize("hello unbelievable") == ["hello", "un", "##believ", "##able"]
    assert tok.encode("hello zebra") == [200, 100]
    assert tok.decode([101, 200, 202, 203, 204, 102, 0]) == "hello unbelievable"
    assert tok.decode([101, 200, 102], skip_special=False) == "[CLS] hello [SEP]"
    tok.save(tmp_path / "bert.json")
    again = load_tokenizer(tmp_path / "bert.json")
    assert again.encode("hello unbelievable world") == tok.encode("hello unbelievable world")
    assert again.start_id == 101 and again.specials == specials


def test_wrap_foreign_fallbacks():
    # GPT-2 style: one token for start, end and unk, none for pad or mask.
    vocab = {"<|endoftext|>": 3, "a": 0, "b": 1, "ab": 2}
    hf = HFTokenizer(models.BPE(vocab, [("a", "b")]))
    hf.add_special_tokens(["<|endoftext|>"])
    specials = {"start": "<|endoftext|>", "end": "<|endoftext|>", "unk": "<|endoftext|>", "pad": None}
    tok = SubwordTokenizer(hf, specials)
    assert (tok.pad_id, tok.start_id, tok.end_id, tok.unk_id, tok.mask_id) == (3, 3, 3, 3, 3)
    assert tok.kind == "bpe"
    assert tok.encode("ab") == [2]
    with pytest.raises(ConfigError, match="not in the tokenizer's vocabulary"):
        SubwordTokenizer(hf, {"pad": "<pad>"})
    with pytest.raises(ConfigError, match="no token for 'pad'"):
        SubwordTokenizer(hf, {"start": "<|endoftext|>"})
    with pytest.raises(ConfigError, match="unknown special role 'bos'"):
        SubwordTokenizer(hf, {"bos": "<|endoftext|>"})


@pytest.mark.parametrize("model, lowercase", [("bpe", False), ("bpe", True), ("wordpiece", True)])
def test_lines_joined_by_the_end_token_encode_as_each_line_alone(model, lowercase):
    """glassformer's own BPE and WordPiece encode many lines per text, cut at the end token; a foreign one line by line."""
    import numpy as np

    from glassformer.framing import Framing, sequence_ids
    from glassformer.text.batch_encode import BatchEncoder, line_separator
    from glassformer.text.specials import ROLES

    lines = ["the cat sat", "<pad> x", "a <<end", "<start>b<unk>", "<END> up", "Été ΑΣ naïve", "x" * 150 + " y",
             "end> <en", "d>", "😀👍🏽 fam 👨‍👩‍👧", "didn't stop", "ﬁ Ⅻ İ"] * 11
    tokenizer = train_tokenizer(model, lines, 80, lowercase)
    encoder = BatchEncoder(tokenizer, Framing())
    assert encoder._separator == "<end>"
    for block in (lines, ["a line with <end> in it"] + lines):  # the second one line by line
        ids, lengths = encoder.encode_lines(block)
        assert [row.tolist() for row in np.split(ids, np.cumsum(lengths)[:-1])] == [
            sequence_ids(tokenizer, line, Framing()) for line in block]
    foreign = SubwordTokenizer(HFTokenizer.from_str(tokenizer.hf_tokenizer.to_str()), dict(zip(ROLES, SPECIALS)))
    foreign.hf_tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    assert line_separator(foreign) is None
