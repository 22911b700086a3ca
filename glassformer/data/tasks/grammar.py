"""A small English-like grammar with agreement, relative clauses and prepositional phrases.

    S       -> NP[n] VP[n] "."
    NP[n]   -> Det[n] (Adj) Noun[n] (PP | RC[n])
    PP      -> Prep NP[any]
    RC[n]   -> "that" VP[n]              the dog that chases the cats
             | "that" NP[m] Verb_t[m]    the dog that the cats chase
    VP[n]   -> Verb_t[n] NP[any] | Verb_i[n]

n is the number (singular or plural) that a verb must share with its subject, even when a
phrase with nouns of the other number stands between them. generate() draws sentences
with nested modifiers up to MAX_DEPTH; is_grammatical() recognises the whole language.
"""

from __future__ import annotations

import random
from functools import lru_cache

DETERMINERS = {"sg": ("the", "a", "this", "every"), "pl": ("the", "some", "these", "many")}
NOUNS = [
    ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("teacher", "teachers"),
    ("student", "students"), ("farmer", "farmers"), ("king", "kings"), ("child", "children"),
]
ADJECTIVES = ("big", "small", "old", "young", "happy", "clever")
TRANSITIVE = [
    ("chases", "chase"), ("sees", "see"), ("likes", "like"),
    ("follows", "follow"), ("helps", "help"), ("knows", "know"),
]
INTRANSITIVE = [
    ("sleeps", "sleep"), ("runs", "run"), ("sings", "sing"), ("waits", "wait"), ("laughs", "laugh"),
]
PREPOSITIONS = ("near", "behind", "with")
THAT, PERIOD = "that", "."
NUMBERS = ("sg", "pl")

# Chance that a noun phrase at each depth of embedding takes a modifier; none below that.
MODIFIER_CHANCE = (0.35, 0.15)
MAX_DEPTH = len(MODIFIER_CHANCE)
MAX_WORDS = 20  # period included

_DET_NUMBERS = {
    d: {n for n in NUMBERS if d in DETERMINERS[n]} for dets in DETERMINERS.values() for d in dets
}
_NOUN_NUMBER = {form: n for pair in NOUNS for form, n in zip(pair, NUMBERS)}
_TRANSITIVE_NUMBER = {form: n for pair in TRANSITIVE for form, n in zip(pair, NUMBERS)}
_INTRANSITIVE_NUMBER = {form: n for pair in INTRANSITIVE for form, n in zip(pair, NUMBERS)}

VOCABULARY = sorted(
    set(_DET_NUMBERS) | set(_NOUN_NUMBER) | set(_TRANSITIVE_NUMBER) | set(_INTRANSITIVE_NUMBER)
    | set(ADJECTIVES) | set(PREPOSITIONS) | {THAT, PERIOD}
)


def _number(rng: random.Random) -> str:
    return "pl" if rng.random() < 0.4 else "sg"


def _noun_phrase(rng: random.Random, number: str, depth: int) -> list[str]:
    words = [rng.choice(DETERMINERS[number])]
    if rng.random() < 0.3:
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(NOUNS)[NUMBERS.index(number)])
    if depth < MAX_DEPTH and rng.random() < MODIFIER_CHANCE[depth]:
        r = rng.random()
        if r < 0.5:
            words += [rng.choice(PREPOSITIONS), *_noun_phrase(rng, _number(rng), depth + 1)]
        elif r < 0.8:
            words += [THAT, *_verb_phrase(rng, number, depth + 1)]
        else:
            inner = _number(rng)
            verb = rng.choice(TRANSITIVE)[NUMBERS.index(inner)]
            words += [THAT, *_noun_phrase(rng, inner, depth + 1), verb]
    return words


def _verb_phrase(rng: random.Random, number: str, depth: int) -> list[str]:
    if rng.random() < 0.6:
        verb = rng.choice(TRANSITIVE)[NUMBERS.index(number)]
        return [verb, *_noun_phrase(rng, _number(rng), depth)]
    return [rng.choice(INTRANSITIVE)[NUMBERS.index(number)]]


def generate(rng: random.Random) -> str:
    """Draw one sentence (words and the final period separated by spaces)."""
    while True:
        number = _number(rng)
        words = [*_noun_phrase(rng, number, 0), *_verb_phrase(rng, number, 0), PERIOD]
        if len(words) <= MAX_WORDS:
            return " ".join(words)


def is_grammatical(sentence: str) -> bool:
    """Whether sentence belongs to the grammar (a period may touch the last word)."""
    words = tuple(sentence.replace(PERIOD, f" {PERIOD} ").split())
    if len(words) < 2 or words[-1] != PERIOD:
        return False
    body = words[:-1]
    end = len(body)

    # Each parser returns the set of positions where the phrase starting at i can end.
    @lru_cache(maxsize=None)
    def noun_phrase(i: int) -> frozenset[tuple[int, str]]:
        """(end, number) for every noun phrase starting at i."""
        if i >= end or body[i] not in _DET_NUMBERS:
            return frozenset()
        heads = [i + 1] + ([i + 2] if i + 1 < end and body[i + 1] in ADJECTIVES else [])
        found = set()
        for k in heads:
            if k < end and _NOUN_NUMBER.get(body[k]) in _DET_NUMBERS[body[i]]:
                number = _NOUN_NUMBER[body[k]]
                found.add((k + 1, number))
                found.update((j, number) for j in modifier(k + 1, number))
        return frozenset(found)

    @lru_cache(maxsize=None)
    def modifier(i: int, number: str) -> frozenset[int]:
        if i >= end:
            return frozenset()
        if body[i] in PREPOSITIONS:
            return frozenset(j for j, _ in noun_phrase(i + 1))
        if body[i] == THAT:
            # "that" + subject + transitive verb, the object gap being the head noun.
            gapped = {
                j + 1
                for j, m in noun_phrase(i + 1)
                if j < end and _TRANSITIVE_NUMBER.get(body[j]) == m
            }
            return frozenset(gapped) | verb_phrase(i + 1, number)
        return frozenset()

    @lru_cache(maxsize=None)
    def verb_phrase(i: int, number: str) -> frozenset[int]:
        if i >= end:
            return frozenset()
        if _INTRANSITIVE_NUMBER.get(body[i]) == number:
            return frozenset({i + 1})
        if _TRANSITIVE_NUMBER.get(body[i]) == number:
            return frozenset(j for j, _ in noun_phrase(i + 1))
        return frozenset()

    return any(end in verb_phrase(j, number) for j, number in noun_phrase(0))
