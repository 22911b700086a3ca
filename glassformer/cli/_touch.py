"""What `ablate`, `patch` and `lens` share: a run folder's model fed one text, and the answer read from it.

A `Case` is a text turned into the model's inputs the way the run was trained, with the position
where the answer is read. The run's task kind (`glassformer.tasks`) decides both: the next token
after a prompt (lm), the next target token after a target prefix (seq2seq: the text is the
source), the token at <mask> (mlm), or the label of the whole text (classify).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from glassformer.errors import UserError
from glassformer.framing import decoder_start
from glassformer.inspect.subject import token_labels
from glassformer.load import load_model
from glassformer.run_folder import Run
from glassformer.tasks import KINDS, Kind
from glassformer.text import Tokenizer


def kinds_where(has) -> str:
    """The names of the kinds for which has(kind) holds, for messages."""
    return ", ".join(name for name, kind in KINDS.items() if has(kind))


@dataclass
class Case:
    """One text's inputs to a run's model.

    Args:
        inputs: what run.model(*inputs) takes.
        position: where the answer is read in the output's T dimension (unused for a label).
        tokens: the labels of the positions of the side read (an encoder-decoder's decoder side).
        source_tokens: the labels of an encoder-decoder's source positions, else None.
    """

    inputs: tuple[torch.Tensor, ...]
    position: int
    tokens: list[str]
    source_tokens: list[str] | None = None

    def labels(self, side: str) -> list[str]:
        """The labels of the positions of one stack, "encoder" or "decoder"."""
        return self.source_tokens if side == "encoder" and self.source_tokens is not None else self.tokens


def model_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="a run folder from `glassformer train`, or an imported Hugging Face folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def kind_of(run: Run) -> Kind:
    return KINDS[run.kind]


def open_run(path: str) -> Run:
    """The run folder's model in eval mode; UserError for kinds these commands do not read."""
    run = load_model(path)
    if kind_of(run).answer is None:
        raise UserError(f"{path} is a {run.kind!r} run; this command reads {kinds_where(lambda k: k.answer)} runs")
    run.model.eval()
    return run


def output_tokenizer(run: Run) -> Tokenizer:
    return run.target_tokenizer  # the source one unless an encoder-decoder has its own target vocabulary


def make_case(run: Run, text: str, target: str | None = None, what: str = "the text", read: bool = True) -> Case:
    """Turn text (and an encoder-decoder's target prefix) into a Case.

    Args:
        read: the answer is read from this text, so a masked-LM text needs its one <mask>.
    """
    if not text or not text.strip():
        raise UserError(f"{what} is empty")
    kind = kind_of(run)
    if target is not None and not kind.target_prefix:
        raise UserError(f"--target is for {kinds_where(lambda k: k.target_prefix)} runs (the decoder's prefix)")
    rows = kind.text_inputs(run, text, target)
    _check_length(run, max(map(len, rows)), what)
    position = kind.answer_position(run, rows, what) if read else len(rows[-1]) - 1
    source = token_labels(run.source_tokenizer, rows[0]) if len(rows) > 1 else None
    return Case(tuple(torch.tensor([row]) for row in rows), position, token_labels(output_tokenizer(run), rows[-1]),
                source)


def _check_length(run: Run, length: int, what: str) -> None:
    if length > run.config.max_len:
        raise UserError(f"{what} is {length} tokens long, past the model's maximum of {run.config.max_len}")


def answer_id(run: Run, text: str, flag: str) -> int:
    """The id of one output token (or label, for classify) the user named."""
    if kind_of(run).predicts is None:
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
    return run.labels[i] if kind_of(run).predicts is None else token_labels(output_tokenizer(run), [i])[0]


def read_logits(run: Run, output: torch.Tensor, case: Case) -> torch.Tensor:
    """The logits [V] (or [n_labels]) where the case's answer is read, of the first example."""
    return output[0] if output.dim() == 2 else output[0, case.position]


def greedy_output(run: Run, case: Case, max_steps: int) -> str:
    """The greedy continuation (lm) or translation (seq2seq) of the case's text, decoded as hooked now."""
    from glassformer.inspect.decoding import decode_steps
    from glassformer.inspect.subject import decoded_text

    tok = run.target_tokenizer
    steps = decode_steps(run.model, case.inputs[0], decoder_start(tok, run.framing), tok.end_id, max_steps)
    chosen = [s.chosen for s in steps if s.chosen != tok.end_id]
    return decoded_text(tok, chosen)
