"""Training checkpoints: weights, optimiser, schedule position and every RNG state, with no pickle.

Layout inside a run folder:
    checkpoint/LATEST              the name of the newest complete checkpoint
    checkpoint/step-000500/        model.safetensors, optimizer.safetensors, state.json

A checkpoint is written into a hidden folder, renamed into place in one step, and only then
named in LATEST (itself replaced atomically): a crash at any moment leaves the previous
checkpoint loadable.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from glassformer.errors import UserError
from glassformer.files import atomic_write_text
from glassformer.run_folder import (
    WEIGHTS_FILE, current_name, load_weights, save_tensors, unique_state, weights_metadata,
)
from glassformer.train.distributed import barrier, full_tensor, shard_like

CHECKPOINT_DIR = "checkpoint"
LATEST = "LATEST"


@dataclass
class TrainingState:
    """Where training stands, besides weights and optimiser moments."""

    step: int = 0
    order: dict[str, int] = field(default_factory=lambda: {"epoch": 0, "position": 0})
    best_metric: float | None = None
    best_step: int | None = None
    elapsed: float = 0.0
    targets_seen: int = 0
    schedule: dict | None = None
    """A fitted schedule's warm-up and end as they stand (budget.Schedule.saved())."""


def _optimizer_tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimiser state keyed by parameter name, gathered whole: any number of processes can load it.

    Returns tensors for safetensors ("NAME::SLOT") and the rest (hyperparameters) for JSON.
    """
    names = {id(p): name for name, p in model.named_parameters()}
    tensors, scalars = {}, {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for slot, value in optimizer.state.get(parameter, {}).items():
                key = f"{names[id(parameter)]}::{slot}"
                if torch.is_tensor(value):
                    tensors[key] = full_tensor(value).detach().contiguous().cpu()
                else:
                    scalars[key] = value
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _load_optimizer(
    model: nn.Module, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict[str, Any]
) -> None:
    for group, saved in zip(optimizer.param_groups, rest["param_groups"]):
        group.update({k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
    slots: dict[str, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *rest["scalars"].items()]:
        name, slot = key.split("::", 1)
        name = current_name(name)
        slots.setdefault(name, {})[slot] = value
    for name, parameter in model.named_parameters():
        if name not in slots:
            continue
        state = {}
        for slot, value in slots[name].items():
            if torch.is_tensor(value) and value.dim() > 0:
                value = shard_like(value, parameter) if hasattr(parameter, "device_mesh") else value.to(parameter.device)
            state[slot] = value
        optimizer.state[parameter] = state


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    rest = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, rest


def _set_rng_state(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = rest["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rest["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_checkpoint(
    run_dir: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    keep: int = 1,
    write: bool = True,
) -> Path:
    """Write a complete checkpoint for `state.step` and make it the latest, atomically.

    Args:
        model: the model itself (unwrapped); sharded weights are gathered whole.
        write: False on every process but the first, which still takes part in gathering.
    """
    weights = unique_state(model)
    opt_tensors, opt_rest = _optimizer_tensors(model, optimizer)
    name = f"step-{state.step:07d}"
    if not write:
        return Path(run_dir) / CHECKPOINT_DIR / name
    broken = [key for key, tensor in weights.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if broken:  # a step that overflowed: keep the last good checkpoint rather than replace it by NaNs
        previous = latest_checkpoint(run_dir)
        kept = f"{previous.name} is kept" if previous is not None else "there is no earlier checkpoint"
        raise UserError(f"training diverged by step {state.step}: {broken[0]} holds NaN or infinite values, so no "
                        f"checkpoint is written; {kept} (try a lower --lr, or --clip)")
    try:
        return _write_checkpoint(Path(run_dir), name, weights, opt_tensors, opt_rest, state, keep)
    except OSError as error:  # a full disk, a read-only folder: the previous checkpoint is kept
        shutil.rmtree(Path(run_dir) / CHECKPOINT_DIR / f".{name}.partial", ignore_errors=True)
        previous = latest_checkpoint(run_dir)
        kept = f"{previous.name} is kept" if previous is not None else "there is no earlier checkpoint"
        raise UserError(f"{run_dir}: cannot write the checkpoint of step {state.step} "
                        f"({error.strerror or error}); {kept}") from None


def _write_checkpoint(run_dir: Path, name: str, weights: dict[str, torch.Tensor], opt_tensors: dict[str, torch.Tensor],
                      opt_rest: dict[str, Any], state: TrainingState, keep: int) -> Path:
    root = run_dir / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(weights, str(tmp / "model.safetensors"), metadata=weights_metadata(weights))
    rng_tensors, rng_rest = _rng_state()
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    document = {"training": state.__dict__, "optimizer": opt_rest, "rng": rng_rest}
    (tmp / "state.json").write_text(json.dumps(document) + "\n", encoding="utf-8")
    for path in tmp.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    # A step written a second time (the last step, or a stop right after a checkpoint) goes beside
    # the first as step-N.1: the checkpoint LATEST names is never removed before its successor is
    # complete and named, so a kill after any single operation leaves one to resume from.
    final, copy = root / name, 0
    while final.exists():
        copy += 1
        final = root / f"{name}.{copy}"
    os.replace(tmp, final)
    atomic_write_text(root / LATEST, final.name + "\n")
    older = sorted((p for p in root.glob("step-*") if p != final), key=_order)
    for path in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".step-*.partial"):
        shutil.rmtree(path, ignore_errors=True)  # left by an earlier crash
    for path in root.glob(f".{LATEST}.*.tmp"):
        path.unlink(missing_ok=True)
    return final


def _order(path: Path) -> tuple[int, int]:
    """(step, copy) of a checkpoint folder named step-N or step-N.K, for sorting by age."""
    step, _, copy = path.name.removeprefix("step-").partition(".")
    try:
        return int(step), int(copy or 0)
    except ValueError:
        return -1, 0


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    root = Path(run_dir) / CHECKPOINT_DIR
    pointer = root / LATEST
    if pointer.is_file():
        candidate = root / pointer.read_text(encoding="utf-8").strip()
        if (candidate / "state.json").is_file():
            return candidate
    complete = sorted((p for p in root.glob("step-*") if (p / "state.json").is_file()), key=_order)
    return complete[-1] if complete else None


@dataclass
class Checkpoint:
    """A checkpoint read from disk, applied in steps: weights before the model is wrapped or
    sharded, the optimiser after it is built, the RNG states last."""

    path: Path
    state: TrainingState
    document: dict[str, Any]

    def load_model(self, model: nn.Module) -> None:
        load_weights(model, self.path / "model.safetensors")

    def load_optimizer(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        _load_optimizer(model, optimizer, load_file(str(self.path / "optimizer.safetensors")), self.document["optimizer"])

    def restore_rng(self) -> None:
        _set_rng_state(load_file(str(self.path / "rng.safetensors")), self.document["rng"])


def read_checkpoint(run_dir: str | Path) -> Checkpoint:
    """The latest checkpoint of a run; UserError when there is none."""
    path = latest_checkpoint(run_dir)
    if path is None:
        raise UserError(f"{run_dir}: no checkpoint to resume from (train without --resume first)")
    document = json.loads((path / "state.json").read_text(encoding="utf-8"))
    return Checkpoint(path, TrainingState(**document["training"]), document)


class Checkpointer:
    """Where a run's checkpoints and best weights go: the first process writes, all take part.

    Args:
        run_dir: the run folder.
        world: the processes training together.
    """

    def __init__(self, run_dir: str | Path, world):
        self.run_dir, self.world = Path(run_dir), world

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainingState) -> None:
        """A resumable checkpoint of the step just taken (see `save_checkpoint`)."""
        save_checkpoint(self.run_dir, model, optimizer, state, write=self.world.is_main)
        barrier(self.world)

    def save_best(self, model: nn.Module) -> None:
        """The weights every command uses, model.safetensors (gathering shards takes every process)."""
        state = unique_state(model)
        if self.world.is_main:
            save_tensors(state, self.run_dir / WEIGHTS_FILE)

    def latest(self) -> Path | None:
        return latest_checkpoint(self.run_dir)
