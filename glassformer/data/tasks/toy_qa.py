"""toy-qa: answer a question about a short text by pointing at the span that answers it.

A context states two to four facts about one person, the first by name and the rest
with a pronoun: "mara lives in tovel . she works as a baker . she has a brother called
kan holm ." A question asks for one of the facts ("what is the name of her brother ?");
its answer is a span of the context, one or two words long. The brother and the sister,
or a sibling and a pet, are named in look-alike sentences, so the question must be read.
"""

from __future__ import annotations

import random

from glassformer.data.qa import QAExample
from glassformer.data.tasks.task import Task

WOMEN = ("mara", "anna", "elin", "lena", "sara", "nadia", "ines", "greta", "tove", "rhea")
MEN = ("kan", "tomas", "oskar", "ivo", "piet", "ruben", "milo", "yusuf", "arno", "emil")
SURNAMES = ("berg", "holm", "lind", "vos", "moreau", "tanaka", "rossi", "novak")
CITIES = ("tovel", "lima", "brisk", "kasan", "merida", "dunmore", "arles", "volta", "hanko", "sorel")
CITY_PREFIXES = ("new", "port", "north")
JOBS = ("baker", "nurse", "pilot", "teacher", "farmer", "painter", "lawyer", "cook", "miner", "judge")
PETS = ("dog", "cat", "horse", "parrot", "goat", "rabbit")
PET_NAMES = ("rex", "bella", "pip", "coco", "luna", "max", "tiger", "nemo")
FOODS = ("apples", "bread", "rice", "soup", "cheese", "plums", "fish soup", "plum cake", "green tea")
YEARS = tuple(str(y) for y in range(1950, 2006))

FACTS = ("lives", "job", "brother", "sister", "pet", "born", "likes")


def _maybe_two(rng: random.Random, first: str, second: tuple[str, ...], before: bool) -> list[str]:
    """first alone, or with a word from second before (before=True) or after it, half the time."""
    if rng.random() < 0.5:
        return [first]
    extra = rng.choice(second)
    return [extra, first] if before else [first, extra]


def _fact(rng: random.Random, fact: str, subject: str, possessive: str, name: str):
    """(sentence words, answer's word range in them, questions) for one fact about name."""
    if fact == "lives":
        city = _maybe_two(rng, rng.choice(CITIES), CITY_PREFIXES, before=True)
        words = [subject, "lives", "in", *city, "."]
        return words, (3, 3 + len(city)), [f"where does {name} live ?", f"in which city does {name} live ?"]
    if fact == "job":
        words = [subject, "works", "as", "a", rng.choice(JOBS), "."]
        return words, (4, 5), [f"what is the job of {name} ?", f"what does {name} work as ?"]
    if fact in ("brother", "sister"):
        sibling = _maybe_two(rng, rng.choice(MEN if fact == "brother" else WOMEN), SURNAMES, before=False)
        words = [subject, "has", "a", fact, rng.choice(("called", "named")), *sibling, "."]
        return words, (5, 5 + len(sibling)), [
            f"what is the name of {possessive} {fact} ?", f"who is the {fact} of {name} ?"
        ]
    if fact == "pet":
        pet, pet_name = rng.choice(PETS), rng.choice(PET_NAMES)
        words = [subject, "has", "a", pet, "called", pet_name, "."]
        if rng.random() < 0.5:
            return words, (5, 6), [f"what is the name of {possessive} {pet} ?"]
        return words, (3, 4), [f"what animal does {name} have ?"]
    if fact == "born":
        words = [subject, "was", "born", "in", rng.choice(YEARS), "."]
        return words, (4, 5), [f"when was {name} born ?", f"in which year was {name} born ?"]
    if fact == "likes":
        food = rng.choice(FOODS).split()
        words = [subject, "likes", *food, "."]
        return words, (2, 2 + len(food)), [f"what does {name} like to eat ?", f"what food does {name} like ?"]
    raise ValueError(f"unknown fact {fact!r}")


def make_example(rng: random.Random) -> QAExample:
    """Draw one context, a question about one of its facts, and the answer's position."""
    woman = rng.random() < 0.5
    name = rng.choice(WOMEN if woman else MEN)
    pronoun, possessive = ("she", "her") if woman else ("he", "his")
    facts = rng.sample(FACTS, rng.randint(2, 4))
    asked = rng.randrange(len(facts))
    words: list[str] = []
    for i, fact in enumerate(facts):
        sentence, (lo, hi), questions = _fact(rng, fact, name if i == 0 else pronoun, possessive, name)
        if i == asked:
            answer = (len(words) + lo, len(words) + hi)
            question = rng.choice(questions)
        words += sentence
    context = " ".join(words)
    # The answer's character offset: the words before it and one space after each.
    start = sum(len(w) + 1 for w in words[: answer[0]])
    text = " ".join(words[answer[0]:answer[1]])
    return QAExample(context, question, start, text)


TASK = Task(
    name="toy-qa",
    kind="qa",
    family="encoder-only",
    default_preset="small-encoder",
    tokenizer="word",
    description="answer questions about a few facts by pointing at the span of the text that answers",
    default_steps=1000,
    sizes=(8_000, 400, 400),
    make=make_example,
)
