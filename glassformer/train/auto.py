"""Settings chosen from the data when the user gives none: preset, batch size and learning rate.

Each choice comes with the reason printed before training starts; a setting the user gave is
kept and its reason says "(given)".
"""

from __future__ import annotations

from dataclasses import dataclass

from glassformer.config import get_preset


# Below this many training examples the smaller presets reach the same held-out result in fewer seconds.
FEW_EXAMPLES = 1000
PRESETS_OF_KIND = {  # (few examples, more)
    "seq2seq": ("tiny-seq2seq", "small-seq2seq"),
    "lm": ("tiny-lm", "small-lm"),
    "mlm": ("tiny-encoder", "small-encoder"),
    "classify": ("tiny-encoder", "small-encoder"),
    "tag": ("tiny-encoder", "small-encoder"),
    "qa": ("tiny-encoder", "small-encoder"),
}
# Peak Adam rate by model width, measured on the benchmark's sets (benchmarks/own_data.py).
PEAK_LR = {64: 3e-3, 128: 2e-3}
UNIT = {"seq2seq": "pairs", "classify": "labelled texts", "tag": "sentences", "qa": "questions"}


@dataclass(frozen=True)
class DataSummary:
    """What the automatic choices look at: training examples, vocabulary and lengths in tokens."""

    kind: str
    examples: int
    vocabulary: int
    shortest: int
    longest: int

    def describe(self) -> str:
        """E.g. "4,000 pairs, vocabulary 212, lengths 4-15"."""
        unit = UNIT.get(self.kind, "texts")
        return f"{self.examples:,} {unit}, vocabulary {self.vocabulary:,}, lengths {self.shortest}-{self.longest}"


@dataclass(frozen=True)
class Choice:
    """One setting, its value and why."""

    name: str
    value: object
    reason: str

    def line(self) -> str:
        shown = f"{self.value:g}" if isinstance(self.value, float) else str(self.value)
        return f"{self.name.replace('_', ' ')} {shown}: {self.reason}"


def choose_preset(data: DataSummary) -> Choice:
    few, more = PRESETS_OF_KIND[data.kind]
    if data.examples < FEW_EXAMPLES:
        return Choice("preset", few, f"{data.describe()} (under {FEW_EXAMPLES:,} examples: the smaller model)")
    return Choice("preset", more, data.describe())


def choose_batch_size(data: DataSummary) -> Choice:
    """16 under 500 examples, 32 under 2,000, else 64: at least ~30 steps an epoch, few noisy steps."""
    size = 16 if data.examples < 500 else 32 if data.examples < 2000 else 64
    return Choice("batch_size", size, f"{data.examples:,} training examples")


def choose_lr(d_model: int) -> Choice:
    """The peak rate for the model's width (2e-3 at d_model 128, scaled as d_model^-0.5 elsewhere)."""
    peak = PEAK_LR.get(d_model, round(2e-3 * (128 / d_model) ** 0.5, 5))
    return Choice("lr", peak, f"peak for d_model {d_model}, warm-up then cosine decay to a tenth of it")


def choose(data: DataSummary, auto: list[str], given: dict) -> list[Choice]:
    """The preset, batch size and peak rate: chosen from the data where named in auto, else given.

    Args:
        given: the values the run already has for the settings not in auto (name -> value).
    """
    preset = choose_preset(data) if "preset" in auto else Choice("preset", given["preset"], "(given)")
    batch = choose_batch_size(data) if "batch_size" in auto else Choice("batch_size", given["batch_size"], "(given)")
    d_model = get_preset(preset.value).d_model if preset.value else given.get("d_model", 128)
    lr = choose_lr(d_model) if "lr" in auto else Choice("lr", given["lr"], "(given)")
    return [preset, batch, lr]


LENGTH_SAMPLE = 2000
"""Examples tokenised to measure lengths (the first ones of the training split)."""


def summarize(kind: str, examples: list, source, target, corpus=None) -> DataSummary:
    """Training examples, vocabulary and the shortest and longest input in tokens.

    Args:
        examples: the training split (empty when a prepared corpus holds it).
        source, target: the tokenizers (target for a pair's output side).
        corpus: the prepared corpus of a text file, whose stored lengths are read instead.
    """
    vocabulary = source.vocab_size + (0 if target is source else target.vocab_size)
    if corpus is not None and "train" in corpus.stores:
        store, indices = corpus.stores["train"], corpus.indices["train"]
        lengths = store.lengths[indices[:LENGTH_SAMPLE]].tolist()
        return DataSummary(kind, corpus.size("train"), vocabulary, min(lengths, default=0), max(lengths, default=0))
    from glassformer.tasks import KINDS

    n_examples = len(examples)
    if corpus is not None:  # a prepared corpus not yet encoded: the first training examples, read from the file
        n_examples, examples = corpus.size("train"), list(corpus.leading_examples("train", LENGTH_SAMPLE))
    texts, _ = KINDS[kind].texts(examples[:LENGTH_SAMPLE])
    lengths = [len(source.encode(text)) for text in texts] or [0]
    return DataSummary(kind, n_examples, vocabulary, min(lengths), max(lengths))


def apply(config, data: DataSummary, d_model: int | None = None) -> list[Choice]:
    """Choose the settings named in config.auto, write them into config, and say why for each.

    Args:
        d_model: the width of the run being fine-tuned (--init), whose model is kept; None otherwise.
    """
    from glassformer.train.budget import DEFAULT_STEPS, FIRST_GUESS, FLOOR_FRACTION, fit_warmup

    auto = config.auto
    if d_model is not None:
        preset = Choice("preset", "(from --init)", f"fine-tuning keeps the model of {config.init}")
    elif "preset" in auto:
        preset = choose_preset(data)
        config.preset = preset.value
    else:
        preset = Choice("preset", config.preset, "(given)")
    if "batch_size" in auto:
        batch = choose_batch_size(data)
        if batch.value % config.accumulate:  # whole micro-batches
            batch = Choice("batch_size", -(-batch.value // config.accumulate) * config.accumulate,
                           batch.reason + f", a multiple of --accumulate {config.accumulate}")
        config.batch_size = batch.value
    else:
        batch = Choice("batch_size", config.batch_size, "(given)")
    width = d_model or get_preset(config.preset or PRESETS_OF_KIND[data.kind][1]).d_model
    if "lr" in auto:
        lr = choose_lr(width)
        if d_model is not None:
            lr = Choice("lr", lr.value / 2, f"half the peak for training d_model {width} from scratch: fine-tuning")
        config.lr = lr.value
    else:
        lr = Choice("lr", "the paper's d_model^-0.5 scale" if config.lr is None else config.lr, "(given)")
    choices = [preset, batch, lr]
    if config.schedule != "noam" and config.lr is not None and "lr" in auto:
        config.min_lr = config.lr * FLOOR_FRACTION
    if "decay" in auto:
        config.decay_steps = config.steps or (None if config.minutes is not None else DEFAULT_STEPS)
    if "warmup" in auto:
        config.warmup = fit_warmup(config.decay_steps or config.steps or FIRST_GUESS)
    choices.append(Choice("schedule", config.schedule, schedule_reason(config)))
    return choices


def schedule_reason(config) -> str:
    """How the schedule's warm-up and end were set."""
    if config.schedule == "noam":
        return f"the paper's, warm-up {config.warmup:,} steps (given)"
    warmup = f"warm-up {config.warmup:,} steps" + ("" if "warmup" in config.auto else " (given)")
    if config.schedule == "constant":
        return warmup + (" (5% of the run)" if "warmup" in config.auto else "")
    floor = f"decay to {config.min_lr:g}"
    if "decay" not in config.auto:
        return f"{warmup}, {floor} at step {config.decay_steps or config.steps}"
    if config.minutes is None:
        run = f"--steps {config.steps:,}" if config.steps else "the default length"
        return f"{warmup}, {floor} at step {config.decay_steps:,}: fitted to {run}"
    return (f"warm-up and {floor} fitted to --minutes {config.minutes:g}, the steps estimated from the "
            "measured step time as training goes")
