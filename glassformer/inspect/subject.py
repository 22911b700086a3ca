"""The model being looked at: a preset with random weights or a run folder, and its inputs as ids."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from glassformer.config import ModelConfig, get_preset
from glassformer.errors import UserError
from glassformer.framing import Framing, decoder_start, sequence_ids, source_ids, target_ids
from glassformer.models import build_model
from glassformer.text import Tokenizer, WordTokenizer

DEFAULT_TEXT = "when you play the game of thrones"


@dataclass
class Subject:
    """A model in eval mode with what is needed to turn text into its ids and ids back into tokens.

    Args:
        name: the preset name or the run folder, for titles.
        source_tokenizer, target_tokenizer: None for a preset looked at with random ids.
        labels: a classifier's label names, in id order.
    """

    name: str
    model: nn.Module
    config: ModelConfig
    source_tokenizer: Tokenizer | None
    target_tokenizer: Tokenizer | None
    framing: Framing
    labels: list[str] = field(default_factory=list)

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def start_id(self) -> int:
        tok = self.target_tokenizer
        return decoder_start(tok, self.framing) if tok is not None else 1

    @property
    def end_id(self) -> int:
        return self.target_tokenizer.end_id if self.target_tokenizer is not None else 2


def from_preset(name: str, text: str | None = None, seed: int = 0) -> Subject:
    """A preset with random weights (seeded); a word vocabulary is learned from text when given."""
    config = get_preset(name)
    torch.manual_seed(seed)
    model = build_model(config).eval()
    tokenizer = WordTokenizer.train([text]) if text else None
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise UserError(
            f"the text has {tokenizer.vocab_size} distinct tokens (specials included), more than "
            f"preset {name}'s vocabulary of {config.vocab_size}"
        )
    return Subject(name, model, config, tokenizer, tokenizer, Framing())


def from_run(path: str) -> Subject:
    """A trained run folder (see glassformer.run_folder)."""
    from glassformer.load import load_model  # late: reading runs pulls in the interop layer

    run = load_model(path)
    return Subject(
        str(path), run.model, run.config, run.source_tokenizer, run.target_tokenizer, Framing.from_meta(run.meta),
        list(run.labels),
    )


def load_subject(preset: str | None, model_dir: str | None, text: str | None = None, seed: int = 0) -> Subject:
    """The subject the command line names: exactly one of a preset and a run folder."""
    if (preset is None) == (model_dir is None):
        raise UserError("name a model: either --preset NAME (random weights) or --model DIR (a run folder)")
    return from_preset(preset, text, seed) if preset is not None else from_run(model_dir)


def input_ids(subject: Subject, text: str) -> torch.Tensor:
    """The ids a model's first input takes for text: an encoder-decoder's source, a decoder-only
    prompt (no <end>), an encoder-only sequence.

    Returns:
        [1, L] int64.
    """
    tok = subject.source_tokenizer
    if tok is None:
        raise UserError(f"{subject.name} has no tokenizer; give ids with --batch/--seq instead of a text")
    if subject.family == "encoder-decoder":
        ids = source_ids(tok, text, subject.framing)
    else:
        ids = sequence_ids(tok, text, subject.framing, end=subject.family == "encoder-only")
    if len(ids) > subject.config.max_len:
        raise UserError(f"the text is {len(ids)} tokens long, past the model's maximum of {subject.config.max_len}")
    return torch.tensor([ids], dtype=torch.long)


def target_input_ids(subject: Subject, text: str) -> torch.Tensor:
    """Teacher forcing: the decoder input <start> text of an encoder-decoder, [1, T]."""
    tok = subject.target_tokenizer
    if tok is None:
        raise UserError(f"{subject.name} has no tokenizer for a target text")
    return torch.tensor([target_ids(tok, text, subject.framing)[0]], dtype=torch.long)


def shifted_source(subject: Subject, ids: torch.Tensor) -> torch.Tensor:
    """What an encoder-decoder classifier's decoder reads (BART's): the source ids [B, S] shifted
    one place right behind the decoder's first token."""
    first = ids.new_full((ids.size(0), 1), subject.start_id)
    return torch.cat([first, ids[:, :-1]], 1)


def random_ids(config: ModelConfig, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Random ids [batch, length] that avoid the five special ids (so nothing is padding)."""
    if batch < 1 or length < 1:
        raise UserError(f"--batch and --seq must be at least 1, got {batch} and {length}")
    if length > config.max_len:
        raise UserError(f"--seq {length} is past the model's maximum length of {config.max_len}")
    low = 5 if config.vocab_size > 5 else 1
    return torch.randint(low, config.vocab_size, (batch, length), generator=generator)


def token_labels(tokenizer: Tokenizer | None, ids) -> list[str]:
    """The token of each id, or "#id" where there is no tokenizer or the id lies outside it."""
    labels = []
    for i in (int(x) for x in ids):
        if tokenizer is not None and 0 <= i < tokenizer.vocab_size:
            labels.append(tokenizer.id_to_token(i))
        else:
            labels.append(f"#{i}")
    return labels


def decoded_text(tokenizer: Tokenizer | None, ids) -> str:
    """ids as text: the tokenizer's decoding, or the token labels where it cannot (ids outside it,
    or only special tokens, which decoding drops)."""
    ids = [int(i) for i in ids]
    if tokenizer is not None and all(0 <= i < tokenizer.vocab_size for i in ids):
        text = tokenizer.decode(ids)
        if text:
            return text
    return " ".join(token_labels(tokenizer, ids))
