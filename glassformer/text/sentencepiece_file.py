"""A SentencePiece model file (.spm / .model) read without the `sentencepiece` library, and the
`tokenizers` tokenizer that segments text as it does.

The file is a protocol-buffer `ModelProto`; only the fields segmentation needs are read: each
piece with its score and type, the model type, byte fallback, and the normalizer settings (the
precompiled NFKC-style character map, the dummy "▁" prefix, whitespace removal and escaping).
The tokenizer is a `tokenizers` Unigram model over the same pieces and scores, with SentencePiece's
normalisation before it (the same character map, leading/trailing spaces dropped, runs of spaces
made one, spaces written "▁", "▁" put before the text), so Viterbi segmentation picks the same pieces.

`vocab` renumbers the pieces as a model's own vocabulary does (Marian's vocab.json joins the
source and target models' pieces): a piece keeps its score at its vocab id, and an entry the model
does not have scores so low per character that segmentation takes it only for characters the
model does not know, each on its own where it can. So text segments as the model alone segments
it, and a character it does not know gets the vocab id of that character, as MarianTokenizer looks
up SentencePiece's unknown pieces in vocab.json.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from glassformer.errors import UserError

# SentencePiece piece types (sentencepiece_model.proto) and model types.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM = 1
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
SPACE = "▁"
# Score per character of a vocab entry the model lacks, in units of the model's lowest score: far
# below any segmentation the model's own pieces give.
_FOREIGN_FACTOR = 1000.0


class Piece(NamedTuple):
    piece: str
    score: float
    type: int


class SentencePieceModel(NamedTuple):
    """What segmentation needs from a ModelProto."""

    pieces: list[Piece]
    model_type: int
    byte_fallback: bool
    charsmap: bytes
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    escape_whitespaces: bool


# Protocol-buffer wire format ------------------------------------------------------------------------
def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of one message: an int for varint and fixed32/64, bytes for the rest."""
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = int.from_bytes(data[at:at + 8], "little"), at + 8
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at:at + length], at + length
        elif wire == 5:
            value, at = int.from_bytes(data[at:at + 4], "little"), at + 4
        else:
            raise ValueError(f"wire type {wire}")
        if at > len(data):
            raise ValueError("truncated field")
        out.append((number, value))
    return out


def _message(data: bytes) -> dict[int, int | bytes]:
    """The last value of each field (proto3 semantics for the singular fields read here)."""
    return dict(_fields(data))


def read_sentencepiece(path: str | Path) -> SentencePieceModel:
    """Parse a SentencePiece model file; a damaged one is a UserError naming it."""
    path = Path(path)
    try:
        top = _fields(path.read_bytes())
        pieces = []
        for number, value in top:
            if number == 1:
                fields = _message(value)
                score = struct.unpack("<f", int(fields.get(2, 0)).to_bytes(4, "little"))[0]
                pieces.append(Piece(bytes(fields.get(1, b"")).decode("utf-8"), score, int(fields.get(3, NORMAL))))
        messages = dict(top)
        trainer = _message(messages.get(2, b""))
        normalizer = _message(messages.get(3, b""))
    except (OSError, ValueError, UnicodeDecodeError, TypeError) as error:
        raise UserError(f"{path.name} is not a readable SentencePiece model ({error})") from None
    if not pieces:
        raise UserError(f"{path.name} is not a readable SentencePiece model (no pieces)")
    return SentencePieceModel(
        pieces=pieces, model_type=int(trainer.get(3, UNIGRAM)), byte_fallback=bool(trainer.get(35, 0)),
        charsmap=bytes(normalizer.get(2, b"")), add_dummy_prefix=bool(normalizer.get(3, 1)),
        remove_extra_whitespaces=bool(normalizer.get(4, 1)), escape_whitespaces=bool(normalizer.get(5, 1)),
    )


# The equivalent tokenizer ---------------------------------------------------------------------------
def sentencepiece_tokenizer(model: SentencePieceModel, vocab: dict[str, int] | None = None, name: str = "model") -> HFTokenizer:
    """A `tokenizers` Tokenizer that segments as model does, its ids those of vocab (piece -> id;
    None: the model's own order). Control and unknown pieces become special tokens.

    Raises:
        UserError for what it cannot reproduce: a model type other than unigram, byte fallback,
        a vocab without the model's unknown piece.
    """
    if model.model_type != UNIGRAM:
        raise UserError(f"{name}: SentencePiece {MODEL_TYPES.get(model.model_type, model.model_type)} models are not supported (unigram is)")
    if model.byte_fallback:
        raise UserError(f"{name}: SentencePiece byte fallback is not supported")
    own = {p.piece: p for p in model.pieces}
    if vocab is None:
        vocab = {p.piece: i for i, p in enumerate(model.pieces)}
    unk = next((p.piece for p in model.pieces if p.type == UNKNOWN), None)
    if unk is None or unk not in vocab:
        raise UserError(f"{name}: the vocabulary lacks the SentencePiece model's unknown piece {unk!r}")
    ordered = sorted(vocab.items(), key=lambda item: item[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        raise UserError(f"{name}: the vocabulary's ids are not 0..{len(ordered) - 1}, each once")
    lowest = min((p.score for p in model.pieces if p.type == NORMAL), default=0.0)
    foreign = _FOREIGN_FACTOR * min(lowest, -1.0)
    scores = [(piece, own[piece].score if piece in own else foreign * len(piece)) for piece, _ in ordered]
    hf = HFTokenizer(models.Unigram(scores, unk_id=vocab[unk], byte_fallback=False))
    steps = [normalizers.Precompiled(model.charsmap)] if model.charsmap else []
    if model.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(r"^ +| +$"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if model.escape_whitespaces:
        steps.append(normalizers.Replace(" ", SPACE))
    if steps:
        hf.normalizer = normalizers.Sequence(steps)
    scheme = "always" if model.add_dummy_prefix else "never"
    hf.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme=scheme, split=True)
    hf.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme=scheme, split=True)
    special = [p.piece for p in model.pieces if p.type in (CONTROL, UNKNOWN) and p.piece in vocab]
    hf.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in special])
    user = [p.piece for p in model.pieces if p.type == USER_DEFINED and p.piece in vocab]
    if user:
        hf.add_tokens([AddedToken(token, normalized=False) for token in user])
    return hf
