"""What `ablate`, `patch` and `lens` share: a run folder's model fed one text, and the answer read from it.

A `Case` is a text turned into the model's inputs the way the run was trained, with the position
where the answer is read: the next token after a prompt (lm), the next target token after a
target prefix (seq2seq: the text is the source), the token at <mask> (mlm), or the label of the
whole text (classify).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from glassformer.errors import UserError
from glassformer.framing import Framing, decoder_start, sequence_ids, source_ids, target_ids
from glassformer.inspect.subject import token_labels
from glassformer.load import load_model
from glassformer.run_folder import Run
from glassformer.text import Tokenizer

KINDS = ("lm", "seq2seq", "mlm", "classify")


@dataclass
class Case:
    """One text's inputs to a run's model.

    Args:
        inputs: what run.model(*inputs) takes.
        position: where the answer is read in the output's T dimension (unused for classify).
        tokens: the labels of the positions of the side read (the target's for seq2seq).
        source_tokens: the labels of an encoder-decoder's source positions, else None.
    """

    inputs: tuple[torch.Tensor, ...]
    position: int
    tokens: list[str]
    source_tokens: list[str] | None = None


def model_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="a run folder from `glassformer train`, or an imported Hugging Face folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def open_run(path: str) -> Run:
    """The run folder's model in eval mode; UserError for kinds these commands do not read."""
    run = load_model(path)
    if run.kind not in KINDS:
        raise UserError(f"{path} is a {run.kind!r} run; this command reads {', '.join(KINDS)} runs")
    run.model.eval()
    return run


def output_tokenizer(run: Run) -> Tokenizer:
    return run.target_tokenizer if run.kind == "seq2seq" else run.source_tokenizer


def make_case(run: Run, text: str, target: str | None = None, what: str = "the text", read: bool = True) -> Case:
    """Turn text (and an encoder-decoder's target prefix) into a Case.

    Args:
        read: the answer is read from this text, so a masked-LM text needs its one <mask>.
    """
    if not text or not text.strip():
        raise UserError(f"{what} is empty")
    if target is not None and run.kind != "seq2seq":
        raise UserError("--target is for seq2seq runs (the decoder's prefix)")
    framing = Framing.from_meta(run.meta)
    tok = run.source_tokenizer
    if run.kind == "seq2seq":
        src = source_ids(tok, text, framing)
        tgt = target_ids(run.target_tokenizer, target or "", framing)[0]
        _check_length(run, max(len(src), len(tgt)), what)
        return Case((torch.tensor([src]), torch.tensor([tgt])), len(tgt) - 1,
                    token_labels(run.target_tokenizer, tgt), token_labels(tok, src))
    ids = sequence_ids(tok, text, framing, end=run.kind != "lm")
    _check_length(run, len(ids), what)
    position = len(ids) - 1
    if run.kind == "mlm" and read:
        masks = [i for i, x in enumerate(ids) if x == tok.mask_id]
        if len(masks) != 1:
            raise UserError(f"{what} needs exactly one <mask> to read the answer at; it has {len(masks)}")
        position = masks[0]
    elif run.kind == "classify":
        position = 0
        if run.config.family == "encoder-decoder":  # BART's decoder reads the text shifted right
            shifted = [decoder_start(tok, framing), *ids[:-1]]
            return Case((torch.tensor([ids]), torch.tensor([shifted])), position, token_labels(tok, ids))
    return Case((torch.tensor([ids]),), position, token_labels(tok, ids))


def _check_length(run: Run, length: int, what: str) -> None:
    if length > run.config.max_len:
        raise UserError(f"{what} is {length} tokens long, past the model's maximum of {run.config.max_len}")


def answer_id(run: Run, text: str, flag: str) -> int:
    """The id of one output token (or label, for classify) the user named."""
    if run.kind == "classify":
        if text not in run.labels:
            raise UserError(f"{flag} {text!r} is not a label of this model; its labels: {', '.join(run.labels)}")
        return run.labels.index(text)
    tok = output_tokenizer(run)
    i = tok.token_to_id(text)
    if i == tok.unk_id and text != tok.id_to_token(tok.unk_id):
        pieces = tok.encode(text)
        if len(pieces) != 1 or pieces[0] == tok.unk_id:
            shown = " ".join(token_labels(tok, pieces)) or "nothing"
            raise UserError(f"{flag} {text!r} is not one token of the model's vocabulary (it reads as: {shown})")
        i = pieces[0]
    return i


def answer_label(run: Run, i: int) -> str:
    return run.labels[i] if run.kind == "classify" else token_labels(output_tokenizer(run), [i])[0]


def read_logits(run: Run, output: torch.Tensor, case: Case) -> torch.Tensor:
    """The logits [V] (or [n_labels]) where the case's answer is read, of the first example."""
    return output[0] if output.dim() == 2 else output[0, case.position]


def greedy_output(run: Run, case: Case, max_steps: int) -> str:
    """The greedy continuation (lm) or translation (seq2seq) of the case's text, decoded as hooked now."""
    from glassformer.inspect.decoding import decode_steps
    from glassformer.inspect.subject import decoded_text

    tok = run.target_tokenizer
    start = int(case.inputs[1][0, 0]) if run.kind == "seq2seq" else tok.start_id
    steps = decode_steps(run.model, case.inputs[0], start, tok.end_id, max_steps)
    chosen = [s.chosen for s in steps if s.chosen != tok.end_id]
    return decoded_text(tok, chosen)
