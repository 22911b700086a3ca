"""Article C's toy: a few lines of TV dialogue, a word vocabulary, a width-6 model, a tiny trainer.

Everything here is small on purpose: the vocabulary fits on a screen, the model has two heads
of width 3, and a few hundred Adam steps on three sentence pairs make it translate them.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from glassformer.config import ModelConfig, get_preset
from glassformer.errors import DataError, UserError
from glassformer.framing import Framing, source_ids, target_ids
from glassformer.models import EncoderDecoder, build_model
from glassformer.text import WordTokenizer

# (source, target): the first is article C's example; the others share some of its words.
DEFAULT_CORPUS: list[tuple[str, str]] = [
    ("when you play the game of thrones", "you win or you die"),
    ("winter is coming for you", "the night is dark"),
    ("a lannister always pays his debts", "you know nothing"),
]


def read_corpus(path: str | Path) -> list[tuple[str, str]]:
    """Read `source<TAB>target` lines, or plain sentences (each then its own target).

    Blank lines and lines starting with # are skipped.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read as UTF-8 text ({error})") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) > 2:
            raise DataError(f"{path}, line {number}: expected source<TAB>target or one sentence, found {len(parts)} fields")
        source = parts[0].strip()
        target = parts[1].strip() if len(parts) == 2 else source
        if not source or not target:
            raise DataError(f"{path}, line {number}: empty source or target")
        pairs.append((source, target))
    if not pairs:
        raise DataError(f"{path}: no sentences found")
    return pairs


def corpus_vocabulary(pairs: list[tuple[str, str]]) -> WordTokenizer:
    """One word vocabulary shared by sources and targets (five specials first)."""
    return WordTokenizer.train([text for pair in pairs for text in pair])


def toy_config(vocab_size: int, d_model: int = 6, n_heads: int = 2) -> ModelConfig:
    """Article B's sizes (width 6, two heads of 3, one layer each side, d_ff 12) for a vocabulary."""
    if d_model % n_heads:
        raise UserError(f"--d-model {d_model} is not divisible by --heads {n_heads}")
    return get_preset("article-b").replace(vocab_size=vocab_size, d_model=d_model, n_heads=n_heads, d_ff=2 * d_model)


def toy_model(config: ModelConfig, seed: int = 0) -> EncoderDecoder:
    """A freshly initialised toy model, seeded, in eval mode."""
    torch.manual_seed(seed)
    return build_model(config).eval()


def _batch(tokenizer: WordTokenizer, pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, ...]:
    """Padded source [N, S], decoder input [N, T] and expected output [N, T] (-100 at padding)."""
    sources = [source_ids(tokenizer, s, Framing()) for s, _ in pairs]  # toy models frame texts glassformer's way
    targets = [target_ids(tokenizer, t, Framing()) for _, t in pairs]
    s_len = max(map(len, sources))
    t_len = max(len(i) for i, _ in targets)
    src = torch.full((len(pairs), s_len), tokenizer.pad_id)
    tgt_in = torch.full((len(pairs), t_len), tokenizer.pad_id)
    tgt_out = torch.full((len(pairs), t_len), -100)
    for row, (s, (i, o)) in enumerate(zip(sources, targets)):
        src[row, : len(s)] = torch.tensor(s)
        tgt_in[row, : len(i)] = torch.tensor(i)
        tgt_out[row, : len(o)] = torch.tensor(o)
    return src, tgt_in, tgt_out


def train_toy(
    model: EncoderDecoder, tokenizer: WordTokenizer, pairs: list[tuple[str, str]], steps: int, lr: float = 0.02, seed: int = 0
) -> list[float]:
    """Full-batch Adam on the corpus with teacher forcing; returns the loss of every step.

    The model is left in eval mode.
    """
    if steps < 0:
        raise UserError(f"--train must be 0 or more steps, got {steps}")
    torch.manual_seed(seed)
    src, tgt_in, tgt_out = _batch(tokenizer, pairs)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)
    model.train()
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest without thread hand-offs
    try:
        for _ in range(steps):
            logits = model(src, tgt_in)  # [N, T, V]
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1), ignore_index=-100)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        torch.set_num_threads(threads)
        model.eval()
    return losses
