"""User-like data sets for benchmarks/own_data.py: seeded, with vocabularies unlike the built-in tasks'.

Each maker returns the lines of a file `glassformer train --data FILE --kind KIND` reads.
"""

from __future__ import annotations

import random

CONSONANTS = "bdfghjklmnprstvz"
VOWELS = "aeiou"


def lexicon(rng: random.Random, n: int, syllables: tuple[int, int], taken: set[str]) -> list[str]:
    """n made-up words of 2-3 letter syllables, none in taken (which they are added to)."""
    words = []
    while len(words) < n:
        word = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) + rng.choice(("", "", "n", "r"))
                       for _ in range(rng.randint(*syllables)))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def reorder_pairs(n: int, seed: int = 1871) -> list[str]:
    """A made-up translation that reorders: source SVO with adjectives before the noun and an
    optional object and prepositional phrase; target PP-first, object, subject, verb last, adjectives after
    their noun, each word by its own lexicon. Source lengths 4-15 tokens."""
    rng = random.Random(seed)
    taken: set[str] = set()
    sizes = {"noun": 40, "adj": 20, "verb": 16, "prep": 6, "det": 4}
    source = {k: lexicon(rng, n, (1, 2), taken) for k, n in sizes.items()}
    target = {k: lexicon(rng, n, (1, 3), taken) for k, n in sizes.items()}
    translate = {w: target[k][i] for k in sizes for i, w in enumerate(source[k])}
    subject_mark, object_mark = lexicon(rng, 2, (1, 1), taken)

    def phrase(max_adjectives: int) -> tuple[list[str], list[str]]:
        det, noun = rng.choice(source["det"]), rng.choice(source["noun"])
        adjectives = [rng.choice(source["adj"]) for _ in range(rng.randint(0, max_adjectives))]
        return [det, *adjectives, noun], [translate[noun], *(translate[a] for a in reversed(adjectives)), translate[det]]

    lines, seen = [], set()
    while len(lines) < n:
        (s_src, s_tgt), (o_src, o_tgt) = phrase(3), phrase(3)
        verb = rng.choice(source["verb"])
        if rng.random() < 0.2:  # intransitive: no object
            o_src, o_tgt = [], []
        src = [*s_src, verb, *o_src]
        tgt = [*o_tgt, object_mark] * bool(o_src) + [*s_tgt, subject_mark, translate[verb]]
        if rng.random() < 0.5:
            prep = rng.choice(source["prep"])
            p_src, p_tgt = phrase(1)
            src, tgt = src + [prep, *p_src], [*p_tgt, translate[prep], *tgt]
        if not 4 <= len(src) <= 15 or " ".join(src) in seen:
            continue
        seen.add(" ".join(src))
        lines.append(" ".join(src) + "\t" + " ".join(tgt))
    return lines


def copy_pairs(n: int, vocabulary: int = 1000, seed: int = 2203) -> list[str]:
    """Copy a sequence of 4-15 symbols drawn from `vocabulary` made-up symbols."""
    rng = random.Random(seed)
    symbols = lexicon(rng, vocabulary, (2, 3), set())
    lines = []
    for _ in range(n):
        sequence = " ".join(rng.choice(symbols) for _ in range(rng.randint(4, 15)))
        lines.append(f"{sequence}\t{sequence}")
    return lines


def classify_lines(n: int, seed: int = 3319) -> list[str]:
    """label<TAB>text: the topic (of three) with the most cue words, where "nok" before a cue
    word cancels it; filler words between, 6-20 tokens."""
    rng = random.Random(seed)
    taken: set[str] = {"nok"}
    topics = {name: lexicon(rng, 12, (1, 2), taken) for name in ("harbour", "orchard", "foundry")}
    filler = lexicon(rng, 60, (1, 3), taken)
    lines = []
    while len(lines) < n:
        counts = {name: 0 for name in topics}
        words = []
        for _ in range(rng.randint(3, 7)):
            name = rng.choice(list(topics))
            negated = rng.random() < 0.25
            words += ["nok"] * negated + [rng.choice(topics[name])]
            counts[name] += 0 if negated else 1
            words += [rng.choice(filler) for _ in range(rng.randint(0, 2))]
        best = sorted(counts.values())
        if best[-1] == best[-2] or not 6 <= len(words) <= 20:
            continue  # ties have no label
        label = max(counts, key=counts.get)
        lines.append(f"{label}\t{' '.join(words)}")
    return lines


def lm_lines(n: int, seed: int = 4421) -> list[str]:
    """Sentences of a small made-up grammar with number agreement (a plural noun takes the verb's
    "-s"-less form, marked here by its own suffix) and optional relative clauses."""
    rng = random.Random(seed)
    taken: set[str] = set()
    nouns = lexicon(rng, 24, (1, 2), taken)
    verbs = lexicon(rng, 12, (1, 2), taken)
    adjectives = lexicon(rng, 12, (1, 2), taken)
    det_sg, det_pl, rel, end = lexicon(rng, 4, (1, 1), taken)

    def noun_phrase() -> tuple[list[str], bool]:
        plural = rng.random() < 0.5
        words = [det_pl if plural else det_sg] + [rng.choice(adjectives)] * (rng.random() < 0.4)
        words.append(rng.choice(nouns) + ("li" if plural else ""))
        if rng.random() < 0.25:
            words += [rel, rng.choice(verbs) + ("" if plural else "s"), rng.choice(nouns)]
        return words, plural

    lines = []
    for _ in range(n):
        subject, plural = noun_phrase()
        obj, _ = noun_phrase()
        lines.append(" ".join([*subject, rng.choice(verbs) + ("" if plural else "s"), *obj, end]))
    return lines


# name -> (kind, maker, examples, metric the benchmark compares)
SETS = {
    "reorder": ("seq2seq", reorder_pairs, 4000, "exact_match"),
    "copy1000": ("seq2seq", copy_pairs, 4000, "exact_match"),
    "classify": ("classify", classify_lines, 3000, "accuracy"),
    "lm": ("lm", lm_lines, 4000, "token_accuracy"),
}
