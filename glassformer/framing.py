"""How a text becomes the id sequence a model sees, the same in training, decoding and tracing.

Default framing, with the tokenizer's special ids:
    encoder-decoder source   text <end>
    decoder input / output   <start> text  /  text <end>     (teacher forcing)
    decoder-only             <start> text <end>              (a prompt is <start> text)
    encoder-only             <start> text <end>              (<start> plays BERT's [CLS])
A model imported from elsewhere may frame differently (BART starts its decoder with </s>);
`Framing` carries such differences, read from a run's meta["framing"]. Every function here
takes the framing as a required argument: a caller passes its run's (`run.framing`), or
`Framing()` where glassformer's own framing is meant, so no code path frames a text one way in
training and another in decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from glassformer.text import Tokenizer

MASK_TEXT = "<mask>"


@dataclass(frozen=True)
class Framing:
    """Special ids placed around texts. None in a field means "use the default"."""

    source_prefix: tuple[int, ...] = ()
    source_suffix: tuple[int, ...] | None = None
    decoder_start: int | None = None
    sequence_prefix: tuple[int, ...] | None = None
    sequence_suffix: tuple[int, ...] | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: dict) -> "Framing":
        data = dict(meta.get("framing", {}))
        for key in ("source_prefix", "source_suffix", "sequence_prefix", "sequence_suffix"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


def _ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """Encode text, turning each literal "<mask>" into the mask id (for fill-mask)."""
    pieces = text.split(MASK_TEXT)
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        if i:
            ids.append(tokenizer.mask_id)
        if piece.strip():
            ids.extend(tokenizer.encode(piece.strip()))
    return ids


def source_ids(tokenizer: Tokenizer, text: str, framing: Framing) -> list[int]:
    """Encoder-decoder source: text <end>."""
    suffix = (tokenizer.end_id,) if framing.source_suffix is None else framing.source_suffix
    return [*framing.source_prefix, *_ids(tokenizer, text), *suffix]


def decoder_start(tokenizer: Tokenizer, framing: Framing) -> int:
    """The first token fed to a decoder."""
    return tokenizer.start_id if framing.decoder_start is None else framing.decoder_start


def target_ids(tokenizer: Tokenizer, text: str, framing: Framing) -> tuple[list[int], list[int]]:
    """Teacher forcing: decoder input <start> text and the expected output text <end>."""
    ids = _ids(tokenizer, text)
    return [decoder_start(tokenizer, framing), *ids], [*ids, tokenizer.end_id]


def sequence_prefix(tokenizer: Tokenizer, framing: Framing) -> tuple[int, ...]:
    """The ids before a decoder-only or encoder-only text: <start> (BERT's [CLS])."""
    return (tokenizer.start_id,) if framing.sequence_prefix is None else tuple(framing.sequence_prefix)


def sequence_suffix(tokenizer: Tokenizer, framing: Framing) -> tuple[int, ...]:
    """The ids after a decoder-only or encoder-only text: <end> (BERT's [SEP])."""
    return (tokenizer.end_id,) if framing.sequence_suffix is None else tuple(framing.sequence_suffix)


def sequence_ids(tokenizer: Tokenizer, text: str, framing: Framing, end: bool = True) -> list[int]:
    """Decoder-only or encoder-only: <start> text <end> (end=False for a generation prompt)."""
    suffix = sequence_suffix(tokenizer, framing) if end else ()
    return [*sequence_prefix(tokenizer, framing), *_ids(tokenizer, text), *suffix]
