"""Resume is exact, checkpoints survive a crash mid-write, and run folders hold no pickle."""

import json

import pytest
import torch
from safetensors.torch import load_file

import glassformer.train.checkpoint as checkpoint
from glassformer.cli import main
from glassformer.train.checkpoint import latest_checkpoint

TINY = ["--preset", "tiny-lm", "--batch-size", "16", "--eval-every", "4", "--checkpoint-every", "4",
        "--eval-examples", "8", "--no-progress", "--dropout", "0.1"]


def _train(out, *extra):
    assert main(["train", "--task", "grammar-lm", "--out", str(out), *TINY, *extra]) == 0


def _weights(run_dir):
    return load_file(str(latest_checkpoint(run_dir) / "model.safetensors"))


def test_resume_gives_bit_identical_weights(tmp_path):
    _train(tmp_path / "whole", "--steps", "12")
    _train(tmp_path / "parts", "--steps", "6")
    assert main(["train", "--resume", "--out", str(tmp_path / "parts"), "--steps", "12", "--no-progress"]) == 0
    whole, parts = _weights(tmp_path / "whole"), _weights(tmp_path / "parts")
    assert whole.keys() == parts.keys()
    assert all(torch.equal(whole[k], parts[k]) for k in whole)
    losses = lambda d: [r["loss"] for r in map(json.loads, open(d / "metrics.jsonl")) if "lr" in r]  # noqa: E731
    assert losses(tmp_path / "whole")[-1] == losses(tmp_path / "parts")[-1]


def test_crash_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    _train(tmp_path / "run", "--steps", "4")
    first = latest_checkpoint(tmp_path / "run")
    real_save = checkpoint.save_file

    def dying_save(tensors, path, *args, **kwargs):
        real_save(tensors, path, *args, **kwargs)
        raise KeyboardInterrupt  # the process is killed right after writing the optimiser state

    monkeypatch.setattr(checkpoint, "save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        from glassformer.train.config import TrainConfig
        from glassformer.train.build import build_trainer

        trainer = build_trainer(TrainConfig(steps=8), tmp_path / "run", resume=True, progress=False, log=lambda s: None)
        trainer.train_step()
        trainer.checkpoint()
    monkeypatch.setattr(checkpoint, "save_file", real_save)
    assert latest_checkpoint(tmp_path / "run") == first
    assert main(["train", "--resume", "--out", str(tmp_path / "run"), "--steps", "8", "--no-progress"]) == 0
    assert latest_checkpoint(tmp_path / "run").name == "step-0000008"


def test_run_folder_holds_no_pickle(tmp_path):
    _train(tmp_path / "run", "--steps", "4")
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    suffixes = {p.suffix for p in files}
    assert suffixes <= {".json", ".jsonl", ".safetensors", ""}, suffixes
    for path in files:
        if path.suffix == ".safetensors":
            load_file(str(path))
        elif path.suffix in (".json", ".jsonl"):
            for line in path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]:
                json.loads(line)
        else:
            assert path.name == "LATEST"


def test_training_twice_into_one_folder_is_refused(tmp_path, capsys):
    _train(tmp_path / "run", "--steps", "2")
    assert main(["train", "--task", "grammar-lm", "--out", str(tmp_path / "run"), *TINY, "--steps", "2"]) == 2
    assert "already holds a training run; use --resume" in capsys.readouterr().err
