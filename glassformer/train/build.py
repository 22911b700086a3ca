"""The parts a Trainer is built from, made ready: run (model, tokenizers), data, optimiser, schedule,
checkpointer and logger, for a new run or one resumed from its folder.

`build_trainer` is what `glassformer train` calls; the Trainer itself only trains what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from glassformer.config import get_preset
from glassformer.data import Splits
from glassformer.errors import UserError
from glassformer.files import file_sha256
from glassformer.folder_guard import check_output_folder
from glassformer.load import load_model
from glassformer.models import build_model
from glassformer.run_folder import Run, read_run_config, save_run
from glassformer.tasks import KINDS
from glassformer.train.batches import BatchOrder, Encoded
from glassformer.train.blocks import BlockOrder, PackedStream
from glassformer.train.checkpoint import Checkpointer, TrainingState, latest_checkpoint, read_checkpoint
from glassformer.train.config import TrainConfig
from glassformer.train.corpus import Corpus, sample_positions
from glassformer.train.corpus_source import uses_prepared_data
from glassformer.train.distributed import World, barrier, check_batch, init_world, local_device, parallelize
from glassformer.train.fine_tune import carry_over, check_same_body, freeze
from glassformer.train.log import Logger
from glassformer.train.optimizer import import_in_background, make_optimizer
from glassformer.train import budget
from glassformer.train.setup import load_prepared_corpus, load_splits, prepare
from glassformer.train.trainer import Trainer

# Settings a resumed run may change: they decide when to stop, evaluate, log and save, never what is computed.
MAY_CHANGE_ON_RESUME = ("steps", "minutes", "eval_every", "eval_examples", "log_every", "checkpoint_every", "patience")


def pick_device(name: str = "auto") -> torch.device:
    """"auto" is CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UserError(f"--device {name!r} is not a device (expected cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} was asked for, but no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: glassformer runs on cpu or cuda")
    return device


def data_hashes(config: TrainConfig, corpus: Corpus | None = None) -> dict[str, str]:
    """SHA-256 of the user's data files (none for a built-in task), recorded so --resume sees a change;
    a prepared corpus has hashed them already."""
    if corpus is not None:
        return {path: corpus.sources[split].sha256 for path, split in ((config.data, "train"), (config.valid_data, "valid"))
                if path is not None}
    return {path: file_sha256(path) for path in (config.data, config.valid_data) if path is not None}


@dataclass
class TrainingData:
    """What the loop reads: the splits as ids, the examples behind them, and the order of batches."""

    splits: Splits
    encoded: dict[str, Encoded]
    held_out_sizes: dict[str, int]
    """Examples in the whole valid and test splits (the encoded ones may be a fixed sample)."""
    order: BatchOrder | BlockOrder
    stream: PackedStream | None = None
    """Packed blocks of a text file (--pack), or None for one example per row."""


def sample_splits(splits: Splits, cap: int | None, seed: int) -> Splits:
    """The splits with validation and test cut to a fixed sample of at most cap examples each, in order."""
    def sample(examples: list, seed: int) -> list:
        return [examples[i] for i in sample_positions(len(examples), cap, seed)]

    return Splits(splits.train, sample(splits.valid, seed), sample(splits.test, seed + 1))


def training_data(config: TrainConfig, run: Run, splits: Splits, corpus: Corpus | None, world: World,
                  log: Logger) -> TrainingData:
    """The splits as ids, framed as the run frames texts; validation and test cut to a fixed sample
    of at most eval_sample examples."""
    max_len, cap = run.config.max_len, config.eval_sample or None
    if corpus is not None:
        held_out_sizes = {name: corpus.size(name) for name in ("valid", "test")}
        encoded = {"train": corpus.encoded("train", max_len),
                   "valid": corpus.encoded("valid", max_len, cap, config.seed),
                   "test": corpus.encoded("test", max_len, cap, config.seed + 1)}
        splits = corpus.held_out(cap, config.seed)
    else:
        held_out_sizes = {name: len(getattr(splits, name)) for name in ("valid", "test")}
        splits = sample_splits(splits, cap, config.seed)
        kind = KINDS[run.kind]
        encoded = {name: kind.encode(getattr(splits, name), run.source_tokenizer, run.target_tokenizer, run.labels,
                                     max_len, run.framing)
                   for name in ("train", "valid", "test")}
    if encoded["train"].skipped and not config.pack:  # packed blocks cut long lines instead
        log(f"skipped {encoded['train'].skipped} training examples longer than max_len={max_len}")
    if len(encoded["train"]) == 0 and not config.pack:
        raise UserError("no training example fits the model's maximum length")
    if config.pack:
        stream = PackedStream(corpus.stores["train"], corpus.indices["train"], max_len + 1)
        return TrainingData(splits, encoded, held_out_sizes, BlockOrder(config.batch_size, world.rank, world.size),
                            stream)
    # A user's file is bucketed by length (its examples vary); a built-in task keeps its plain shuffle.
    lengths = KINDS[run.kind].row_lengths(encoded["train"]) if config.data is not None else None
    order = BatchOrder(len(encoded["train"]), config.batch_size, config.seed, world.rank, world.size, lengths)
    return TrainingData(splits, encoded, held_out_sizes, order)


def start_run(config: TrainConfig, run_dir: Path, overwrite: bool, world: World, device: torch.device,
              log: Logger) -> tuple[Run, Splits, Corpus | None]:
    """A new run folder (config and tokenizers written, weights not yet), its model built or carried over
    from --init, and its data."""
    if config.preset is not None:
        get_preset(config.preset)  # an unknown name is the first thing to hear about
    if not overwrite and latest_checkpoint(run_dir) is not None:
        raise UserError(f"{run_dir} already holds a training run; use --resume, another --out, or --overwrite")
    if world.is_main or not overwrite:
        check_output_folder(run_dir, "--out", overwrite=overwrite)
    barrier(world)  # the first process has cleared the folder before any other reads it
    torch.manual_seed(config.seed)
    init = None
    if config.init:
        init = load_model(config.init, device=device)
        if config.preset is not None:
            check_same_body(init, get_preset(config.preset), config.preset)
    # With several processes the first prepares a text file's corpus while the others wait, then
    # they all read it from the cache.
    if world.distributed and uses_prepared_data(config.data, config.kind):
        if world.is_main:
            prepare(config, init, log.progress, log)
        barrier(world)
    prepared = prepare(config, init, log.progress, log)
    for choice in prepared.choices:
        log(choice.line())
    model = build_model(prepared.model_config).to(device)  # the same on every process: same seed
    if init is not None:
        same_head = init.kind == prepared.kind and init.labels == prepared.labels
        moved = carry_over(model, init, same_head)
        log(f"init from {config.init}: loaded {len(moved['loaded'])} tensors")
        log("  created fresh: " + (", ".join(moved["created"]) or "none")
            + ("" if same_head or not moved["created"] else
               f" (new {prepared.kind} head" + (f" for labels {', '.join(prepared.labels)})" if prepared.labels else ")")))
        log("  dropped: " + (", ".join(moved["dropped"]) or "none"))
    torch.manual_seed(config.seed + 7_777 * world.rank)
    meta = {"task": config.task, "train": config.to_dict(), "data_sha256": data_hashes(config, prepared.corpus)}
    if init is not None and "framing" in init.meta:
        meta["framing"] = init.meta["framing"]  # an imported tokenizer keeps its own framing
    if world.is_main:
        save_run(run_dir, model, prepared.model_config, prepared.kind, prepared.source,
                 None if prepared.target is prepared.source else prepared.target, prepared.labels, meta, weights=False)
    run = Run(run_dir, model, prepared.model_config, prepared.kind, prepared.source, prepared.target,
              prepared.labels, meta)
    return run, prepared.splits, prepared.corpus


def resume_run(overrides: TrainConfig, changes: dict | None, run_dir: Path, world: World, device: torch.device,
               log: Logger) -> tuple[TrainConfig, Run, Splits, Corpus | None]:
    """The run folder's own configuration (only the budget and evaluation settings may change), its
    model (weights from the checkpoint, loaded later) and its data, checked to be unchanged."""
    document = read_run_config(run_dir)
    try:
        saved = TrainConfig.from_dict(document.get("train", {}))
    except (TypeError, ValueError) as error:
        raise UserError(f"{run_dir}: the training settings in config.json are damaged ({error})") from None
    saved.steps = overrides.steps if overrides.steps is not None else saved.steps
    saved.minutes = overrides.minutes
    for name, value in (changes or {}).items():
        if name not in MAY_CHANGE_ON_RESUME:
            raise UserError(f"--{name.replace('_', '-')} cannot change on --resume")
        setattr(saved, name, value)
    recorded = document.get("data_sha256") or {}
    for path, digest in data_hashes(saved).items():
        if path in recorded and recorded[path] != digest:
            raise UserError(f"{path} has changed since the run started (SHA-256 {recorded[path][:12]}... is now "
                            f"{digest[:12]}...); --resume needs the same data, or start a new run")
    run = load_model(run_dir, device=device, weights=False)
    run.model.train()
    if uses_prepared_data(saved.data, saved.kind):
        if world.distributed and not world.is_main:
            barrier(world)  # the first process checks (or rebuilds) the prepared corpus; then the others read it
        corpus = load_prepared_corpus(saved, run.framing, run.source_tokenizer, log.progress, log, run.target_tokenizer)
        corpus.open(run.config.max_len, log.progress, log)
        if world.distributed and world.is_main:
            barrier(world)
        return saved, run, Splits([], [], []), corpus
    kind, splits, _ = load_splits(saved)
    if kind != run.kind:
        raise UserError(f"{run_dir}: its data is now read as {kind!r}, but the run is {run.kind!r}")
    return saved, run, splits, None


def build_trainer(
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    device: str = "auto",
    log: Callable[[str], None] = print,
    progress: bool = True,
    fsdp: bool = False,
    dist_timeout: float = 300.0,
    overwrite: bool = False,
    resume_changes: dict | None = None,
) -> Trainer:
    """Every part of a training run, made ready, and the Trainer that trains it.

    Args:
        config: the training configuration (for --resume, only its steps and minutes are read).
        run_dir: where the run folder lives.
        resume: continue from the run folder's latest checkpoint.
        log: called with each line meant for the user (only the first process logs).
        progress: show a progress bar (first process only).
        fsdp: shard parameters, gradients and optimiser state over the processes (FSDP2).
        dist_timeout: seconds a process waits for the others before giving up with an error.
        overwrite: a new run may replace the glassformer files of a folder that is not empty.
        resume_changes: with resume, settings that may change (MAY_CHANGE_ON_RESUME) and their new values.
    """
    run_dir = Path(run_dir)
    world = init_world(pick_device(device), dist_timeout)
    device = local_device(pick_device(device), world)
    logger = Logger(run_dir, world.is_main, log, progress)
    if resume:
        config, run, splits, corpus = resume_run(config, resume_changes, run_dir, world, device, logger)
    else:
        run, splits, corpus = start_run(config, run_dir, overwrite, world, device, logger)
    # torch's first optimizer imports torch._dynamo (about 2 s): it is imported in a thread from here on,
    # while this one picks the examples' lengths and sorts the batch order (numpy and torch calls that
    # release the GIL); the data files were hashed before it started, at full speed.
    import_in_background()
    check_batch(config.batch_size, config.accumulate, world)
    data = training_data(config, run, splits, corpus, world, logger)
    checkpoint = read_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        checkpoint.load_model(run.model)
        data.order.load_state(checkpoint.state.order)
    if isinstance(data.order, BatchOrder):
        data.order.epoch_batches()  # the order of the epoch training starts in
    frozen = freeze(run.model, config)
    if frozen:
        logger(f"frozen: {len(frozen)} tensors ({frozen[0]} ... {frozen[-1]})")
    model = parallelize(run.model, world, fsdp)
    optimizer = make_optimizer(model, config)
    state = TrainingState()
    if checkpoint is not None:
        checkpoint.load_optimizer(run.model, optimizer)
        checkpoint.restore_rng()
        if world.rank:  # each process its own dropout masks, still reproducible
            torch.manual_seed(config.seed + 7_777 * world.rank + checkpoint.state.step)
        state = checkpoint.state
        logger(f"resumed from step {state.step}")
    schedule = budget.schedule_for(config, run.config.d_model, state.schedule)
    state.schedule = schedule.saved()
    if checkpoint is not None and budget.extension_note(config, schedule):
        logger(budget.extension_note(config, schedule))
    per_rank = config.batch_size // world.size
    if world.distributed or config.accumulate > 1:
        logger(f"global batch {config.batch_size} = {per_rank} per process x {world.size} processes "
               f"({per_rank // config.accumulate} per micro-batch x {config.accumulate} accumulation steps)")
    return Trainer(config, run, data, model, optimizer, schedule,
                   Checkpointer(run_dir, world), logger, world, device, state, fsdp)
