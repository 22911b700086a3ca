"""Task kinds, one module each, registered in one table: KINDS[name] is the kind's `Kind`.

The commands, the trainer, the evaluator and the run folder look kinds up here; nothing else
keeps a list of them.
"""

from glassformer.errors import ConfigError
from glassformer.tasks.classify import Classify
from glassformer.tasks.encode import Encode
from glassformer.tasks.kind import Kind
from glassformer.tasks.lm import LanguageModel
from glassformer.tasks.mlm import MaskedLM
from glassformer.tasks.qa import QuestionAnswering
from glassformer.tasks.seq2seq import Seq2Seq
from glassformer.tasks.tag import Tag

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Seq2Seq(), LanguageModel(), MaskedLM(), Classify(), Tag(), QuestionAnswering(), Encode(),
)}
TRAINABLE_KINDS = tuple(name for name, kind in KINDS.items() if kind.trainable)


def get_kind(name: str) -> Kind:
    """The kind called name; ConfigError naming the known ones otherwise."""
    if name not in KINDS:
        raise ConfigError(f"unknown kind {name!r} (expected one of: {', '.join(KINDS)})")
    return KINDS[name]


def read_examples(path, kind: str) -> list:
    """The examples of a user's file read as `kind` (one of the trainable kinds)."""
    if kind not in TRAINABLE_KINDS:
        raise ConfigError(f"unknown data kind {kind!r} (expected one of: {', '.join(TRAINABLE_KINDS)})")
    return KINDS[kind].read(path)


__all__ = ["KINDS", "TRAINABLE_KINDS", "Kind", "get_kind", "read_examples"]
