"""What every task kind provides: reading, encoding, batching, loss targets, metrics and prediction.

A kind is one module of this package (seq2seq, lm, mlm, classify, tag, qa, encode) with one
`Kind` subclass; `glassformer.tasks.KINDS` maps each name to its instance, and the commands,
the trainer, the evaluator and the run folder read that table instead of switching on names.
Every encoding method takes the run's `Framing`: the same text is framed alike in training,
evaluation and decoding, whichever tokenizer (glassformer's or an imported one) the run has.
The loss is the same for every kind, cross-entropy over a batch's targets (`train/loss.py`), so
a kind's part of it is the targets its `batch` sets (IGNORE where nothing is scored).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from glassformer.config import ModelConfig
from glassformer.data import Splits
from glassformer.data.prepared import TokenStore
from glassformer.framing import Framing
from glassformer.text import Tokenizer
from glassformer.train.batches import Batch, Encoded


class Kind:
    """One task kind. Subclasses set the class attributes and override what applies to them."""

    name: str
    family: str
    """The model family the kind trains: encoder-decoder, decoder-only or encoder-only."""
    also_trains: tuple[str, ...] = ()
    """Other families the kind trains: a preset (or a fine-tuned run) of one of them keeps its family."""
    also_fine_tunes: tuple[str, ...] = ()
    """Other families the kind trains only from a run or an imported folder (`--init`), not from a preset."""
    head: str = "none"
    default_preset: str = "small-encoder"
    trainable = True
    primary_metric = "loss"
    """The metric that picks the best checkpoint."""
    accuracy_name = "token_accuracy"
    """What the teacher-forced accuracy of the kind counts."""
    perplexity = False
    two_vocabularies = False
    """Source and target sides may have separate tokenizers (--separate-vocab)."""
    pretrains_on_any_text = False
    """May train on the plain texts of a built-in task of another kind (mlm and lm pre-training)."""
    prepared_text = False
    """--data FILE is a text file read through a prepared token store, not held in memory."""
    extra_tokens = 0
    """Tokens a training row holds beyond max_len (a language model's shifted target)."""
    labelled = False
    """The examples carry labels (a class, tags) that the model's output labels are gathered from."""
    stored_for_max_len = False
    """The prepared rows depend on the model's max_len (question answering cuts contexts to fit)."""

    # Data ----------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> list:
        """The examples of a user's file of this kind."""
        raise NotImplementedError(f"kind {self.name!r} has no data files")

    def stream(self, path: str | Path) -> Iterator:
        """The examples of a user's file of this kind one at a time, read in blocks (what `read` lists)."""
        return iter(self.read(path))

    def texts(self, examples: list) -> tuple[list[str], list[str]]:
        """(source-side texts, target-side texts) of training examples, for training tokenizers."""
        texts = [e.text for e in examples]
        return texts, texts

    def label_set(self, splits: Splits) -> list[str]:
        """The model's output labels, from the training split (none for most kinds)."""
        held_out = {label for e in splits.valid + splits.test for label in self.example_labels(e)}
        return self.labels_from({label for e in splits.train for label in self.example_labels(e)}, held_out)

    def example_labels(self, example) -> Iterable[str]:
        """The labels an example carries (its class, its tags; none for most kinds)."""
        return ()

    def labels_from(self, train: set[str], held_out: set[str]) -> list[str]:
        """The model's labels from those of the training examples; UserError when held-out ones are unknown."""
        return []

    def family_for(self, config: ModelConfig, fine_tune: bool = False) -> str:
        """The family of the model the kind trains from config (a preset, or with fine_tune a run's)."""
        kept = self.also_trains + self.also_fine_tunes if fine_tune else self.also_trains
        return config.family if config.family in kept else self.family

    def model_changes(self, config: ModelConfig) -> dict:
        """Settings the kind needs changed in a preset or a fine-tuned model's configuration."""
        return {}

    # Ids and batches ----------------------------------------------------------------------------
    def encode(self, examples: list, source: Tokenizer, target: Tokenizer, labels: list[str], max_len: int,
               framing: Framing) -> Encoded:
        """Examples as ids framed as the model sees them; those past max_len are skipped and counted."""
        raise NotImplementedError(f"kind {self.name!r} is not trained")

    def batch(self, encoded: Encoded, indices: list[int], source: Tokenizer, target: Tokenizer, framing: Framing,
              mask_prob: float = 0.15, generator: torch.Generator | None = None) -> Batch:
        """Collate examples `indices` of `encoded` into a padded batch with the loss's targets."""
        raise NotImplementedError(f"kind {self.name!r} is not trained")

    # A prepared corpus: every example's rows in a token store, read back by index ----------------
    def store_columns(self, source: Tokenizer, target: Tokenizer, labels: list[str]) -> dict[str, tuple]:
        """The columns kept beside the ids: name -> (numpy dtype, lowest value, highest value + 1)."""
        return {}

    def store_rows(self, examples: list, source: Tokenizer, target: Tokenizer, labels: list[str], framing: Framing,
                   max_len: int) -> tuple[list[list[int]], dict[str, list[list[int]]]]:
        """Every example's ids and its values in each column, as `encode` makes them but none skipped:
        an example that cannot be encoded at all gets no ids. max_len matters only where
        `stored_for_max_len`."""
        encoded = self.encode(examples, source, target, labels, max_len, framing)
        return encoded.inputs, {}

    def store_fits(self, store: TokenStore, indices: np.ndarray, max_len: int) -> np.ndarray:
        """[len(indices)] True where the example has ids and fits the model, as `encode` keeps examples."""
        lengths = store.lengths[indices]
        return (lengths > 0) & (lengths <= max_len + self.extra_tokens)

    def from_store(self, store: TokenStore, indices: np.ndarray, skipped: int) -> Encoded:
        """Examples `indices` of a store as the split `encode` would give, read on demand."""
        return Encoded(self.name, store.rows(indices), None, skipped, lengths=store.lengths[indices])

    def row_lengths(self, encoded: Encoded) -> np.ndarray:
        """Each example's width in a padded batch, [len(encoded)], for bucketing batches by length."""
        if encoded.lengths is not None:
            return encoded.lengths
        return np.fromiter(map(len, encoded.inputs), dtype=np.int64, count=len(encoded))

    # Metrics and predictions --------------------------------------------------------------------
    def predicted_metrics(self, run, encoded: Encoded, examples: list, batch_size: int, device,
                          limit: int | None, world) -> dict:
        """Metrics of the model's own predictions (decoded, tagged, answered), beyond teacher forcing."""
        return {}

    def example_lines(self, run, examples: list, device) -> list[str]:
        """A few held-out examples with the model's output beside the reference, as printed lines."""
        return []

    # One text read closely (`ablate`, `patch`, `lens`) --------------------------------------------
    answer: str | None = None
    """Where the answer to one text is read, in words ("next token"); None: those commands do not read the kind."""
    predicts: str | None = None
    """What the output at each position is a distribution over, in words ("next token"); None: the run's labels."""
    decodes = False
    """The model's output on a text is decoded token by token (a continuation, a translation)."""
    target_prefix = False
    """The text is an encoder-decoder's source, and the answer is read after a target prefix (--target)."""

    def text_inputs(self, run, text: str, target: str | None = None) -> list[list[int]]:
        """One text framed as in training, as the rows of ids the model takes: run.model(*rows) reads it.

        Args:
            target: the target prefix, for kinds with one (else None).
        """
        raise NotImplementedError(f"kind {self.name!r} is not read one text at a time")

    def answer_position(self, run, rows: list[list[int]], what: str) -> int:
        """Where the answer is read in the positions of the last row; UserError naming `what` when a text has none."""
        return len(rows[-1]) - 1
