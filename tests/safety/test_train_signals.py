"""Ctrl-C and SIGTERM stop training between steps, never inside one; resume is then bit-identical."""

import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from glassformer.cli import main
from glassformer.train.checkpoint import latest_checkpoint, read_checkpoint

TINY = ["--kind", "lm", "--preset", "tiny-lm", "--batch-size", "8", "--eval-every", "4", "--checkpoint-every", "4",
        "--no-progress", "--dropout", "0.1", "--examples", "0"]


def _train(out, *extra):
    data = out.parent / "text.txt"  # a small file: each training starts in a fraction of a built-in task's time
    data.write_text("\n".join(f"the {a} {v} on the {b} {i % 5}" for i, (a, v, b) in
                              enumerate([("cat", "sat", "mat"), ("dog", "lay", "rug"), ("bird", "ran", "roof")] * 16)))
    return main(["train", "--data", str(data), "--out", str(out), *TINY, *extra])


def _resume(out, steps=10):
    return main(["train", "--resume", "--out", str(out), "--steps", str(steps), "--no-progress", "--examples", "0"])


def _signal_inside_optimizer_step(monkeypatch, at_call: int, signum: int):
    """Deliver signum to ourselves in the middle of the at_call-th optimizer step of this process."""
    real_step = torch.optim.Adam.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            os.kill(os.getpid(), signum)  # Python runs the handler here, before the update is applied
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)


def _weights(run_dir):
    return load_file(str(latest_checkpoint(run_dir) / "model.safetensors"))


def test_signals_at_several_points_then_resume_is_bit_identical(tmp_path, monkeypatch, capsys):
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)  # SIGINT is ignored in a background job
    assert _train(tmp_path / "whole", "--steps", "10") == 0
    parts = tmp_path / "parts"
    with monkeypatch.context() as patch:
        _signal_inside_optimizer_step(patch, 3, signal.SIGINT)
        assert _train(parts, "--steps", "10") == 130
    assert "interrupted (SIGINT) after step 3; checkpoint saved" in capsys.readouterr().out
    assert read_checkpoint(parts).state.step == 3
    with monkeypatch.context() as patch:  # steps 4 (a checkpoint step) and 5, stopped inside step 5
        _signal_inside_optimizer_step(patch, 2, signal.SIGTERM)
        assert _resume(parts) == 130
    assert read_checkpoint(parts).state.step == 5
    with monkeypatch.context() as patch:  # stopped in step 8, right where a checkpoint is due anyway
        _signal_inside_optimizer_step(patch, 3, signal.SIGINT)
        assert _resume(parts) == 130
    assert latest_checkpoint(parts).name == "step-0000008"  # written once, not twice
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers  # the caller's handlers are back
    assert _resume(parts) == 0
    whole, resumed = _weights(tmp_path / "whole"), _weights(parts)
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    optimizer = lambda d: load_file(str(latest_checkpoint(d) / "optimizer.safetensors"))  # noqa: E731
    assert all(torch.equal(a, b) for a, b in zip(optimizer(tmp_path / "whole").values(), optimizer(parts).values()))
    losses = lambda d: {r["step"]: r["loss"] for r in map(json.loads, open(d / "metrics.jsonl")) if "lr" in r}  # noqa: E731
    assert losses(parts) == losses(tmp_path / "whole")
