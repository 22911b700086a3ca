"""Training configuration: what to train on, how long, and the optimiser's settings."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from glassformer.errors import ConfigError

SCHEDULES = ("noam", "cosine", "constant")
AUTO_SETTINGS = ("preset", "batch_size", "lr", "warmup", "decay")
OPTIMIZERS = ("adam", "adamw")
TOKENIZERS = ("word", "char", "bpe", "wordpiece")


@dataclass
class TrainConfig:
    """Everything `glassformer train` needs besides the model configuration."""

    task: str | None = None
    """A built-in task name; None when training on the user's files."""
    data: str | None = None
    """The user's training file (TSV pairs, plain text, or TSV label/text, by `kind`)."""
    valid_data: str | None = None
    """A validation file; None splits validation and test examples off `data`."""
    kind: str | None = None
    """"seq2seq", "lm", "mlm" or "classify": how `data` is read and which family is trained."""
    preset: str | None = None
    steps: int | None = None
    """Optimiser steps in total (the cosine schedule's horizon too)."""
    minutes: float | None = None
    """Wall-clock training budget; stops at whichever of steps/minutes comes first."""
    batch_size: int = 64
    """Examples per optimiser step over all processes and accumulation steps."""
    accumulate: int = 1
    """Gradient accumulation steps per optimiser step."""
    lr: float | None = None
    """Peak learning rate; None uses the paper's d_model^-0.5 scale for "noam"."""
    schedule: str = "noam"
    warmup: int = 4000
    min_lr: float = 0.0
    optimizer: str = "adam"
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-9
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    clip: float | None = 1.0
    """Gradient-norm clipping; None turns it off."""
    dropout: float | None = None
    """Override the preset's dropout."""
    bf16: bool = False
    """bf16 autocast for forward and loss, where the device does bf16 natively (else fp32, said in the log)."""
    seed: int = 0
    eval_every: int = 500
    log_every: int = 50
    checkpoint_every: int = 500
    eval_examples: int = 500
    """Validation examples decoded for exact-match/BLEU at each evaluation (all for the final one)."""
    eval_sample: int = 5000
    """Held-out examples scored at each validation and in the final test: a fixed sample of at most
    this many, drawn with the run's seed, the same at every evaluation (0: the whole split)."""
    pack: bool = False
    """Language models on a text file: train on random blocks of max_len + 1 tokens of the training
    lines packed end to end (each <start> text <end>) instead of one padded line per example."""
    tokenizer: str = "word"
    vocab_size: int | None = None
    """Cap (word/char) or target (bpe/wordpiece) vocabulary size."""
    shared_vocab: bool = True
    """Encoder-decoder: one vocabulary for source and target."""
    lowercase: bool = False
    mask_prob: float = 0.15
    """Masked-LM: fraction of tokens to predict (80% <mask>, 10% random, 10% kept)."""
    init: str | None = None
    """Fine-tune: start from this run folder's (or Hugging Face folder's) weights and tokenizer."""
    freeze_embeddings: bool = False
    """Fine-tune: keep the embeddings as they are."""
    freeze_layers: int = 0
    """Fine-tune: keep the first N layers of each stack as they are."""
    body_lr_scale: float = 1.0
    """The body's learning rate as a fraction of the head's (fine-tuning often uses 0.1-0.5)."""
    patience: int | None = None
    """Early stopping: stop after this many validations without a better primary metric."""
    # Fitted to the data and the budget (glassformer/train/auto.py, budget.py) -----------------
    auto: list[str] = dataclasses.field(default_factory=list)
    """Settings chosen when the run starts, of AUTO_SETTINGS: "preset", "batch_size" and "lr" from
    the data; "warmup" and "decay" fitted to the run's length (--steps, or --minutes as training goes)."""
    decay_steps: int | None = None
    """The step where the cosine decay reaches min_lr; None: `steps`."""

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule={self.schedule!r} is not one of: {', '.join(SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r} is not one of: {', '.join(OPTIMIZERS)}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer={self.tokenizer!r} is not one of: {', '.join(TOKENIZERS)}")
        for name in ("batch_size", "accumulate", "eval_every", "log_every", "checkpoint_every", "warmup"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        unknown = sorted(set(self.auto) - set(AUTO_SETTINGS))
        if unknown:
            raise ConfigError(f"auto={unknown} is not among: {', '.join(AUTO_SETTINGS)}")
        for name in ("steps", "decay_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.eval_sample < 0:
            raise ConfigError(f"eval_sample must be 0 (the whole split) or more, got {self.eval_sample}")
        if self.freeze_layers < 0:
            raise ConfigError(f"freeze_layers must be 0 or more, got {self.freeze_layers}")
        if not 0.0 < self.body_lr_scale <= 10.0:
            raise ConfigError(f"body_lr_scale must be in (0, 10], got {self.body_lr_scale}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be at least 1, got {self.patience}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name, low, high, closed in (("lr", 0.0, None, False), ("clip", 0.0, None, False), ("eps", 0.0, None, False),
                                        ("mask_prob", 0.0, 1.0, False), ("beta1", 0.0, 1.0, True), ("beta2", 0.0, 1.0, True),
                                        ("dropout", 0.0, 1.0, True), ("weight_decay", 0.0, None, True),
                                        ("min_lr", 0.0, None, True), ("minutes", 0.0, None, False)):
            _check_range(name, getattr(self, name), low, high, closed)
        if self.batch_size % self.accumulate:
            raise ConfigError(
                f"batch_size={self.batch_size} is not divisible by accumulate={self.accumulate}"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _check_range(name: str, value: float | None, low: float, high: float | None, low_closed: bool) -> None:
    """value (unless None) is finite, above low (or equal to it when low_closed) and below high."""
    if value is None:
        return
    too_low = value < low if low_closed else value <= low
    if not math.isfinite(value) or too_low or (high is not None and value >= high):
        where = f"{'[' if low_closed else '('}{low:g}, {'inf' if high is None else f'{high:g}'})"
        raise ConfigError(f"{name} must be a finite number in {where}, got {value}")
