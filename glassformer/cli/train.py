"""`glassformer train`: train a model on a built-in task or the user's files, then report on it."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext

from glassformer.errors import UserError
from glassformer.train.config import OPTIMIZERS, SCHEDULES, TOKENIZERS, TrainConfig
from glassformer.cli._numbers import COUNT, FRACTION, NON_NEGATIVE, NON_NEGATIVE_COUNT, POSITIVE, PROBABILITY, SEED, real

# Flags derived from TrainConfig fields: name -> (type, help). Fields not listed are not flags.
_FLAGS = {
    "task": (str, "built-in task (see `glassformer tasks`); the default task when neither --task nor --data"),
    "data": (str, "your training file: TSV source<TAB>target, plain text, or TSV label<TAB>text"),
    "valid_data": (str, "your held-out file (split in half for validation and test); default: split off --data"),
    "kind": (str, "how --data is read: seq2seq, lm, mlm, classify, tag (CoNLL token<TAB>tag) or qa (JSON lines)"),
    "preset": (str, "model preset (see `glassformer describe`); default: the task's, or chosen from --data's size"),
    "steps": (COUNT, "optimiser steps in total (default: the task's)"),
    "minutes": (POSITIVE, "wall-clock budget in minutes; stops at whichever of --steps/--minutes comes first"),
    "batch_size": (COUNT, "examples per optimiser step (default: the task's 64, or chosen from --data's size)"),
    "accumulate": (COUNT, "gradient accumulation steps per optimiser step"),
    "lr": (POSITIVE, "peak learning rate (default: the task's, or chosen for the model's width; noam without "
                     "--lr: the paper's d_model^-0.5 scale)"),
    "schedule": (str, f"learning-rate schedule: {', '.join(SCHEDULES)} (default: the task's noam, or for --data "
                      "cosine with its warm-up and decay fitted to --steps or --minutes)"),
    "warmup": (COUNT, "warm-up steps (default: the task's; 5%% of the run for --data; 4000 with noam)"),
    "optimizer": (str, f"{', '.join(OPTIMIZERS)}"),
    "beta1": (FRACTION, "Adam beta1"),
    "beta2": (FRACTION, "Adam beta2"),
    "eps": (POSITIVE, "Adam epsilon"),
    "weight_decay": (NON_NEGATIVE, "weight decay"),
    "label_smoothing": (FRACTION, "label smoothing"),
    "clip": (NON_NEGATIVE, "gradient-norm clipping (0 turns it off)"),
    "dropout": (FRACTION, "override the preset's dropout"),
    "seed": (SEED, "seed for data order, initialisation, dropout and masking"),
    "eval_every": (COUNT, "validate every N steps"),
    "log_every": (COUNT, "log every N steps"),
    "checkpoint_every": (COUNT, "write a resumable checkpoint every N steps"),
    "eval_examples": (COUNT, "validation examples decoded for exact-match/BLEU at each validation"),
    "eval_sample": (NON_NEGATIVE_COUNT, "held-out examples scored at each validation and in the final test: a fixed "
                                        "seeded sample of at most N (0: the whole split)"),
    "tokenizer": (str, f"tokenizer kind: {', '.join(TOKENIZERS)}"),
    "vocab_size": (COUNT, "vocabulary cap (word/char) or target size (bpe/wordpiece)"),
    "mask_prob": (PROBABILITY, "masked-LM: fraction of tokens to predict"),
    "init": (str, "fine-tune: start from this run folder's (or Hugging Face folder's) weights and tokenizer"),
    "freeze_layers": (NON_NEGATIVE_COUNT, "fine-tune: keep the first N layers of each stack fixed"),
    "body_lr_scale": (real(0, 10, low_open=True), "fine-tune: the body's learning rate as a fraction of the head's"),
    "patience": (COUNT, "early stopping: stop after N validations without improvement"),
}

# Settings the built-in tasks start from unless the user gives the flag.
TASK_DEFAULTS = {"lr": 2e-3, "warmup": 200, "label_smoothing": 0.1, "eval_every": 250, "checkpoint_every": 250}
# --paper: the optimiser settings of "Attention Is All You Need" (section 5.3-5.4), as the flags would give them.
# lr None: the paper's d_model^-0.5 scale.
PAPER = {"schedule": "noam", "warmup": 4000, "lr": None, "beta1": 0.9, "beta2": 0.98, "eps": 1e-9, "label_smoothing": 0.1}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on a built-in task or your own data",
        description="Train a model, keep the best weights by validation, and report held-out results.",
    )
    defaults = TrainConfig()
    for name, (kind, text) in _FLAGS.items():
        default = getattr(defaults, name)
        shown = default is not None and name not in TASK_DEFAULTS and name not in ("batch_size", "schedule")
        suffix = f" (default: {default})" if shown else ""
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text + suffix)
    parser.add_argument("--paper", action="store_true",
                        help="the paper's optimiser settings: --schedule noam --warmup 4000 --beta1 0.9 --beta2 0.98 "
                             "--eps 1e-9 --label-smoothing 0.1 at the d_model^-0.5 rate (flags given beside it win); "
                             "without it, your own data gets a preset, batch size and rate chosen from the data and "
                             "a warm-up and decay fitted to --steps or --minutes")
    parser.add_argument("--out", default=None, help="run folder to write (default: runs/TASK)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint; only --steps, --minutes, --eval-every, "
                             "--eval-examples, --log-every, --checkpoint-every and --patience may change, any other "
                             "setting (preset, task, data file, optimiser) is refused when it differs")
    parser.add_argument("--overwrite", action="store_true",
                        help="--out may be a folder that is not empty: replace the run files there (config.json, "
                             "tokenizers, model.safetensors, checkpoint/, metrics.jsonl); without it such a folder is refused")
    parser.add_argument(
        "--bf16", action="store_true",
        help="bf16 autocast where the device does bf16 arithmetic natively (CUDA with bf16; a CPU with "
             "AVX512-BF16/AMX or ARM BF16); elsewhere it falls back to fp32 and says so, since emulated bf16 "
             "is many times slower (GLASSFORMER_FORCE_BF16=1 forces it)",
    )
    parser.add_argument("--pack", action="store_true",
                        help="language models on a text file: train on random blocks of max_len+1 tokens of the "
                             "lines packed end to end (<start> text <end> ...), not one padded line per example")
    parser.add_argument("--freeze-embeddings", action="store_true", help="fine-tune: keep the embeddings fixed")
    parser.add_argument("--separate-vocab", action="store_true", help="separate source and target vocabularies")
    parser.add_argument("--lowercase", action="store_true", help="lowercase text before tokenising")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--examples", type=NON_NEGATIVE_COUNT, default=5, help="test translations/predictions to show at the end")
    parser.add_argument("--fsdp", action="store_true",
                        help="under torchrun: shard parameters, gradients and optimiser state (FSDP2) instead of DDP")
    parser.add_argument("--dist-timeout", type=POSITIVE, default=300.0,
                        help="under torchrun: seconds to wait for the other processes before failing (default 300)")
    parser.set_defaults(func=train_command)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from the flags: given flags win, then the task's defaults, then the fields' own."""
    from glassformer.data.tasks import DEFAULT_TASK, get_task

    given = {name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None}
    if args.clip == 0:
        given["clip"] = None
    if args.paper:
        given = {**PAPER, **given}
    values = {}
    if args.data is None:
        task = get_task(args.task or DEFAULT_TASK)
        values.update(TASK_DEFAULTS, task=task.name, steps=task.default_steps)
    else:
        values.update(auto=auto_settings(given), schedule="cosine")
    values.update(given)
    values.update(pack=args.pack, bf16=args.bf16, shared_vocab=not args.separate_vocab, lowercase=args.lowercase,
                  freeze_embeddings=args.freeze_embeddings)
    return TrainConfig(**values)


def auto_settings(given: dict) -> list[str]:
    """What a run on the user's own data chooses itself: each setting whose flag was not given;
    none of the schedule's when it is the paper's (--schedule noam keeps warm-up 4000 and the
    d_model^-0.5 rate unless --warmup/--lr say otherwise)."""
    chosen = [name for name in ("preset", "batch_size", "lr", "warmup") if name not in given]
    if given.get("schedule") == "noam":
        return [name for name in chosen if name not in ("lr", "warmup")]
    return chosen + ["decay"] * (given.get("schedule") != "constant")


# Flags without a value that shape the run: (flag, TrainConfig field, the field's value when the flag is given).
_SWITCHES = (("bf16", "bf16", True), ("separate_vocab", "shared_vocab", False), ("lowercase", "lowercase", True),
             ("freeze_embeddings", "freeze_embeddings", True))


def check_resume_flags(args: argparse.Namespace, out) -> None:
    """--resume with a flag that would change what the run computes is refused, naming each difference."""
    from glassformer.run_folder import read_run_config
    from glassformer.train.build import MAY_CHANGE_ON_RESUME

    saved = read_run_config(out).get("train") or {}
    differ = []
    for name in _FLAGS:
        value = getattr(args, name)
        if value is None or name in MAY_CHANGE_ON_RESUME:
            continue
        value = None if name == "clip" and value == 0 else value
        if saved.get(name) != value:
            differ.append(f"--{name.replace('_', '-')} {getattr(args, name)} (the run has {saved.get(name)})")
    for flag, name, value in _SWITCHES:
        if getattr(args, flag) and saved.get(name) != value:
            differ.append(f"--{flag.replace('_', '-')} (the run was set up without it)")
    if differ:
        may = ", ".join("--" + n.replace("_", "-") for n in MAY_CHANGE_ON_RESUME)
        raise UserError(f"{out}: --resume continues the run as it was set up, but {'; '.join(differ)}; only {may} "
                        "may change (start a new run for the rest)")


def train_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from glassformer.folder_guard import FolderLock

    if args.resume:
        if args.out is None:
            raise UserError("--resume needs --out DIR, the run folder to continue")
        config = TrainConfig(steps=args.steps, minutes=args.minutes)
        check_resume_flags(args, Path(args.out))
    else:
        config = config_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / (config.task or Path(config.data).stem)
    if args.resume and args.overwrite:
        raise UserError("--resume continues a run and --overwrite replaces it: give one of them")
    # One process writes a run folder at a time (under torchrun, the first process holds the lock).
    first = int(os.environ.get("RANK", "0")) == 0
    with FolderLock(out) if first and (out.is_dir() or not args.resume) else nullcontext():
        return _train(args, config, out)


def _train(args: argparse.Namespace, config: TrainConfig, out) -> int:
    from glassformer.train.build import MAY_CHANGE_ON_RESUME, build_trainer
    from glassformer.train.distributed import shutdown

    changes = {name: getattr(args, name) for name in MAY_CHANGE_ON_RESUME
               if name not in ("steps", "minutes") and getattr(args, name) is not None}
    trainer = build_trainer(config, out, resume=args.resume, device=args.device, progress=not args.no_progress,
                            fsdp=args.fsdp, dist_timeout=args.dist_timeout, overwrite=args.overwrite,
                            resume_changes=changes if args.resume else None)
    _threads_for_small_models(trainer, args.threads)
    try:
        return _train_and_report(trainer, out, args.examples)
    except RuntimeError as error:
        if not trainer.world.distributed:
            raise
        # A collective that timed out or lost a peer: say so in one line instead of a traceback.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"glassformer train: error: process {trainer.world.rank} of {trainer.world.size} lost contact with "
              f"the others ({first[:200]})", file=sys.stderr)
        return 1
    finally:
        shutdown(trainer.world)


# Below this many parameters a CPU step is a few small matrix products: a second intra-op thread
# gains little on an idle machine and, when another process holds a core, makes each step wait on it.
SMALL_MODEL = 2_000_000


def _threads_for_small_models(trainer, threads: int | None) -> None:
    """One CPU thread for a small model unless --threads or OMP_NUM_THREADS says otherwise."""
    import torch

    from glassformer.models import count_parameters

    if threads is not None or "OMP_NUM_THREADS" in os.environ or trainer.device.type != "cpu":
        return
    if count_parameters(trainer.run.model) < SMALL_MODEL and torch.get_num_threads() > 1:
        torch.set_num_threads(1)
        trainer.log("1 CPU thread for this small model (--threads N to use more)")


def _train_and_report(trainer, out, n_examples: int) -> int:
    from glassformer.cli._output import format_metrics, print_examples

    say = trainer.log  # the first process speaks; the others print nothing
    result = trainer.fit()
    say(f"trained {result.step} steps in {result.elapsed:.0f} s (stopped by {result.stopped_by}); "
        f"best validation at step {result.best_step}")
    best = trainer.best_run()  # the best weights, as every later command will use them
    metrics = trainer.evaluate_run(best, "test")
    say("test" + trainer.coverage("test") + ": " + format_metrics(metrics))
    if trainer.world.is_main:
        print_examples(best, trainer.splits.test[:n_examples], trainer.device)
    say(f"run folder: {out}")
    return 0
