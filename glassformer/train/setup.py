"""From a training configuration to data splits, tokenizers and a model configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from glassformer.config import ModelConfig, get_preset
from glassformer.data import Labeled, Pair, Splits, Text, split_examples
from glassformer.data.tasks import DEFAULT_TASK, get_task
from glassformer.errors import ConfigError, UserError
from glassformer.framing import Framing
from glassformer.run_folder import Run
from glassformer.tasks import KINDS, TRAINABLE_KINDS
from glassformer.text import Tokenizer, train_tokenizer
from glassformer.train import auto
from glassformer.train.config import TrainConfig
from glassformer.train.corpus import Corpus, load_corpus
from glassformer.train.corpus_source import uses_prepared_data


@dataclass
class Prepared:
    """What a training run starts from."""

    kind: str
    splits: Splits
    source: Tokenizer
    target: Tokenizer
    labels: list[str]
    model_config: ModelConfig
    corpus: "Corpus | None" = None
    """The prepared corpus a user's data file is read from (splits then empty), its stores open."""
    choices: list = field(default_factory=list)
    """The settings chosen from the data (config.auto), each with its reason (auto.Choice)."""


def load_splits(config: TrainConfig) -> tuple[str, Splits, str | None]:
    """(kind, splits, task name) for a built-in task or the user's files."""
    if config.data is None:
        task = get_task(config.task or DEFAULT_TASK)
        splits = task.splits(config.seed)
        if config.kind in TRAINABLE_KINDS and KINDS[config.kind].pretrains_on_any_text and task.kind != config.kind:
            # Pre-training on the plain texts of any task, so fine-tuning on it shares the vocabulary.
            return config.kind, Splits(*(list(map(as_text, part)) for part in (splits.train, splits.valid, splits.test))), task.name
        if config.kind is not None and config.kind != task.kind:
            raise UserError(f"task {task.name!r} is a {task.kind!r} task; as --kind it also takes mlm or lm "
                            f"(pre-training on its texts), not {config.kind!r}")
        return task.kind, splits, task.name
    if config.task is not None:
        raise UserError("give either --task or --data, not both")
    if config.kind is None:
        raise UserError("--data needs --kind (seq2seq, lm, mlm or classify)")
    if config.kind not in TRAINABLE_KINDS:
        raise UserError(f"--kind {config.kind!r} is not one of: {', '.join(TRAINABLE_KINDS)}")
    kind = KINDS[config.kind]
    examples = kind.read(config.data)
    if config.valid_data is None:
        splits = split_examples(examples, config.seed)
    else:
        held_out = kind.read(config.valid_data)
        if len(held_out) < 2:
            raise UserError(f"{config.valid_data}: needs at least 2 examples (half validation, half test)")
        half = len(held_out) // 2
        splits = Splits(examples, held_out[:half], held_out[half:])
    return config.kind, splits, None


def as_text(example) -> Text:
    """The plain text of any example (a pair's source, a context), for language-model pre-training."""
    if isinstance(example, Text):
        return example
    if isinstance(example, Pair):
        return Text(example.source)
    if isinstance(example, Labeled):
        return Text(example.text)
    if hasattr(example, "context"):
        return Text(example.context)
    return Text(" ".join(example.tokens))


def build_tokenizers(config: TrainConfig, kind: str, splits: Splits) -> tuple[Tokenizer, Tokenizer]:
    sources, targets = KINDS[kind].texts(splits.train)
    if KINDS[kind].two_vocabularies and not config.shared_vocab:
        make = lambda texts: train_tokenizer(config.tokenizer, texts, config.vocab_size, config.lowercase)  # noqa: E731
        return make(sources), make(targets)
    both = sources + targets if KINDS[kind].two_vocabularies else sources
    tokenizer = train_tokenizer(config.tokenizer, both, config.vocab_size, config.lowercase)
    return tokenizer, tokenizer


def model_config_for(
    config: TrainConfig, kind: str, task_preset: str | None, source: Tokenizer, target: Tokenizer, labels: list[str]
) -> ModelConfig:
    """The preset, fitted to the kind (family, head), the vocabularies and the label set."""
    preset = get_preset(config.preset or task_preset or KINDS[kind].default_preset)
    preset = preset.replace(family=KINDS[kind].family_for(preset))
    shared = source is target
    changes = dict(
        vocab_size=source.vocab_size,
        tgt_vocab_size=None if shared else target.vocab_size,
        tie_embeddings=preset.tie_embeddings and shared,
        head=KINDS[kind].head,
        n_labels=len(labels),
        pad_id=source.pad_id,
        **KINDS[kind].model_changes(preset),
    )
    if config.dropout is not None:
        changes.update(dropout=config.dropout, attn_dropout=None)
    try:
        return preset.replace(**changes)
    except ConfigError as error:
        raise UserError(f"preset {config.preset!r} does not fit this task: {error}") from None


def label_set(kind: str, splits: Splits) -> list[str]:
    """Class names (classify) or BIO tags (tag) of the training split; held-out ones must occur there."""
    return KINDS[kind].label_set(splits)


def load_prepared_corpus(config: TrainConfig, framing: Framing, tokenizer: Tokenizer | None = None,
                         progress: bool = False, log=print, target: Tokenizer | None = None) -> Corpus:
    """The prepared corpus of a data file (--data with --kind); tokenizer None trains the tokenizers.

    Stores other than text's are opened by `Corpus.open` once the model's max_len is known.
    """
    if config.task is not None:
        raise UserError("give either --task or --data, not both")
    return load_corpus(config.data, config.kind, config.seed, framing, config.valid_data, tokenizer, config.tokenizer,
                       config.vocab_size, config.lowercase, progress, log, target, config.shared_vocab)


def prepare(config: TrainConfig, init: "Run | None" = None, progress: bool = False, log=print) -> Prepared:
    """Read or generate the data, train tokenizers on its training split (or take those of the run
    being fine-tuned), fit the preset (or the fine-tuned run's own configuration)."""
    if config.pack and not (uses_prepared_data(config.data, config.kind) and KINDS[config.kind].extra_tokens):
        raise UserError("--pack is for language models trained on a text file (--data FILE --kind lm)")
    if uses_prepared_data(config.data, config.kind):
        if init is None:
            corpus = load_prepared_corpus(config, Framing(), progress=progress, log=log)
        else:
            corpus = load_prepared_corpus(config, init.framing, init.source_tokenizer, progress, log, init.target_tokenizer)
        kind, labels, source, target = config.kind, corpus.labels, corpus.tokenizer, corpus.target
        choices = choose_from_data(config, kind, [], source, target, init, corpus)
        if init is not None:
            model_config = fine_tune_config(init, kind, labels, config)
        else:
            model_config = model_config_for(config, kind, None, source, target, labels)
        corpus.open(model_config.max_len, progress, log)
        return Prepared(kind, Splits([], [], []), source, target, labels, model_config, corpus, choices)
    kind, splits, task_name = load_splits(config)
    labels = label_set(kind, splits)
    if init is not None:
        choices = choose_from_data(config, kind, splits.train, init.source_tokenizer, init.target_tokenizer, init)
        return Prepared(kind, splits, init.source_tokenizer, init.target_tokenizer, labels,
                        fine_tune_config(init, kind, labels, config), choices=choices)
    source, target = build_tokenizers(config, kind, splits)
    choices = choose_from_data(config, kind, splits.train, source, target)
    task = get_task(task_name) if task_name else None
    task_preset = task.default_preset if task is not None and task.kind == kind else None
    model_config = model_config_for(config, kind, task_preset, source, target, labels)
    return Prepared(kind, splits, source, target, labels, model_config, choices=choices)


def choose_from_data(config: TrainConfig, kind: str, train: list, source: Tokenizer, target: Tokenizer,
                     init: "Run | None" = None, corpus: "Corpus | None" = None) -> list:
    """The settings named in config.auto, chosen from the data and written into config (none: [])."""
    if not config.auto:
        return []
    data = auto.summarize(kind, train, source, target, corpus)
    return auto.apply(config, data, init.config.d_model if init is not None else None)


def fine_tune_config(init: "Run", kind: str, labels: list[str], config: TrainConfig) -> ModelConfig:
    """The configuration of the run being fine-tuned, with the head the new kind needs."""
    family = KINDS[kind].family_for(init.config, fine_tune=True)
    if init.config.family != family:
        raise UserError(
            f"--init {init.path} is a {init.config.family} model; a {kind!r} task needs a {family} model"
        )
    changes = dict(head=KINDS[kind].head, n_labels=len(labels), **KINDS[kind].model_changes(init.config))
    if config.dropout is not None:
        changes.update(dropout=config.dropout, attn_dropout=None)
    return init.config.replace(**changes)
