"""toy-translation: an invented English-like language translated into an invented verb-final one.

Source (subject-verb-object):  the small dog sees a red bird
Target (subject-object-verb):  waku pel ka tepi sini en nu mika

The target puts adjectives and determiners after the noun ("the" leaves no word), turns
prepositions into postpositions after their noun phrase, puts the verb last and an adverb
first, marks the subject with "ka" and the object with "nu", adds "ri" after a plural noun
and "ta" after a past-tense verb. The translation is a function of the source sentence
alone, so a model can learn it exactly; the reordering is what makes attention necessary.
"""

from __future__ import annotations

import random
from collections.abc import Container
from typing import NoReturn

from glassformer.data.examples import Pair
from glassformer.data.tasks.task import Task

# noun: (singular, plural, target)
NOUNS = [
    ("dog", "dogs", "waku"),
    ("cat", "cats", "miro"),
    ("bird", "birds", "tepi"),
    ("fox", "foxes", "rulo"),
    ("child", "children", "nasi"),
    ("farmer", "farmers", "bodan"),
    ("king", "kings", "selu"),
    ("girl", "girls", "kila"),
    ("boy", "boys", "tamo"),
    ("horse", "horses", "gavi"),
]
ADJECTIVES = {
    "small": "pel", "big": "doru", "red": "sini", "old": "vatu",
    "happy": "lomi", "quick": "zeta", "green": "hanu", "young": "fira",
}
# verb: (singular present, plural present, past, target)
TRANSITIVE = [
    ("sees", "see", "saw", "mika"),
    ("chases", "chase", "chased", "toru"),
    ("likes", "like", "liked", "ilu"),
    ("helps", "help", "helped", "sano"),
    ("finds", "find", "found", "pabi"),
    ("follows", "follow", "followed", "nevo"),
]
INTRANSITIVE = [
    ("sleeps", "sleep", "slept", "dumi"),
    ("runs", "run", "ran", "kora"),
    ("sings", "sing", "sang", "lali"),
]
PREPOSITIONS = {"near": "mo", "behind": "uta", "with": "pon", "under": "zei"}
ADVERBS = {"today": "hodi", "again": "riko", "often": "nami"}
# determiner: (numbers it goes with, target word or None)
DETERMINERS = {
    "the": (("sg", "pl"), None),
    "a": (("sg",), "en"),
    "every": (("sg",), "kel"),
    "some": (("pl",), "moi"),
}
SUBJECT, OBJECT, PLURAL, PAST = "ka", "nu", "ri", "ta"
PARTICLES = (SUBJECT, OBJECT)  # inserted words that translate no source word
MIN_WORDS, MAX_WORDS = 4, 12

_NOUN_FORMS = {sg: (t, "sg") for sg, _, t in NOUNS} | {pl: (t, "pl") for _, pl, t in NOUNS}
_VERB_FORMS = {
    form: (target, tense, transitive)
    for verbs, transitive in ((TRANSITIVE, True), (INTRANSITIVE, False))
    for *forms, target in verbs
    for form, tense in zip(forms, ("sg", "pl", "past"))
}

# Each source word and the target word that translates it ("the" has none).
GLOSSARY: dict[str, str | None] = (
    {form: target for form, (target, _) in _NOUN_FORMS.items()}
    | {form: target for form, (target, _, _) in _VERB_FORMS.items()}
    | ADJECTIVES | PREPOSITIONS | ADVERBS
    | {det: target for det, (_, target) in DETERMINERS.items()}
)


class _Reader:
    """Walks the source words left to right, building the target and its alignment."""

    def __init__(self, source: str):
        self.source = source
        self.words = source.split()
        self.i = 0

    def fail(self, problem: str) -> NoReturn:
        """Reject the sentence, saying what is wrong with it."""
        raise ValueError(f"not a toy-translation sentence: {problem}: {self.source!r}")

    def peek(self) -> str | None:
        """The next word, or None at the end."""
        return self.words[self.i] if self.i < len(self.words) else None

    def take(self, allowed: Container[str], what: str) -> tuple[int, str]:
        """Consume the next word, which must be in allowed; return its index and itself."""
        word = self.peek()
        if word not in allowed:
            found = "the end" if word is None else repr(word)
            self.fail(f"expected {what} at word {self.i + 1}, found {found}")
        self.i += 1
        return self.i - 1, word

    def noun_phrase(self, allow_pp: bool) -> tuple[list[tuple[str, int]], str]:
        """Translate Det Adj* Noun [Prep NP]; return (target, alignment) pairs and the number."""
        det_at, det = self.take(DETERMINERS, "a determiner")
        adjectives = []
        while self.peek() in ADJECTIVES:
            adjectives.append(self.take(ADJECTIVES, "an adjective"))
        noun_at, noun = self.take(_NOUN_FORMS, "a noun")
        target, number = _NOUN_FORMS[noun]
        numbers, det_target = DETERMINERS[det]
        if number not in numbers:
            self.fail(f"{det!r} cannot go with {noun!r}")
        out = [(target, noun_at)]
        if number == "pl":
            out.append((PLURAL, noun_at))
        out += [(ADJECTIVES[a], at) for at, a in adjectives]
        if det_target is not None:
            out.append((det_target, det_at))
        if allow_pp and self.peek() in PREPOSITIONS:
            prep_at, prep = self.take(PREPOSITIONS, "a preposition")
            inner, _ = self.noun_phrase(allow_pp=False)
            out += inner + [(PREPOSITIONS[prep], prep_at)]
        return out, number


def translate(source: str) -> Pair:
    """Translate a source sentence, recording for each target word the source word it renders.

    Args:
        source: a sentence of the source language, words separated by spaces.
    """
    r = _Reader(source)
    subject, number = r.noun_phrase(allow_pp=True)
    verb_at, verb = r.take(_VERB_FORMS, "a verb")
    verb_target, tense, transitive = _VERB_FORMS[verb]
    if tense != "past" and tense != number:
        r.fail(f"{verb!r} does not agree with its subject")
    out = subject + [(SUBJECT, -1)]
    if transitive:
        obj, _ = r.noun_phrase(allow_pp=True)
        out += obj + [(OBJECT, -1)]
    out.append((verb_target, verb_at))
    if tense == "past":
        out.append((PAST, verb_at))
    if r.peek() is not None:
        adverb_at, adverb = r.take(ADVERBS, "an adverb or the end")
        out.insert(0, (ADVERBS[adverb], adverb_at))
    if r.peek() is not None:
        r.take((), "the end")
    return Pair(source, " ".join(w for w, _ in out), tuple(a for _, a in out))


def _noun_phrase(rng: random.Random, number: str, allow_pp: bool) -> list[str]:
    """Draw the words of a source noun phrase of the given number."""
    det = rng.choice([d for d, (numbers, _) in DETERMINERS.items() if number in numbers])
    n_adjectives = rng.choices((0, 1, 2), weights=(50, 35, 15))[0]
    adjectives = rng.sample(sorted(ADJECTIVES), n_adjectives)
    singular, plural, _ = rng.choice(NOUNS)
    words = [det, *adjectives, singular if number == "sg" else plural]
    if allow_pp and rng.random() < 0.2:
        inner_number = "pl" if rng.random() < 0.4 else "sg"
        inner = _noun_phrase(rng, inner_number, allow_pp=False)
        words += [rng.choice(sorted(PREPOSITIONS)), *inner]
    return words


def _source(rng: random.Random) -> str:
    """Draw one source sentence of MIN_WORDS..MAX_WORDS words."""
    while True:
        number = "pl" if rng.random() < 0.4 else "sg"
        words = _noun_phrase(rng, number, allow_pp=True)
        transitive = rng.random() < 0.75
        forms = rng.choice(TRANSITIVE if transitive else INTRANSITIVE)
        tense = "past" if rng.random() < 0.35 else number
        words.append(forms[("sg", "pl", "past").index(tense)])
        if transitive:
            words += _noun_phrase(rng, "pl" if rng.random() < 0.4 else "sg", allow_pp=True)
        if rng.random() < 0.3:
            words.append(rng.choice(sorted(ADVERBS)))
        if MIN_WORDS <= len(words) <= MAX_WORDS:
            return " ".join(words)


def make_example(rng: random.Random) -> Pair:
    """Draw one source sentence and its translation."""
    return translate(_source(rng))


TASK = Task(
    name="toy-translation",
    kind="seq2seq",
    family="encoder-decoder",
    default_preset="small-seq2seq",
    tokenizer="word",
    description="translate an invented SVO language into an invented verb-final one (reordering)",
    default_steps=1000,
    sizes=(20_000, 500, 500),
    make=make_example,
)
