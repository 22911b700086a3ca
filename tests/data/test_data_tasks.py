"""Built-in tasks: registry, determinism, sizes, translation alignments, grammar, labels."""

import random
from functools import lru_cache

import pytest

from glassformer.data import Labeled, Pair, Text
from glassformer.data.tasks import DEFAULT_TASK, TASKS, get_task
from glassformer.data.tasks import grammar, grammar_lm, toy_sentiment, toy_translation
from glassformer.errors import ConfigError

SIZES = {
    "toy-translation": (20_000, 500, 500),
    "copy": (10_000, 300, 300),
    "reverse": (10_000, 300, 300),
    "grammar-lm": (20_000, 500, 500),
    "grammar-mlm": (20_000, 500, 500),
    "toy-sentiment": (10_000, 500, 500),
}
PRESETS = {
    "toy-translation": "small-seq2seq",
    "copy": "tiny-seq2seq",
    "reverse": "tiny-seq2seq",
    "grammar-lm": "small-lm",
    "grammar-mlm": "small-encoder",
    "toy-sentiment": "small-encoder",
}
EXAMPLE_TYPE = {"seq2seq": Pair, "lm": Text, "mlm": Text, "classify": Labeled}
FAMILY = {"seq2seq": "encoder-decoder", "lm": "decoder-only", "mlm": "encoder-only", "classify": "encoder-only"}


@lru_cache(maxsize=None)
def splits(name, seed=0):
    return TASKS[name].splits(seed)


def test_registry():
    assert DEFAULT_TASK == "toy-translation"
    # The first six are these; tasks added later come after them.
    assert list(TASKS)[: len(SIZES)] == list(SIZES)
    assert get_task("copy") is TASKS["copy"]
    with pytest.raises(ConfigError) as err:
        get_task("translation")
    assert str(err.value).startswith(
        "unknown task 'translation' (expected one of: toy-translation, copy, reverse, "
        "grammar-lm, grammar-mlm, toy-sentiment"
    )
    assert str(err.value) == f"unknown task 'translation' (expected one of: {', '.join(TASKS)})"


@pytest.mark.parametrize("name", list(SIZES))
def test_task_fields_and_sizes(name):
    task = TASKS[name]
    assert task.name == name
    assert task.default_preset == PRESETS[name]
    assert task.family == FAMILY[task.kind]
    assert task.tokenizer == "word"
    assert task.default_steps > 0 and "\n" not in task.description
    s = splits(name)
    assert s.sizes == SIZES[name] == task.sizes
    assert all(isinstance(e, EXAMPLE_TYPE[task.kind]) for e in s.train + s.valid + s.test)


@pytest.mark.parametrize("name", ["toy-translation", "copy", "grammar-lm", "toy-sentiment"])
def test_determinism(name):
    assert TASKS[name].splits(0) == splits(name)
    other = splits(name, seed=1)
    assert other.test != splits(name).test and other.train[:50] != splits(name).train[:50]


@pytest.mark.parametrize("name", list(SIZES))
def test_no_input_repeats_across_splits(name):
    s = splits(name)
    key = (lambda e: e.source) if TASKS[name].kind == "seq2seq" else (lambda e: e.text)
    keys = [key(e) for e in s.train + s.valid + s.test]
    assert len(set(keys)) == len(keys)


def test_translation_hand_checked():
    t = toy_translation.translate
    assert t("the small dog sees a red bird") == Pair(
        "the small dog sees a red bird", "waku pel ka tepi sini en nu mika", (2, 1, -1, 6, 5, 4, -1, 3)
    )
    assert t("the dogs chased some cats today") == Pair(
        "the dogs chased some cats today",
        "hodi waku ri ka miro ri moi nu toru ta",
        (5, 1, 1, -1, 4, 4, 3, -1, 2, 2),
    )
    assert t("a king near the old horses slept") == Pair(
        "a king near the old horses slept", "selu en gavi ri vatu mo ka dumi ta", (1, 0, 5, 5, 4, 2, -1, 6, 6)
    )
    for bad in ["the dog see the cat", "a dogs sleep", "the dog sleeps quickly", "the dog"]:
        with pytest.raises(ValueError, match="not a toy-translation sentence"):
            t(bad)


def test_translation_alignment_matches_glossary():
    gloss = toy_translation.GLOSSARY
    for pair in splits("toy-translation").train[:2000]:
        source, target = pair.source.split(), pair.target.split()
        assert len(pair.alignment) == len(target)
        aligned = set()
        for word, a in zip(target, pair.alignment):
            if word in toy_translation.PARTICLES:
                assert a == -1
                continue
            aligned.add(a)
            if word == toy_translation.PLURAL:
                assert source[a] in {pl for _, pl, _ in toy_translation.NOUNS}
            elif word == toy_translation.PAST:
                assert source[a] in {past for *_, past, _ in toy_translation.TRANSITIVE + toy_translation.INTRANSITIVE}
            else:
                assert gloss[source[a]] == word
        # Every source word with a translation shows up; "the" leaves no trace.
        assert aligned == {i for i, w in enumerate(source) if gloss[w] is not None}


def test_translation_reorders_and_changes_length():
    pairs = splits("toy-translation").train
    def monotonic(p):
        kept = [a for a in p.alignment if a >= 0]
        return kept == sorted(kept)
    assert sum(not monotonic(p) for p in pairs) / len(pairs) > 0.9
    assert sum(len(p.source.split()) != len(p.target.split()) for p in pairs) / len(pairs) > 0.8
    lengths = [len(p.source.split()) for p in pairs]
    assert min(lengths) == 4 and max(lengths) == 12
    words = {w for p in pairs for w in p.source.split()}
    assert 40 <= len(words) <= 80


def test_translation_test_set_unseen_and_target_is_function_of_source():
    s = splits("toy-translation")
    assert not {p.source for p in s.test} & {p.source for p in s.train}
    assert all(toy_translation.translate(p.source) == p for p in s.test)


@pytest.mark.parametrize("name", ["copy", "reverse"])
def test_copy_and_reverse(name):
    s = splits(name)
    for p in s.train + s.test:
        source, target = p.source.split(), p.target.split()
        assert 4 <= len(source) <= 12 and set(source) <= set("abcdefghijklmnopqrst")
        assert target == (source if name == "copy" else source[::-1])
        assert [source[a] for a in p.alignment] == target
    assert {len(p.source.split()) for p in s.train} == set(range(4, 13))


def test_grammar_accepts_all_generated():
    s = splits("grammar-lm")
    sentences = [e.text for e in s.train + s.valid + s.test]
    assert all(grammar_lm.is_grammatical(x) for x in sentences)
    assert all(x.endswith(" .") for x in sentences)
    assert grammar_lm.is_grammatical("the dogs that the cat sees run.")
    assert splits("grammar-mlm").train[0].text != s.train[0].text


def test_grammar_rejects_corruptions():
    ok = grammar.is_grammatical
    for bad in [
        "",
        ".",
        "the dog runs",  # no period
        "the dog run .",  # agreement
        "the dogs near the cat runs .",  # verb agrees with the wrong noun
        "the dog that chase the cats runs .",  # relative clause agrees with its head noun
        "a dogs run .",  # determiner number
        "dog the runs .",
        "the dog runs the cat .",  # intransitive with an object
    ]:
        assert not ok(bad), bad
    flip = {a: b for pair in grammar.TRANSITIVE + grammar.INTRANSITIVE for a, b in (pair, pair[::-1])}
    rng = random.Random(0)
    sentences = [e.text for e in splits("grammar-lm").test]
    flipped = shuffled = 0
    for x in sentences:
        words = x.split()
        i = rng.choice([i for i, w in enumerate(words) if w in flip])
        flipped += ok(" ".join(words[:i] + [flip[words[i]]] + words[i + 1:]))
        body = words[:-1]
        rng.shuffle(body)
        shuffled += ok(" ".join(body + ["."])) and body != words[:-1]
    assert flipped == 0  # agreement is strict: any verb in the wrong number breaks it
    assert shuffled / len(sentences) < 0.05


def test_sentiment_labels():
    label = toy_sentiment.sentiment
    assert label("the film was good") == "positive"
    assert label("the film was not good") == "negative"
    assert label("the film was not bad") == "positive"
    assert label("the plot was very dull but the acting was great") == "positive"
    assert label("the plot was great but the acting was never good") == "negative"
    assert label("although the plot was dull , the acting was great") == "positive"
    assert label("the acting was great although the plot was dull") == "positive"
    assert label("the acting was hardly great although the plot was good") == "negative"
    s = splits("toy-sentiment")
    for part in (s.train, s.valid, s.test):
        share = sum(e.label == "positive" for e in part) / len(part)
        assert 0.4 <= share <= 0.6
    assert all(label(e.text) == e.label for e in s.train)
    # Context matters: a bag-of-words count of positive adjectives gets many labels wrong.
    pos = set(toy_sentiment.POSITIVE)
    neg = set(toy_sentiment.NEGATIVE)
    def naive(text):
        words = text.split()
        return "positive" if sum(w in pos for w in words) >= sum(w in neg for w in words) else "negative"
    assert sum(naive(e.text) == e.label for e in s.train) / len(s.train) < 0.7
