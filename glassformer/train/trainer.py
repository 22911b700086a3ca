"""The training loop: steps, schedule, validation with the best model kept, checkpoints, logs.

A Trainer is given its parts ready-made (`glassformer.train.build.build_trainer` makes them):
the run (model, tokenizers, kind), the data, the optimiser, the schedule, the checkpointer and
the logger. It changes none of them from outside the loop, and nothing outside changes it.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.load import load_model
from glassformer.models import count_parameters
from glassformer.run_folder import Run
from glassformer.tasks import KINDS
from glassformer.train.checkpoint import Checkpointer, TrainingState
from glassformer.train.config import TrainConfig
from glassformer.train.distributed import World, all_reduce_sum, barrier
from glassformer.train.evaluate import evaluate, is_better
from glassformer.train import budget
from glassformer.train.log import Logger, bar_advance, format_metrics
from glassformer.train.loss import cross_entropy, model_outputs
from glassformer.train.precision import Precision, choose_precision, force_from_env
from glassformer.train.signals import deferred_stop

DEFAULT_STEPS = budget.DEFAULT_STEPS


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


class Trainer:
    """Trains a run's model on its data; `fit()` runs until the step or time budget is spent.

    Args:
        config: the training configuration.
        run: the run being trained (its folder, model, tokenizers, kind and framing).
        data: the splits as ids and the batch order (`glassformer.train.build.TrainingData`).
        model: run.model, wrapped for several processes (DDP or FSDP) where there are several.
        optimizer: over the model's trainable parameters, each group with a "scale" of the rate.
        schedule: the learning rate of each step.
        checkpointer: where checkpoints and the best weights are written.
        log: lines, progress bar and metrics records (the first process only).
        world: the processes training together.
        device: this process's device.
        state: the step, best validation and batch position (a checkpoint's, when resumed).
        fsdp: the model is sharded, so every process must run every evaluation forward.
    """

    def __init__(self, config: TrainConfig, run: Run, data, model: nn.Module, optimizer: torch.optim.Optimizer,
                 schedule: budget.Schedule, checkpointer: Checkpointer, log: Logger, world: World, device: torch.device,
                 state: TrainingState, fsdp: bool = False):
        self.config, self.run, self.data = config, run, data
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.checkpointer, self.log = checkpointer, log
        self.world, self.device, self.state, self.fsdp = world, device, state, fsdp
        self.kind = KINDS[run.kind]
        self.run_dir = run.path
        self.last_metrics: dict[str, float] = {}
        self._checkpointed: tuple | None = None

    @property
    def encoded(self):
        return self.data.encoded

    @property
    def splits(self):
        return self.data.splits

    @property
    def held_out_sizes(self) -> dict[str, int]:
        return self.data.held_out_sizes

    def coverage(self, split: str) -> str:
        """" (N of M examples, a fixed sample)" when a held-out split was sampled, else ""."""
        total, cap = self.held_out_sizes[split], self.config.eval_sample
        if not cap or total <= cap:
            return ""
        return f" (on a fixed sample of {cap:,} of its {total:,} examples; --eval-sample 0 scores them all)"

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
        indices = self.data.order.next()
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
        self.state.order = self.data.order.state()
        self.state.targets_seen += int(total_targets)
        return loss_sum / max(total_targets, 1), int(total_targets)

    def _batch(self, indices: list[int], step: int, micro: int):
        if self.data.stream is not None:
            return self.data.stream.batch(self.config.seed, step, self.config.batch_size, indices)
        generator = torch.Generator().manual_seed(self.config.seed * 7919 + step * 131 + micro)
        run = self.run
        return self.kind.batch(self.encoded["train"], indices, run.source_tokenizer, run.target_tokenizer,
                               run.framing, self.config.mask_prob, generator)

    # Evaluation ----------------------------------------------------------------------------
    def validate(self, split: str = "valid", limit: int | None = None) -> dict[str, float]:
        """Metrics of the model being trained on a held-out split; RNG states are left exactly as they were."""
        # Sharded (FSDP) models gather weights inside every forward, so all processes must run
        # the same forwards: each then evaluates everything; replicas split the work.
        return self._evaluate(self.run, split, limit, World() if self.fsdp else self.world)

    def best_run(self) -> Run:
        """The run with the best weights kept (model.safetensors), whole on every process, as later commands load it."""
        barrier(self.world)
        return load_model(self.run_dir, device=self.device)

    def evaluate_run(self, run: Run, split: str = "test") -> dict[str, float]:
        """Metrics of another model of this run (the best one, reloaded) on a held-out split."""
        return self._evaluate(run, split, None, self.world)

    def _evaluate(self, run: Run, split: str, limit: int | None, world: World) -> dict[str, float]:
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            return evaluate(run, self.encoded[split], getattr(self.splits, split), self.config.batch_size,
                            self.device, decode_limit=limit, world=world)

    def _evaluate_and_keep_best(self) -> dict[str, float]:
        metrics = self.validate("valid", self.config.eval_examples)
        if not math.isfinite(metrics.get("loss", 0.0)):
            raise self._diverged(self.state.step, "validation loss", metrics["loss"])
        self.log.metrics({"step": self.state.step, "split": "valid", **metrics})
        key = self.kind.primary_metric
        if self.state.best_metric is None or is_better(key, metrics[key], self.state.best_metric):
            self.state.best_metric, self.state.best_step = metrics[key], self.state.step
            self.checkpointer.save_best(self.run.model)
        self.last_metrics = metrics
        return metrics

    def _patience_ran_out(self) -> bool:
        c = self.config
        if c.patience is None or self.state.best_step is None:
            return False
        return (self.state.step - self.state.best_step) // c.eval_every >= c.patience

    # Checkpoints and stopping ------------------------------------------------------------------
    def checkpoint(self) -> None:
        self.checkpointer.save(self.run.model, self.optimizer, self.state)
        self._checkpointed = (self.state.step, self.state.best_step, self.state.best_metric)

    def _checkpoint_if_changed(self) -> None:
        """A checkpoint unless the last one already holds this very state (a step written twice)."""
        if self._checkpointed != (self.state.step, self.state.best_step, self.state.best_metric):
            self.checkpoint()

    def _stop_agreed(self, stop) -> bool:
        """Whether any process was asked to stop: all stop after the same step (their collectives must match)."""
        if not self.world.distributed:
            return bool(stop)
        (asked,) = all_reduce_sum([1.0 if stop else 0.0], self.world, self.device)
        return asked > 0

    def _diverged(self, step: int, what: str, value: float) -> UserError:
        """The error that stops a run whose loss became infinite or NaN; nothing of it is saved."""
        last = self.checkpointer.latest()
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
        stream = self.data.stream
        self.log(
            f"training {self.run.config.family} ({n_params:,} parameters) on {self.run.kind} data: "
            + (f"{stream.n_tokens:,} training tokens packed in blocks of {stream.block}"
               if stream is not None else f"{len(self.encoded['train']):,} training examples")
            + f", batch {c.batch_size}, device {self.device}"
        )
        if c.bf16:
            self.log(self.precision.reason)
        bar = self.log.bar(total, self.state.step, c.minutes)
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
                        self.log.metrics(record)
                        history.append(record)
                        window_targets, window_start = 0, time.perf_counter()
                        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self._lr(step):.2e}", tok_s=f"{rate:,.0f}")
                    bar.update(bar_advance(bar, c.minutes, self.state.elapsed))
                    if step % c.eval_every == 0:
                        metrics = self._evaluate_and_keep_best()
                        bar.write(f"step {step}: " + format_metrics(metrics))
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
                    last = self.checkpointer.latest()
                    self.log("stopped at once; " + (f"--resume continues from {last.name}" if last else
                                                    "no checkpoint was written yet"))
                raise
            bar.close()
            if self.state.step % c.eval_every:
                self._evaluate_and_keep_best()
            self._checkpoint_if_changed()
        return Result(self.run_dir, self.state.step, self.last_metrics, self.state.best_step, self.state.elapsed,
                      stopped_by, history)
