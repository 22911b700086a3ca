"""Numeric options are checked when parsed, --resume refuses changed settings, a NaN loss stops training."""

import math

import pytest
import torch
from safetensors.torch import load_file

import glassformer.train.trainer as trainer
from glassformer.cli import main
from glassformer.errors import ConfigError
from glassformer.train.checkpoint import read_checkpoint
from glassformer.train.config import TrainConfig

BAD_NUMBERS = [
    (["train", "--lr", "nan"], "--lr: expected a finite number > 0, got 'nan'"),
    (["train", "--lr", "-1"], "--lr: expected a finite number > 0"),
    (["train", "--clip", "-1"], "--clip: expected a finite number >= 0"),
    (["train", "--mask-prob", "2"], "--mask-prob: expected a finite number > 0 and < 1"),
    (["train", "--beta1", "1.5"], "--beta1: expected a finite number >= 0 and < 1"),
    (["train", "--beta2", "1"], "--beta2: expected a finite number >= 0 and < 1"),
    (["train", "--minutes", "inf"], "--minutes: expected a finite number > 0, got 'inf'"),
    (["train", "--minutes", "nan"], "--minutes: expected a finite number > 0"),
    (["train", "--steps", "0"], "--steps: expected a whole number >= 1"),
    (["train", "--dropout", "1"], "--dropout: expected a finite number >= 0 and < 1"),
    (["train", "--batch-size", "x"], "--batch-size: expected a whole number >= 1, got 'x'"),
    (["explain", "--lr", "nan"], "--lr: expected a finite number > 0"),
    (["attention", "--max-steps", "0"], "--max-steps: expected a whole number >= 1"),
    (["trace", "--preset", "tiny-lm", "--batch", "-3"], "--batch: expected a whole number >= 1"),
    (["generate", "--model", "x", "--prompt", "a", "--temperature", "0"], "--temperature: expected a finite number > 0"),
    (["generate", "--model", "x", "--prompt", "a", "--top-p", "1.5"], "--top-p: expected a finite number > 0 and <= 1"),
]


@pytest.mark.parametrize("argv, message", BAD_NUMBERS, ids=[" ".join(a) for a, _ in BAD_NUMBERS])
def test_bad_numbers_are_one_line_and_exit_2_at_parse_time(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("field, value", [("lr", math.nan), ("lr", -1.0), ("clip", -1.0), ("mask_prob", 2.0),
                                          ("beta1", 1.5), ("minutes", math.inf), ("eps", 0.0), ("dropout", 1.0)])
def test_the_library_checks_the_same_ranges(field, value):
    with pytest.raises(ConfigError, match=f"{field} must be a finite number in"):
        TrainConfig(**{field: value})


def test_an_unknown_device_is_one_line(tmp_path, capsys):
    assert main(["train", "--task", "grammar-lm", "--device", "banana", "--out", str(tmp_path / "r")]) == 2
    assert "--device 'banana' is not a device" in capsys.readouterr().err


@pytest.fixture(scope="module")
def data_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    data = folder / "text.txt"
    data.write_text("\n".join(f"the cat {w} on the mat number {i % 7}" for i, w in enumerate(["sat", "lay", "ran"] * 12)))
    out = folder / "run"
    assert main(["train", "--data", str(data), "--kind", "lm", "--preset", "tiny-lm", "--steps", "2", "--batch-size", "4",
                 "--eval-every", "2", "--checkpoint-every", "2", "--lr", "0.002", "--no-progress", "--examples", "0",
                 "--out", str(out)]) == 0
    return data, out


@pytest.mark.parametrize("extra, message", [
    (["--preset", "small-lm"], "--preset small-lm (the run has tiny-lm)"),
    (["--lr", "0.01"], "--lr 0.01 (the run has 0.002)"),
    (["--task", "grammar-lm"], "--task grammar-lm (the run has None)"),
    (["--lowercase"], "--lowercase (the run was set up without it)"),
])
def test_resume_refuses_changed_settings_and_names_them(data_run, extra, message, capsys):
    _, out = data_run
    assert main(["train", "--resume", "--out", str(out), "--steps", "4", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "only --steps, --minutes, --eval-every" in err


def test_resume_refuses_a_changed_data_file(data_run, capsys):
    data, out = data_run
    text = data.read_text()
    try:
        data.write_text(text + "\na new line")
        assert main(["train", "--resume", "--out", str(out), "--steps", "4", "--no-progress"]) == 2
        assert f"{data} has changed since the run started" in capsys.readouterr().err
    finally:
        data.write_text(text)


def test_a_non_finite_loss_stops_and_keeps_the_last_checkpoint_and_best_model(tmp_path, monkeypatch, capsys, data_run):
    real, calls = trainer.cross_entropy, {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * math.nan if calls["n"] == 3 else loss

    monkeypatch.setattr(trainer, "cross_entropy", poisoned)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data_run[0]), "--kind", "lm", "--preset", "tiny-lm", "--steps", "6",
                 "--batch-size", "8", "--eval-every", "2", "--checkpoint-every", "2", "--no-progress",
                 "--examples", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "training diverged at step 3: the training loss is nan; stopped and kept the checkpoint step-0000002 " \
           "and the best model of step 2" in err
    assert read_checkpoint(out).state.step == 2
    assert all(torch.isfinite(t).all() for t in load_file(str(out / "model.safetensors")).values())
