"""Token-tagging examples (named entities) and the CoNLL-style file they are read from.

A file holds one 'token<TAB>tag' line per token and a blank line between sentences. Tags
follow the BIO scheme: "O" outside any entity, "B-TYPE" at an entity's first token,
"I-TYPE" inside it, right after a B-TYPE or I-TYPE of the same type.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from glassformer.data.lines import numbered_lines
from glassformer.errors import DataError

OUTSIDE = "O"
_LINE = "'token<TAB>tag' (and a blank line between sentences)"


@dataclass(frozen=True)
class Tagged:
    """A token-classification example: a sentence's tokens and one tag per token."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.tags)} tags")

    @property
    def text(self) -> str:
        """The tokens joined by single spaces."""
        return " ".join(self.tokens)


def tag_error(tag: str, previous: str | None) -> str | None:
    """Why tag may not follow previous in a BIO sequence, or None when it may.

    Args:
        tag: the tag to check.
        previous: the tag before it, None at the start of a sentence.
    """
    if tag == OUTSIDE:
        return None
    prefix, _, kind = tag.partition("-")
    if prefix not in ("B", "I") or not kind or kind != kind.strip() or " " in kind:
        return f"tag {tag!r} is not a BIO tag (expected 'O', 'B-TYPE' or 'I-TYPE')"
    if prefix == "I" and previous not in (f"B-{kind}", f"I-{kind}"):
        after = "the start of a sentence" if previous is None else repr(previous)
        return f"tag {tag!r} follows {after} (an I- tag must continue a B-{kind} or I-{kind})"
    return None


def bio_error(tags: Sequence[str]) -> str | None:
    """The first reason tags is not a valid BIO sequence, or None when it is."""
    previous = None
    for i, tag in enumerate(tags):
        error = tag_error(tag, previous)
        if error is not None:
            return f"token {i}: {error}"
        previous = tag
    return None


def iter_conll(path: str | Path) -> Iterator[Tagged]:
    """The Tagged sentences of a file of 'token<TAB>tag' lines, sentences separated by blank lines,
    read in blocks; every sentence's tags must form a valid BIO sequence."""
    tokens: list[str] = []
    tags: list[str] = []
    last_line = 0
    # numbered_lines drops blank lines; a gap in the line numbers is where a sentence ended.
    for n, line in numbered_lines(path, _LINE):
        if n != last_line + 1 and tokens:
            yield Tagged(tuple(tokens), tuple(tags))
            tokens, tags = [], []
        last_line = n
        fields = line.split("\t")
        if len(fields) != 2:
            found = f"{len(fields)} field" + ("" if len(fields) == 1 else "s")
            raise DataError(f"{path}:{n}: expected 'token<TAB>tag' (2 fields), found {found}")
        token, tag = (f.strip() for f in fields)
        if not token:
            raise DataError(f"{path}:{n}: the token field is empty (expected 'token<TAB>tag')")
        if not tag:
            raise DataError(f"{path}:{n}: the tag field is empty (expected 'token<TAB>tag')")
        if any(c.isspace() for c in token):
            raise DataError(f"{path}:{n}: token {token!r} contains whitespace (one token per line)")
        error = tag_error(tag, tags[-1] if tags else None)
        if error is not None:
            raise DataError(f"{path}:{n}: {error}")
        tokens.append(token)
        tags.append(tag)
    if tokens:
        yield Tagged(tuple(tokens), tuple(tags))


def read_conll(path: str | Path) -> list[Tagged]:
    """Read 'token<TAB>tag' lines, sentences separated by blank lines, into Tagged examples.

    Args:
        path: a UTF-8 file; every sentence's tags must form a valid BIO sequence.
    """
    return list(iter_conll(path))
