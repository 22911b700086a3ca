"""The training loop: steps, schedule, validation with the best model kept, checkpoints, logs."""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from glassformer.config import ModelConfig, get_preset
from glassformer.errors import UserError
from glassformer.files import file_sha256
from glassformer.folder_guard import check_output_folder
from glassformer.models import build_model, count_parameters
from glassformer.run_folder import WEIGHTS_FILE, Run, load_run, read_run_config, save_run, save_tensors, unique_state
from glassformer.data import Splits
from glassformer.train import budget
from glassformer.train.batches import BatchOrder, Encoded, encode_examples, make_batch
from glassformer.train.blocks import BlockOrder, PackedStream
from glassformer.train.checkpoint import TrainingState, latest_checkpoint, read_checkpoint, save_checkpoint
from glassformer.train.config import TrainConfig
from glassformer.train.distributed import (
    World, all_reduce_sum, barrier, check_batch, init_world, local_device, parallelize,
)
from glassformer.train.evaluate import PRIMARY_METRIC, evaluate, is_better
from glassformer.train.loss import cross_entropy, model_outputs
from glassformer.train.precision import Precision, choose_precision, force_from_env
from glassformer.train.corpus import sample_positions, uses_prepared_data
from glassformer.train.setup import load_prepared_corpus, load_splits, prepare
from glassformer.train.signals import deferred_stop

METRICS_FILE = "metrics.jsonl"
# Settings a resumed run may change: they decide when to stop, evaluate, log and save, never what is computed.
MAY_CHANGE_ON_RESUME = ("steps", "minutes", "eval_every", "eval_examples", "log_every", "checkpoint_every", "patience")
DEFAULT_STEPS = budget.DEFAULT_STEPS


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


def data_hashes(config: TrainConfig) -> dict[str, str]:
    """SHA-256 of the user's data files (none for a built-in task), recorded so --resume sees a change."""
    return {path: file_sha256(path) for path in (config.data, config.valid_data) if path is not None}


@dataclass
class Result:
    """What a finished (or stopped) training run reports."""

    run_dir: Path
    step: int
    metrics: dict[str, float]
    best_step: int | None
    elapsed: float
    stopped_by: str
    history: list[dict] = field(default_factory=list)


HEAD_PREFIXES = ("head.", "lm_head.")


def is_head(name: str) -> bool:
    """Whether a parameter belongs to the task head rather than the body."""
    return name.startswith(HEAD_PREFIXES)


def freeze(model: nn.Module, config: TrainConfig) -> list[str]:
    """Turn off gradients for the embeddings and/or the first layers; returns the frozen names."""
    frozen = []
    for name, parameter in model.named_parameters():
        embedding = "embed." in name and not is_head(name)
        layer = int(name.split(".layers.")[1].split(".")[0]) if ".layers." in name else None
        if (config.freeze_embeddings and embedding) or (layer is not None and layer < config.freeze_layers):
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam(W) over the trainable parameters: the head at the scheduled rate, the body scaled."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not is_head(n)], "scale": config.body_lr_scale},
        {"params": [p for n, p in named if is_head(n)], "scale": 1.0},
    ]
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(
        [g for g in groups if g["params"]], lr=0.0, betas=(config.beta1, config.beta2), eps=config.eps,
        weight_decay=config.weight_decay,
    )


BODY_FIELDS = ("d_model", "attn_width", "n_heads", "d_ff", "n_layers", "decoder_layers")


def check_same_body(init: Run, preset: ModelConfig, name: str) -> None:
    """A preset given with --init must describe the same body, or no weight could carry over."""
    fields = BODY_FIELDS if init.config.family == "encoder-decoder" else BODY_FIELDS[:-1]
    differ = [f for f in fields if getattr(init.config, f) != getattr(preset, f)]
    if differ:
        ours = ", ".join(f"{f}={getattr(init.config, f)}" for f in differ)
        theirs = ", ".join(f"{f}={getattr(preset, f)}" for f in differ)
        raise UserError(f"--init {init.path} has {ours} but preset {name!r} has {theirs}: its weights cannot carry over")


def carry_over(model: nn.Module, init: Run, same_head: bool) -> dict[str, list[str]]:
    """Copy the fine-tuned run's weights into model where names and shapes fit.

    Args:
        same_head: the head means the same thing (same kind and labels), so it is kept too.
    Returns:
        the tensor names loaded, created fresh and dropped.
    """
    source = unique_state(init.model)
    own = unique_state(model)
    loaded, created = {}, []
    for name, tensor in own.items():
        fits = name in source and source[name].shape == tensor.shape
        if fits and (same_head or not is_head(name)):
            loaded[name] = source[name]
        else:
            created.append(name)
    model.load_state_dict(loaded, strict=False)
    return {"loaded": sorted(loaded), "created": created, "dropped": sorted(set(source) - set(loaded))}


class Trainer:
    """Trains the model of a run folder; `fit()` runs until the step or time budget is spent.

    Args:
        config: the training configuration (for --resume, read back from the run folder).
        run_dir: where the run folder lives.
        resume: continue from the run folder's latest checkpoint.
        log: called with each line meant for the user (only the first process logs).
        progress: show a progress bar (first process only).
        fsdp: shard parameters, gradients and optimiser state over the processes (FSDP2).
        dist_timeout: seconds a process waits for the others before giving up with an error.
        overwrite: a new run may replace the glassformer files of a folder that is not empty.
        resume_changes: with resume, settings that may change (MAY_CHANGE_ON_RESUME) and their new values.
    """

    def __init__(
        self,
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
    ):
        self.run_dir = Path(run_dir)
        self.overwrite = overwrite
        self.resume_changes = resume_changes
        self.world = init_world(pick_device(device), dist_timeout)
        self.device = local_device(pick_device(device), self.world)
        self.log = log if self.world.is_main else (lambda line: None)
        self.progress = progress and self.world.is_main
        self.fsdp = fsdp
        if resume:
            self._resume(config)
        else:
            self._start(config)
        check_batch(self.config.batch_size, self.config.accumulate, self.world)
        self.encoded = self._encode_splits()
        if self.encoded["train"].skipped and not self.config.pack:  # packed blocks cut long lines instead
            self.log(f"skipped {self.encoded['train'].skipped} training examples longer than max_len={self.run.config.max_len}")
        if len(self.encoded["train"]) == 0 and not self.config.pack:
            raise UserError("no training example fits the model's maximum length")
        self.stream = None
        if self.config.pack:
            self.stream = PackedStream(self.corpus.stores["train"], self.corpus.indices["train"], self.run.config.max_len + 1)
            self.order = BlockOrder(self.config.batch_size, self.world.rank, self.world.size)
        else:
            self.order = BatchOrder(len(self.encoded["train"]), self.config.batch_size, self.config.seed,
                                    self.world.rank, self.world.size)
        checkpoint = read_checkpoint(self.run_dir) if resume else None
        if checkpoint is not None:
            checkpoint.load_model(self.run.model)
        frozen = freeze(self.run.model, self.config)
        if frozen:
            self.log(f"frozen: {len(frozen)} tensors ({frozen[0]} ... {frozen[-1]})")
        self.model = parallelize(self.run.model, self.world, fsdp)
        self.optimizer = make_optimizer(self.model, self.config)
        self.state = TrainingState()
        self.last_metrics: dict[str, float] = {}
        if checkpoint is not None:
            checkpoint.load_optimizer(self.run.model, self.optimizer)
            checkpoint.restore_rng()
            if self.world.rank:  # each process its own dropout masks, still reproducible
                torch.manual_seed(self.config.seed + 7_777 * self.world.rank + checkpoint.state.step)
            self.state = checkpoint.state
            self.order.load_state(self.state.order)
            self.log(f"resumed from step {self.state.step}")
        self.schedule = budget.schedule_for(self.config, self.run.config.d_model, self.state.schedule)
        self.state.schedule = self.schedule.saved()
        if checkpoint is not None and budget.extension_note(self.config, self.schedule):
            self.log(budget.extension_note(self.config, self.schedule))
        per_rank = self.config.batch_size // self.world.size
        if self.world.distributed or self.config.accumulate > 1:
            self.log(
                f"global batch {self.config.batch_size} = {per_rank} per process x {self.world.size} processes "
                f"({per_rank // self.config.accumulate} per micro-batch x {self.config.accumulate} accumulation steps)"
            )

    # Set-up --------------------------------------------------------------------------------
    def _encode_splits(self) -> dict[str, Encoded]:
        """The splits as ids; validation and test cut to a fixed sample of at most eval_sample examples."""
        c, max_len = self.config, self.run.config.max_len
        cap = c.eval_sample or None
        if self.corpus is not None:
            self.held_out_sizes = {name: self.corpus.size(name) for name in ("valid", "test")}
            return {"train": self.corpus.encoded("train", max_len),
                    "valid": self.corpus.encoded("valid", max_len, cap, c.seed),
                    "test": self.corpus.encoded("test", max_len, cap, c.seed + 1)}
        self.held_out_sizes = {name: len(getattr(self.splits, name)) for name in ("valid", "test")}
        self.splits = sample_splits(self.splits, cap, c.seed)
        return {
            name: encode_examples(
                getattr(self.splits, name), self.run.kind, self.run.source_tokenizer, self.run.target_tokenizer,
                self.run.labels, max_len,
            )
            for name in ("train", "valid", "test")
        }

    def coverage(self, split: str) -> str:
        """" (N of M examples, a fixed sample)" when a held-out split was sampled, else ""."""
        total, cap = self.held_out_sizes[split], self.config.eval_sample
        if not cap or total <= cap:
            return ""
        return f" (on a fixed sample of {cap:,} of its {total:,} examples; --eval-sample 0 scores them all)"

    def _prepare(self, config: TrainConfig, init: Run | None):
        """The data, tokenizers and model configuration; with several processes the first prepares
        a text file's corpus while the others wait, then they all read it from the cache."""
        if self.world.distributed and uses_prepared_data(config.data, config.kind):
            if self.world.is_main:
                prepare(config, init, self.progress, self.log)
            barrier(self.world)
        return prepare(config, init, self.progress, self.log)

    def _start(self, config: TrainConfig) -> None:
        if config.preset is not None:
            get_preset(config.preset)  # an unknown name is the first thing to hear about
        if not self.overwrite and latest_checkpoint(self.run_dir) is not None:
            raise UserError(f"{self.run_dir} already holds a training run; use --resume, another --out, or --overwrite")
        if self.world.is_main or not self.overwrite:
            check_output_folder(self.run_dir, "--out", overwrite=self.overwrite)
        barrier(self.world)  # the first process has cleared the folder before any other reads it
        torch.manual_seed(config.seed)
        init = self._init_run(config) if config.init else None
        prepared = self._prepare(config, init)
        for choice in prepared.choices:
            self.log(choice.line())
        self.config = config
        self.splits, self.corpus = prepared.splits, prepared.corpus
        model = build_model(prepared.model_config).to(self.device)  # the same on every process: same seed
        if init is not None:
            same_head = init.kind == prepared.kind and init.labels == prepared.labels
            moved = carry_over(model, init, same_head)
            self.log(f"init from {config.init}: loaded {len(moved['loaded'])} tensors")
            self.log("  created fresh: " + (", ".join(moved["created"]) or "none")
                     + ("" if same_head or not moved["created"] else
                        f" (new {prepared.kind} head" + (f" for labels {', '.join(prepared.labels)})" if prepared.labels else ")")))
            self.log("  dropped: " + (", ".join(moved["dropped"]) or "none"))
        torch.manual_seed(config.seed + 7_777 * self.world.rank)
        meta = {"task": config.task, "train": config.to_dict(), "data_sha256": data_hashes(config)}
        if init is not None and "framing" in init.meta:
            meta["framing"] = init.meta["framing"]  # an imported tokenizer keeps its own framing
        if self.world.is_main:
            save_run(
                self.run_dir, model, prepared.model_config, prepared.kind, prepared.source,
                None if prepared.target is prepared.source else prepared.target, prepared.labels, meta, weights=False,
            )
        self.run = Run(self.run_dir, model, prepared.model_config, prepared.kind, prepared.source, prepared.target,
                       prepared.labels, meta)

    def _init_run(self, config: TrainConfig) -> Run:
        init = load_run(config.init, device=self.device)
        if config.preset is not None:
            check_same_body(init, get_preset(config.preset), config.preset)
        return init

    def _resume(self, overrides: TrainConfig) -> None:
        document = read_run_config(self.run_dir)
        try:
            saved = TrainConfig.from_dict(document.get("train", {}))
        except (TypeError, ValueError) as error:
            raise UserError(f"{self.run_dir}: the training settings in config.json are damaged ({error})") from None
        # Only the budget and evaluation settings may change on resume; what shapes the computation stays.
        saved.steps = overrides.steps if overrides.steps is not None else saved.steps
        saved.minutes = overrides.minutes
        for name, value in (self.resume_changes or {}).items():
            if name not in MAY_CHANGE_ON_RESUME:
                raise UserError(f"--{name.replace('_', '-')} cannot change on --resume")
            setattr(saved, name, value)
        recorded = document.get("data_sha256") or {}
        for path, digest in data_hashes(saved).items():
            if path in recorded and recorded[path] != digest:
                raise UserError(f"{path} has changed since the run started (SHA-256 {recorded[path][:12]}... is now "
                                f"{digest[:12]}...); --resume needs the same data, or start a new run")
        self.config = saved
        self.run = load_run(self.run_dir, device=self.device, weights=False)
        self.run.model.train()
        self.corpus = None
        if uses_prepared_data(saved.data, saved.kind):
            if self.world.distributed and not self.world.is_main:
                barrier(self.world)
            self.corpus = load_prepared_corpus(saved, self.run.source_tokenizer, self.progress, self.log)
            if self.world.distributed and self.world.is_main:
                barrier(self.world)
            self.splits = Splits([], [], [])
            return
        prepared_kind, splits, _ = load_splits(saved)
        if prepared_kind != self.run.kind:
            raise UserError(f"{self.run_dir}: its data is now read as {prepared_kind!r}, but the run is {self.run.kind!r}")
        self.splits = splits

    # Training ------------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        return self.schedule.lr(step)

    def _refit(self, time_budget: budget.TimeBudget) -> None:
        """Fit the schedule to the steps the time left allows at the pace measured so far."""
        estimate = time_budget.total_steps(self.state.step, self.state.elapsed)
        if estimate is not None:
            estimate = min(estimate, self.config.steps or estimate)
            self.schedule = self.schedule.refit(estimate, self.state.step)
            self.state.schedule = self.schedule.saved()

    @cached_property
    def precision(self) -> Precision:
        """fp32, or bf16 autocast where --bf16 was given and the device does bf16 arithmetic natively."""
        return choose_precision(self.device, self.config.bf16, force=force_from_env())

    def _autocast(self):
        if not self.precision.bf16:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def train_step(self) -> tuple[float, int]:
        """One optimiser step over `accumulate` micro-batches; returns (mean loss, scored targets),
        both over all processes."""
        model, c = self.model, self.config
        model.train()
        step = self.state.step + 1
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(step) * group["scale"]
        self.optimizer.zero_grad(set_to_none=True)
        indices = self.order.next()
        micro = max(1, math.ceil(len(indices) / c.accumulate))
        chunks = [indices[i : i + micro] for i in range(0, len(indices), micro)]
        batches = [self._batch(chunk, step, i) for i, chunk in enumerate(chunks)]
        local_targets = sum(b.n_targets for b in batches)
        (total_targets,) = all_reduce_sum([float(local_targets)], self.world, self.device)
        loss_sum = 0.0
        for batch in batches:
            batch = batch.to(self.device)
            with self._autocast():
                logits = model_outputs(model, batch)
            loss = cross_entropy(logits, batch.targets, c.label_smoothing)
            # Weight each micro-batch by its share of all scored targets (times the number of
            # processes, whose gradients are averaged): the same gradient as one big batch.
            (loss * (self.world.size * batch.n_targets / max(total_targets, 1))).backward()
            loss_sum += loss.item() * batch.n_targets
        if c.clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip)
        (loss_sum,) = all_reduce_sum([loss_sum], self.world, self.device)
        if not math.isfinite(loss_sum):
            raise self._diverged(step, "training loss", loss_sum / max(total_targets, 1))  # before the step spoils the weights
        self.optimizer.step()
        self.state.step = step
        self.state.order = self.order.state()
        self.state.targets_seen += int(total_targets)
        return loss_sum / max(total_targets, 1), int(total_targets)

    def _batch(self, indices: list[int], step: int, micro: int):
        if self.stream is not None:
            return self.stream.batch(self.config.seed, step, self.config.batch_size, indices)
        generator = torch.Generator().manual_seed(self.config.seed * 7919 + step * 131 + micro)
        return make_batch(
            self.encoded["train"], indices, self.run.source_tokenizer, self.run.target_tokenizer,
            mask_prob=self.config.mask_prob, generator=generator,
        )

    def validate(self, split: str = "valid", limit: int | None = None) -> dict[str, float]:
        """Metrics on a held-out split; RNG states are left exactly as they were."""
        # Sharded (FSDP) models gather weights inside every forward, so all processes must run
        # the same forwards: each then evaluates everything; replicas split the work.
        world = World() if self.fsdp else self.world
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            return evaluate(self.run, self.encoded[split], getattr(self.splits, split), self.config.batch_size,
                            self.device, decode_limit=limit, world=world)

    def _append_metrics(self, record: dict) -> None:
        if not self.world.is_main:
            return
        with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _evaluate_and_keep_best(self) -> dict[str, float]:
        metrics = self.validate("valid", self.config.eval_examples)
        if not math.isfinite(metrics.get("loss", 0.0)):
            raise self._diverged(self.state.step, "validation loss", metrics["loss"])
        self._append_metrics({"step": self.state.step, "split": "valid", **metrics})
        key = PRIMARY_METRIC[self.run.kind]
        if self.state.best_metric is None or is_better(key, metrics[key], self.state.best_metric):
            self.state.best_metric, self.state.best_step = metrics[key], self.state.step
            state = unique_state(self.run.model)  # gathers shards: every process takes part
            if self.world.is_main:
                save_tensors(state, self.run_dir / WEIGHTS_FILE)
        self.last_metrics = metrics
        return metrics

    def _patience_ran_out(self) -> bool:
        c = self.config
        if c.patience is None or self.state.best_step is None:
            return False
        return (self.state.step - self.state.best_step) // c.eval_every >= c.patience

    def checkpoint(self) -> None:
        save_checkpoint(self.run_dir, self.run.model, self.optimizer, self.state, write=self.world.is_main)
        self._checkpointed = (self.state.step, self.state.best_step, self.state.best_metric)
        barrier(self.world)

    def _checkpoint_if_changed(self) -> None:
        """A checkpoint unless the last one already holds this very state (a step written twice)."""
        if getattr(self, "_checkpointed", None) != (self.state.step, self.state.best_step, self.state.best_metric):
            self.checkpoint()

    def _stop_agreed(self, stop) -> bool:
        """Whether any process was asked to stop: all stop after the same step (their collectives must match)."""
        if not self.world.distributed:
            return bool(stop)
        (asked,) = all_reduce_sum([1.0 if stop else 0.0], self.world, self.device)
        return asked > 0

    def _diverged(self, step: int, what: str, value: float) -> UserError:
        """The error that stops a run whose loss became infinite or NaN; nothing of it is saved."""
        last = latest_checkpoint(self.run_dir)
        kept = [f"the checkpoint {last.name}" if last is not None else "",
                f"the best model of step {self.state.best_step}" if self.state.best_step is not None else ""]
        kept = " and ".join(k for k in kept if k) or "nothing (no checkpoint yet)"
        return UserError(f"training diverged at step {step}: the {what} is "
                         f"{value}; stopped and kept {kept} (try a lower --lr, or --clip)")

    def fit(self) -> Result:
        """Train until `steps` or `minutes` runs out; keep the best weights in model.safetensors.

        Ctrl-C or SIGTERM stops after the step under way, with a checkpoint (then KeyboardInterrupt).
        """
        c = self.config
        total = c.steps if c.steps is not None else (None if c.minutes else DEFAULT_STEPS)
        n_params = count_parameters(self.run.model)  # sharded parameters report their whole size
        self.log(
            f"training {self.run.config.family} ({n_params:,} parameters) on {self.run.kind} data: "
            + (f"{self.stream.n_tokens:,} training tokens packed in blocks of {self.stream.block}"
               if self.stream is not None else f"{len(self.encoded['train']):,} training examples")
            + f", batch {c.batch_size}, device {self.device}"
        )
        if c.bf16:
            self.log(self.precision.reason)
        bar = _progress_bar(total, self.state.step, c.minutes, self.progress)
        start = time.perf_counter() - self.state.elapsed
        window_targets, window_start = 0, time.perf_counter()
        stopped_by, history = "steps", []
        time_budget = budget.TimeBudget(c.minutes * 60, self.state.step, self.state.elapsed) if budget.refits(c) else None
        loss = float("nan")
        with deferred_stop() as stop:
            try:
                while True:
                    if self._stop_agreed(stop):
                        stopped_by = "signal"
                        break
                    if total is not None and self.state.step >= total:
                        break
                    if c.minutes is not None and time.perf_counter() - start >= c.minutes * 60:
                        stopped_by = "minutes"
                        break
                    loss, n = self.train_step()
                    window_targets += n
                    self.state.elapsed = time.perf_counter() - start
                    if time_budget is not None:
                        self._refit(time_budget)
                    step = self.state.step
                    if step % c.log_every == 0 or step == 1:
                        rate = window_targets / max(time.perf_counter() - window_start, 1e-9)
                        record = {"step": step, "loss": round(loss, 5), "lr": self._lr(step),
                                  "targets_per_s": round(rate, 1), "elapsed": round(self.state.elapsed, 2)}
                        self._append_metrics(record)
                        history.append(record)
                        window_targets, window_start = 0, time.perf_counter()
                        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self._lr(step):.2e}", tok_s=f"{rate:,.0f}")
                    bar.update(_bar_advance(bar, c.minutes, self.state.elapsed))
                    if step % c.eval_every == 0:
                        metrics = self._evaluate_and_keep_best()
                        bar.write(f"step {step}: " + _format_metrics(metrics))
                        if self._patience_ran_out():
                            stopped_by = f"early stopping (no better validation in {c.patience} evaluations)"
                            break
                    if step % c.checkpoint_every == 0:
                        self.checkpoint()
                if stopped_by == "signal":
                    bar.close()
                    self._checkpoint_if_changed()
                    self.log(f"interrupted ({stop.signal or 'another process'}) after step {self.state.step}; "
                             "checkpoint saved, continue with --resume")
                    raise KeyboardInterrupt
            except KeyboardInterrupt:
                bar.close()
                if stopped_by != "signal":  # asked twice, or interrupted outside the handler's reach
                    last = latest_checkpoint(self.run_dir)
                    self.log("stopped at once; " + (f"--resume continues from {last.name}" if last else
                                                    "no checkpoint was written yet"))
                raise
            bar.close()
            if self.state.step % c.eval_every:
                self._evaluate_and_keep_best()
            self._checkpoint_if_changed()
        return Result(self.run_dir, self.state.step, self.last_metrics, self.state.best_step, self.state.elapsed,
                      stopped_by, history)


def sample_splits(splits: Splits, cap: int | None, seed: int) -> Splits:
    """The splits with validation and test cut to a fixed sample of at most cap examples each, in order."""
    def sample(examples: list, seed: int) -> list:
        return [examples[i] for i in sample_positions(len(examples), cap, seed)]

    return Splits(splits.train, sample(splits.valid, seed), sample(splits.test, seed + 1))


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kw):
        pass

    def write(self, line):
        print(line)

    def close(self):
        pass


def _progress_bar(total: int | None, done: int, minutes: float | None, show: bool):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    if total is not None and minutes is None:
        return tqdm(total=total, initial=done, unit="step", dynamic_ncols=True, mininterval=1.0)
    return tqdm(total=round(minutes * 60), unit="s", dynamic_ncols=True, mininterval=1.0,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}<{remaining}{postfix}]")


def _bar_advance(bar, minutes: float | None, elapsed: float) -> float:
    if minutes is None or not hasattr(bar, "n"):
        return 1
    return max(0.0, min(elapsed, minutes * 60) - bar.n)
