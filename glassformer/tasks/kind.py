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

from pathlib import Path

import torch

from glassformer.config import ModelConfig
from glassformer.data import Splits
from glassformer.framing import Framing
from glassformer.text import Tokenizer
from glassformer.train.batches import Batch, Encoded


class Kind:
    """One task kind. Subclasses set the class attributes and override what applies to them."""

    name: str
    family: str
    """The model family the kind trains: encoder-decoder, decoder-only or encoder-only."""
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

    # Data ----------------------------------------------------------------------------------------
    def read(self, path: str | Path) -> list:
        """The examples of a user's file of this kind."""
        raise NotImplementedError(f"kind {self.name!r} has no data files")

    def texts(self, examples: list) -> tuple[list[str], list[str]]:
        """(source-side texts, target-side texts) of training examples, for training tokenizers."""
        texts = [e.text for e in examples]
        return texts, texts

    def label_set(self, splits: Splits) -> list[str]:
        """The model's output labels, from the training split (none for most kinds)."""
        return []

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
