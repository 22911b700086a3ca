"""From a training configuration to data splits, tokenizers and a model configuration."""

from __future__ import annotations

from dataclasses import dataclass

from glassformer.config import ModelConfig, get_preset
from glassformer.data import Labeled, Pair, Splits, Text, read_examples, split_examples
from glassformer.data.tasks import DEFAULT_TASK, get_task
from glassformer.errors import ConfigError, UserError
from glassformer.run_folder import FAMILY_OF_KIND
from glassformer.text import Tokenizer, train_tokenizer
from glassformer.train.config import TrainConfig

DEFAULT_PRESET_OF_KIND = {"seq2seq": "small-seq2seq", "lm": "small-lm", "mlm": "small-encoder", "classify": "small-encoder"}
HEAD_OF_KIND = {"seq2seq": "none", "lm": "none", "mlm": "mlm", "classify": "classify"}


@dataclass
class Prepared:
    """What a training run starts from."""

    kind: str
    splits: Splits
    source: Tokenizer
    target: Tokenizer
    labels: list[str]
    model_config: ModelConfig


def load_splits(config: TrainConfig) -> tuple[str, Splits, str | None]:
    """(kind, splits, task name) for a built-in task or the user's files."""
    if config.data is None:
        task = get_task(config.task or DEFAULT_TASK)
        if config.kind is not None and config.kind != task.kind:
            raise UserError(f"task {task.name!r} is a {task.kind!r} task, not {config.kind!r}")
        return task.kind, task.splits(config.seed), task.name
    if config.task is not None:
        raise UserError("give either --task or --data, not both")
    if config.kind is None:
        raise UserError("--data needs --kind (seq2seq, lm, mlm or classify)")
    if config.kind not in FAMILY_OF_KIND or config.kind in ("tag", "qa", "encode"):
        raise UserError(f"--kind {config.kind!r} is not one of: seq2seq, lm, mlm, classify")
    examples = read_examples(config.data, config.kind)
    if config.valid_data is None:
        splits = split_examples(examples, config.seed)
    else:
        held_out = read_examples(config.valid_data, config.kind)
        if len(held_out) < 2:
            raise UserError(f"{config.valid_data}: needs at least 2 examples (half validation, half test)")
        half = len(held_out) // 2
        splits = Splits(examples, held_out[:half], held_out[half:])
    return config.kind, splits, None


def texts_for_tokenizer(kind: str, examples: list) -> tuple[list[str], list[str]]:
    """(source-side texts, target-side texts) of the training examples."""
    if kind == "seq2seq":
        return [e.source for e in examples if isinstance(e, Pair)], [e.target for e in examples]
    if kind == "classify":
        texts = [e.text for e in examples if isinstance(e, Labeled)]
        return texts, texts
    texts = [e.text for e in examples if isinstance(e, Text)]
    return texts, texts


def build_tokenizers(config: TrainConfig, kind: str, splits: Splits) -> tuple[Tokenizer, Tokenizer]:
    sources, targets = texts_for_tokenizer(kind, splits.train)
    if kind == "seq2seq" and not config.shared_vocab:
        make = lambda texts: train_tokenizer(config.tokenizer, texts, config.vocab_size, config.lowercase)  # noqa: E731
        return make(sources), make(targets)
    both = sources + targets if kind == "seq2seq" else sources
    tokenizer = train_tokenizer(config.tokenizer, both, config.vocab_size, config.lowercase)
    return tokenizer, tokenizer


def model_config_for(
    config: TrainConfig, kind: str, task_preset: str | None, source: Tokenizer, target: Tokenizer, labels: list[str]
) -> ModelConfig:
    """The preset, fitted to the kind (family, head), the vocabularies and the label set."""
    preset = get_preset(config.preset or task_preset or DEFAULT_PRESET_OF_KIND[kind])
    shared = source is target
    changes = dict(
        family=FAMILY_OF_KIND[kind],
        vocab_size=source.vocab_size,
        tgt_vocab_size=None if shared else target.vocab_size,
        tie_embeddings=preset.tie_embeddings and shared,
        head=HEAD_OF_KIND[kind],
        n_labels=len(labels),
        pad_id=source.pad_id,
    )
    if config.dropout is not None:
        changes.update(dropout=config.dropout, attn_dropout=None)
    try:
        return preset.replace(**changes)
    except ConfigError as error:
        raise UserError(f"preset {config.preset!r} does not fit this task: {error}") from None


def prepare(config: TrainConfig) -> Prepared:
    """Read or generate the data, train tokenizers on its training split, fit the preset."""
    kind, splits, task_name = load_splits(config)
    source, target = build_tokenizers(config, kind, splits)
    labels = sorted({e.label for e in splits.train}) if kind == "classify" else []
    if kind == "classify":
        unknown = sorted({e.label for e in splits.valid + splits.test} - set(labels))
        if unknown:
            raise UserError(f"labels {', '.join(map(repr, unknown[:5]))} occur in held-out data but not in training data")
    task_preset = get_task(task_name).default_preset if task_name else None
    model_config = model_config_for(config, kind, task_preset, source, target, labels)
    return Prepared(kind, splits, source, target, labels, model_config)
