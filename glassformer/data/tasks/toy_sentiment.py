"""toy-sentiment: is a short review positive or negative, when the words alone do not say?

Each clause is "the <part> <verb> [negation] [intensifier] <adjective>"; a negation flips
the adjective's polarity ("not bad" is positive). Two clauses joined by "but" take the
polarity of the second; "although X , Y" that of Y; "Y although X" that of Y, the first.
The two clauses of a sentence usually disagree, so counting good and bad words fails.
"""

from __future__ import annotations

import random

from glassformer.data.examples import Labeled
from glassformer.data.tasks.task import Task

PARTS = (
    "film", "movie", "plot", "acting", "music", "ending",
    "story", "cast", "script", "dialogue", "soundtrack", "pacing",
)
VERBS = ("was", "is", "seemed", "felt")
NEGATIONS = ("not", "never", "hardly")
INTENSIFIERS = ("very", "really", "quite", "so", "truly")
POSITIVE = ("good", "great", "wonderful", "brilliant", "fun", "charming", "moving", "clever")
NEGATIVE = ("bad", "boring", "awful", "dull", "terrible", "weak", "silly", "clumsy")
LABELS = ("negative", "positive")


def _clause(rng: random.Random, positive: bool) -> str:
    """Draw a clause whose polarity is positive (True) or negative (False)."""
    negated = rng.random() < 0.35
    adjective = rng.choice(POSITIVE if positive != negated else NEGATIVE)
    # "seemed never good" is not English; a negation follows "was" or "is" only.
    words = ["the", rng.choice(PARTS), rng.choice(VERBS[:2] if negated else VERBS)]
    if negated:
        words.append(rng.choice(NEGATIONS))
    if rng.random() < 0.35:
        words.append(rng.choice(INTENSIFIERS))
    return " ".join([*words, adjective])


def _polarity(clause: list[str], text: str) -> bool:
    """True when a clause's words say positive."""
    if not clause or clause[-1] not in POSITIVE + NEGATIVE:
        raise ValueError(
            f"not a toy-sentiment sentence (a clause must end in an adjective): {text!r}"
        )
    return (clause[-1] in POSITIVE) != any(w in NEGATIONS for w in clause)


def sentiment(text: str) -> str:
    """The label of a toy-sentiment sentence: "positive" or "negative"."""
    words = text.split()
    if words and words[0] == "although" and "," in words:
        decisive = words[words.index(",") + 1:]
    elif "but" in words:
        decisive = words[words.index("but") + 1:]
    elif "although" in words:
        decisive = words[: words.index("although")]
    else:
        decisive = words
    return LABELS[_polarity(decisive, text)]


def make_example(rng: random.Random) -> Labeled:
    """Draw one review sentence and its label."""
    decisive = rng.random() < 0.5
    # The other clause mostly disagrees, so the connective has to be understood.
    other = decisive if rng.random() < 0.2 else not decisive
    form = rng.random()
    if form < 0.35:
        text = _clause(rng, decisive)
    elif form < 0.65:
        text = f"{_clause(rng, other)} but {_clause(rng, decisive)}"
    elif form < 0.8:
        text = f"although {_clause(rng, other)} , {_clause(rng, decisive)}"
    else:
        text = f"{_clause(rng, decisive)} although {_clause(rng, other)}"
    return Labeled(sentiment(text), text)


TASK = Task(
    name="toy-sentiment",
    kind="classify",
    family="encoder-only",
    default_preset="small-encoder",
    tokenizer="word",
    description="label short reviews positive/negative through negation, 'but' and 'although'",
    default_steps=1500,
    sizes=(10_000, 500, 500),
    make=make_example,
)
