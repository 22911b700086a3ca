"""toy-ner: tag the people (PER), places (LOC) and organisations (ORG) in short news sentences.

Sentences come from templates whose slots take entities of one type; names run one to
three words ("anna berg", "new tovel", "kasko bank"). Some words name a person, a place
or a company alike ("jordan said", "in jordan", "shares of jordan"): only the context
tells which, so a memorised word list cannot reach a perfect score.
"""

from __future__ import annotations

import random

from glassformer.data.conll import OUTSIDE, Tagged
from glassformer.data.tasks.task import Task

FIRST_NAMES = (
    "anna", "mara", "kan", "tomas", "elin", "oskar", "lena", "ivo", "sara", "piet",
    "nadia", "ruben", "ines", "milo", "greta", "yusuf",
)
SURNAMES = ("berg", "holm", "lind", "vos", "okafor", "moreau", "tanaka", "rossi", "novak", "silva")
PLACES = (
    "lima", "tovel", "brisk", "oslo", "kasan", "merida", "dunmore", "arles", "volta", "hanko",
    "sorel", "quimper",
)
PLACE_PREFIXES = ("new", "north", "port", "san")
ORG_NAMES = ("kasko", "nordia", "veltro", "acme", "orbis", "helix", "tamar", "zenda")
ORG_SUFFIXES = ("bank", "motors", "group", "air", "labs", "press")
# Words that name a person, a place or a company alike.
AMBIGUOUS = ("jordan", "victoria", "florence", "austin", "lincoln", "chelsea", "sydney", "madison")

NOUNS = ("plan", "deal", "report", "budget", "match", "election", "project", "strike")
ADJECTIVES = ("good", "late", "risky", "fair", "over", "close", "expensive", "popular")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
NUMBERS = ("two", "five", "ten", "forty", "ninety", "hundred")

# "{PER}", "{LOC}", "{ORG}" are entity slots; "{NOUN}", "{ADJ}", "{DAY}", "{NUM}" plain words.
TEMPLATES = (
    "{PER} said the {NOUN} was {ADJ} .",
    "{PER} visited {LOC} on {DAY} .",
    "{PER} visited the port of {LOC} .",
    "{PER} works for {ORG} in {LOC} .",
    "{ORG} opened an office in {LOC} .",
    "shares of {ORG} rose on {DAY} .",
    "{PER} met {PER} in {LOC} .",
    "according to {PER} , {ORG} will hire {NUM} people .",
    "the mayor of {LOC} met {PER} on {DAY} .",
    "{PER} moved from {LOC} to {LOC} .",
    "{ORG} bought {ORG} for {NUM} million .",
    "in {LOC} , {PER} called the {NOUN} {ADJ} .",
    "{ORG} said the {NOUN} in {LOC} was {ADJ} .",
    "{PER} and {PER} left {ORG} on {DAY} .",
    "the {NOUN} in {LOC} was {ADJ} , {PER} said .",
    "{ORG} hired {PER} as chief of the {NOUN} .",
)
_WORDS = {"{NOUN}": NOUNS, "{ADJ}": ADJECTIVES, "{DAY}": DAYS, "{NUM}": NUMBERS}
AMBIGUOUS_CHANCE = 0.25


def _person(rng: random.Random) -> list[str]:
    first = rng.choice(AMBIGUOUS if rng.random() < AMBIGUOUS_CHANCE else FIRST_NAMES)
    return [first, rng.choice(SURNAMES)] if rng.random() < 0.5 else [first]


def _place(rng: random.Random) -> list[str]:
    name = rng.choice(AMBIGUOUS if rng.random() < AMBIGUOUS_CHANCE else PLACES)
    return [rng.choice(PLACE_PREFIXES), name] if rng.random() < 0.25 else [name]


def _organisation(rng: random.Random) -> list[str]:
    if rng.random() < 0.1:
        # A place inside a company's name is part of the ORG: "bank of lima".
        return ["bank", "of", rng.choice(PLACES)]
    name = [rng.choice(AMBIGUOUS if rng.random() < AMBIGUOUS_CHANCE else ORG_NAMES)]
    return [*name, rng.choice(ORG_SUFFIXES)] if rng.random() < 0.5 else name


_ENTITIES = {"{PER}": ("PER", _person), "{LOC}": ("LOC", _place), "{ORG}": ("ORG", _organisation)}


def make_example(rng: random.Random) -> Tagged:
    """Draw one tagged sentence."""
    tokens: list[str] = []
    tags: list[str] = []
    for slot in rng.choice(TEMPLATES).split():
        if slot in _ENTITIES:
            kind, draw = _ENTITIES[slot]
            words = draw(rng)
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        else:
            tokens.append(rng.choice(_WORDS[slot]) if slot in _WORDS else slot)
            tags.append(OUTSIDE)
    return Tagged(tuple(tokens), tuple(tags))


TASK = Task(
    name="toy-ner",
    kind="tag",
    family="encoder-only",
    default_preset="small-encoder",
    tokenizer="word",
    description="tag people, places and organisations in news sentences where context decides the type",
    default_steps=1000,
    sizes=(8_000, 400, 400),
    make=make_example,
)
