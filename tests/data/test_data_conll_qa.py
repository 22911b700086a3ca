"""Tagging and QA data: the CoNLL and JSON-lines readers, BIO checks, and the toy-ner/toy-qa tasks."""

import json
from collections import Counter
from functools import lru_cache

import pytest

from glassformer.data.conll import Tagged, bio_error, read_conll, tag_error
from glassformer.data.qa import QAExample, read_qa
from glassformer.data.tasks import TASKS, toy_ner
from glassformer.errors import DataError


def write(tmp_path, content: bytes | str, name="data.txt"):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def error_of(read, path) -> str:
    with pytest.raises(DataError) as err:
        read(path)
    return str(err.value)


# CoNLL -------------------------------------------------------------------------------------
def test_conll_parses_sentences(tmp_path):
    content = b"\xef\xbb\xbfanna\tB-PER\r\nberg\tI-PER\r\nsaid\tO\n\n\n  \nin\tO\nlima\tB-LOC\n.\tO\n"
    path = write(tmp_path, content)
    assert read_conll(path) == [
        Tagged(("anna", "berg", "said"), ("B-PER", "I-PER", "O")),
        Tagged(("in", "lima", "."), ("O", "B-LOC", "O")),
    ]
    assert read_conll(path)[1].text == "in lima ."


def test_tagged_needs_one_tag_per_token():
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        Tagged(("a", "b"), ("O",))


@pytest.mark.parametrize(
    "content, message",
    [
        ("anna\tB-PER\nberg I-PER\n", "2: expected 'token<TAB>tag' (2 fields), found 1 field"),
        ("anna\tB-PER\tx\n", "1: expected 'token<TAB>tag' (2 fields), found 3 fields"),
        ("a\tO\n\tO\n", "2: the token field is empty (expected 'token<TAB>tag')"),
        ("a\tO\nb\t \n", "2: the tag field is empty (expected 'token<TAB>tag')"),
        ("a\tO\nb\tPER\n", "2: tag 'PER' is not a BIO tag (expected 'O', 'B-TYPE' or 'I-TYPE')"),
        ("a\tB-\n", "1: tag 'B-' is not a BIO tag (expected 'O', 'B-TYPE' or 'I-TYPE')"),
        ("a\tO\nb\tI-LOC\n", "2: tag 'I-LOC' follows 'O' (an I- tag must continue a B-LOC or I-LOC)"),
        ("a\tB-PER\nb\tI-LOC\n", "2: tag 'I-LOC' follows 'B-PER' (an I- tag must continue a B-LOC or I-LOC)"),
        # A blank line ends the sentence, so the B-PER before it does not carry over.
        ("a\tB-PER\n\nb\tI-PER\n", "3: tag 'I-PER' follows the start of a sentence (an I- tag must continue a B-PER or I-PER)"),
    ],
)
def test_conll_line_errors(tmp_path, content, message):
    path = write(tmp_path, content)
    assert error_of(read_conll, path) == f"{path}:{message}"


def test_conll_file_errors(tmp_path):
    empty = write(tmp_path, "\n  \n", "empty.txt")
    assert error_of(read_conll, empty) == (
        f"{empty}: file is empty (expected lines of 'token<TAB>tag' (and a blank line between sentences))"
    )
    latin = write(tmp_path, b"a\tO\n\nna\xefve\tO\n", "latin.txt")
    assert error_of(read_conll, latin) == f"{latin}:3: not valid UTF-8 (byte 0xef at column 3)"
    assert error_of(read_conll, tmp_path / "missing.txt") == f"{tmp_path / 'missing.txt'}: no such file"
    spaced = write(tmp_path, "new york\tB-LOC\n", "spaced.txt")
    assert error_of(read_conll, spaced) == f"{spaced}:1: token 'new york' contains whitespace (one token per line)"


def test_bio_validation():
    assert bio_error(("B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC")) is None
    assert bio_error(()) is None
    assert bio_error(("O", "I-ORG")) == "token 1: tag 'I-ORG' follows 'O' (an I- tag must continue a B-ORG or I-ORG)"
    assert bio_error(("B-ORG", "I-ORG", "I-PER")).startswith("token 2: tag 'I-PER' follows 'I-ORG'")
    assert tag_error("b-PER", None) == "tag 'b-PER' is not a BIO tag (expected 'O', 'B-TYPE' or 'I-TYPE')"
    assert tag_error("I-PER", "I-PER") is None


# QA JSON lines ------------------------------------------------------------------------------
def line(**fields) -> str:
    return json.dumps(fields)


GOOD = {"context": "mara lives in tovel .", "question": "where does mara live ?", "answer_start": 14, "answer_text": "tovel"}


def test_qa_parses(tmp_path):
    other = dict(GOOD, question="who lives in tovel ?", answer_start=0, answer_text="mara")
    path = write(tmp_path, "\ufeff" + line(**GOOD) + "\r\n\n" + line(**other) + "\n", "qa.jsonl")
    examples = read_qa(path)
    assert examples == [
        QAExample("mara lives in tovel .", "where does mara live ?", 14, "tovel"),
        QAExample("mara lives in tovel .", "who lives in tovel ?", 0, "mara"),
    ]
    assert examples[0].answer_end == 19


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"context": "x",', "not valid JSON (Expecting property name enclosed in double quotes at column 17)"),
        ("[1, 2]", "expected a JSON object, found list"),
        (line(**{k: v for k, v in GOOD.items() if k != "question"}),
         'missing key "question" (expected JSON objects with "context", "question", "answer_start" and "answer_text")'),
        (line(**dict(GOOD, answer_start="14")), "\"answer_start\" must be an integer, found '14'"),
        (line(**dict(GOOD, answer_start=True)), '"answer_start" must be an integer, found True'),
        (line(**dict(GOOD, context=None)), '"context" must be a string, found None'),
        (line(**dict(GOOD, question="  ")), '"question" is empty'),
        (line(**dict(GOOD, answer_start=13)),
         "answer_text 'tovel' is not at answer_start=13 of the context (found ' tove' there)"),
        (line(**dict(GOOD, answer_start=-5)),
         "answer_text 'tovel' is not at answer_start=-5 of the context (found '' there)"),
        (line(**dict(GOOD, answer_start=19)),
         "answer_text 'tovel' is not at answer_start=19 of the context (found ' .' there)"),
    ],
)
def test_qa_line_errors(tmp_path, bad, message):
    path = write(tmp_path, line(**GOOD) + "\n\n" + bad + "\n", "qa.jsonl")
    assert error_of(read_qa, path) == f"{path}:3: {message}"


def test_qa_file_errors(tmp_path):
    empty = write(tmp_path, "", "empty.jsonl")
    assert error_of(read_qa, empty) == (
        f'{empty}: file is empty (expected lines of JSON objects with "context", "question", '
        '"answer_start" and "answer_text")'
    )
    latin = write(tmp_path, b'{"context": "caf\xe9"}\n', "latin.jsonl")
    assert error_of(read_qa, latin) == f"{latin}:1: not valid UTF-8 (byte 0xe9 at column 17)"


# The built-in tasks -------------------------------------------------------------------------
@lru_cache(maxsize=None)
def splits(name, seed=0):
    return TASKS[name].splits(seed)


@pytest.mark.parametrize("name, kind, example_type", [("toy-ner", "tag", Tagged), ("toy-qa", "qa", QAExample)])
def test_task_registry_sizes_and_types(name, kind, example_type):
    task = TASKS[name]
    assert (task.kind, task.family, task.default_preset, task.tokenizer) == (kind, "encoder-only", "small-encoder", "word")
    s = splits(name)
    assert s.sizes == task.sizes == (8_000, 400, 400)
    assert all(type(e) is example_type for e in s.train + s.valid + s.test)


@pytest.mark.parametrize("name", ["toy-ner", "toy-qa"])
def test_task_determinism_and_distinct_inputs(name):
    assert TASKS[name].splits(0) == splits(name)
    assert splits(name, seed=1).test != splits(name).test
    s = splits(name)
    key = (lambda e: e.tokens) if name == "toy-ner" else (lambda e: (e.context, e.question))
    keys = [key(e) for e in s.train + s.valid + s.test]
    assert len(set(keys)) == len(keys)


def test_toy_ner_tags_are_valid_bio_with_context_dependent_types():
    s = splits("toy-ner")
    examples = s.train + s.valid + s.test
    assert all(bio_error(e.tags) is None for e in examples)
    assert {t for e in examples for t in e.tags} == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
    # The same word starts a person, a place and an organisation, depending on the sentence.
    types = {}
    for e in s.train:
        for token, tag in zip(e.tokens, e.tags):
            if tag.startswith("B-"):
                types.setdefault(token, set()).add(tag[2:])
    assert all(types[w] == {"PER", "LOC", "ORG"} for w in toy_ner.AMBIGUOUS)
    multi_word = Counter(t[2:] for e in s.train for t in e.tags if t.startswith("I-"))
    assert min(multi_word.values()) > 300
    assert all(2 <= len(e.tokens) <= 20 for e in examples)


def test_toy_qa_answers_are_exact_spans():
    s = splits("toy-qa")
    examples = s.train + s.valid + s.test
    assert all(e.context[e.answer_start:e.answer_end] == e.answer_text for e in examples)
    # Answers are whole words, one or two of them, in contexts of 2 to 4 sentences.
    for e in examples:
        before, after = e.context[:e.answer_start], e.context[e.answer_end:]
        assert before in ("",) or before.endswith(" ")
        assert after.startswith(" ")
        assert 1 <= len(e.answer_text.split()) <= 2
        assert 2 <= e.context.split().count(".") <= 4
    assert Counter(len(e.answer_text.split()) for e in s.train)[2] > 500
    assert splits("toy-qa").train[3] == QAExample(
        "emil has a brother named milo vos . he was born in 2002 . he lives in dunmore .",
        "what is the name of his brother ?", 25, "milo vos",
    )
