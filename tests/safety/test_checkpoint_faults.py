"""A kill after any single filesystem operation of a checkpoint write leaves a complete checkpoint."""

import errno
import os
import pathlib
import shutil
import tempfile

import pytest
import torch

import glassformer.train.checkpoint as checkpoint
from glassformer.errors import UserError
from glassformer.train.checkpoint import TrainingState, latest_checkpoint, read_checkpoint, save_checkpoint


class Killed(BaseException):
    """The process died here: nothing after it runs (not even `finally` file operations)."""


def _operations():
    """Every filesystem operation a checkpoint write uses, as (owner, attribute name)."""
    return [(os, name) for name in ("replace", "rename", "unlink", "remove", "rmdir", "mkdir", "fsync", "open")] + [
        (shutil, "rmtree"), (tempfile, "mkstemp"), (checkpoint, "save_file"), (pathlib.Path, "write_text"),
    ]


class FaultInjector:
    """Counts filesystem operations and kills the 'process' at operation `die_at` (1-based)."""

    def __init__(self, monkeypatch, die_at: int):
        self.count, self.die_at, self.dead = 0, die_at, False
        for owner, name in _operations():
            monkeypatch.setattr(owner, name, self._wrap(getattr(owner, name)))

    def _wrap(self, real):
        def operation(*args, **kwargs):
            if self.dead:
                raise Killed
            self.count += 1
            if self.count == self.die_at:
                self.dead = True
                raise Killed
            return real(*args, **kwargs)

        return operation


def _model_and_optimizer(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def _weights_of(path):
    model, _ = _model_and_optimizer(99)
    read_checkpoint(path).load_model(model)
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("scenario", ["same step written again", "next step"])
def test_a_kill_after_any_operation_leaves_a_resumable_checkpoint(tmp_path, monkeypatch, scenario):
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # durability is the disk's business; keeps the test fast
    base = tmp_path / "base"
    save_checkpoint(base, *_model_and_optimizer(4), TrainingState(step=4))
    save_checkpoint(base, *_model_and_optimizer(8), TrainingState(step=8))  # prunes step 4
    new_step = 8 if scenario == "same step written again" else 12
    old = _weights_of(base)
    new_model, new_optimizer = _model_and_optimizer(new_step + 1)
    new = [p.detach().clone() for p in new_model.parameters()]
    outcomes = []
    for die_at in range(1, 200):
        run = tmp_path / f"run{die_at}"
        shutil.copytree(base, run)
        with monkeypatch.context() as patch:
            injector = FaultInjector(patch, die_at)
            try:
                save_checkpoint(run, new_model, new_optimizer, TrainingState(step=new_step))
            except Killed:
                pass
        assert latest_checkpoint(run) is not None, f"killed at operation {die_at}: no checkpoint left"
        loaded = _weights_of(run)
        state = read_checkpoint(run).state
        if all(torch.equal(a, b) for a, b in zip(loaded, new)):
            outcomes.append("new")
            assert state.step == new_step
        else:
            assert all(torch.equal(a, b) for a, b in zip(loaded, old)), f"killed at operation {die_at}: mixed weights"
            assert state.step == 8
            outcomes.append("old")
        # Training goes on from there: the next checkpoint is written and found despite the debris.
        save_checkpoint(run, *_model_and_optimizer(20), TrainingState(step=20))
        assert read_checkpoint(run).state.step == 20
        assert sorted(p.name for p in (run / "checkpoint").iterdir()) == ["LATEST", "step-0000020"]
        if not injector.dead:
            break
    else:
        pytest.fail("the checkpoint write never finished")
    # Killed anywhere before LATEST is replaced, the old checkpoint; after it, the new one.
    assert outcomes[0] == "old" and outcomes[-1] == "new" and len(outcomes) > 10
    assert outcomes == sorted(outcomes, key=lambda o: o == "new")


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, *_model_and_optimizer(4), TrainingState(step=4))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(UserError, match="cannot write the checkpoint of step 8 .No space left on device.; "
                                        "step-0000004 is kept"):
        save_checkpoint(tmp_path, *_model_and_optimizer(8), TrainingState(step=8))
    assert read_checkpoint(tmp_path).state.step == 4
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == ["LATEST", "step-0000004"]


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    model, optimizer = _model_and_optimizer(4)
    save_checkpoint(tmp_path, model, optimizer, TrainingState(step=4))
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    with pytest.raises(UserError, match="training diverged by step 8: 1.weight holds NaN .*; step-0000004 is kept"):
        save_checkpoint(tmp_path, model, optimizer, TrainingState(step=8))
    assert read_checkpoint(tmp_path).state.step == 4
