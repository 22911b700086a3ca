"""--threads on every command, and one CPU thread by default for training a small model."""

from types import SimpleNamespace

import pytest
import torch

from glassformer.cli import main
from glassformer.cli.main import build_parser
from glassformer.cli.train import _threads_for_small_models


def test_every_command_takes_threads():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert len(subparsers.choices) > 10
    for name, command in subparsers.choices.items():
        assert any("--threads" in a.option_strings for a in command._actions), name


def test_threads_sets_pytorchs_intra_op_threads(capsys):
    assert main(["describe", "--preset", "tiny-lm", "--threads", "3"]) == 0
    assert torch.get_num_threads() == 3
    assert main(["describe", "--preset", "tiny-lm", "--threads", "0"]) == 2


@pytest.mark.parametrize("threads, env, parameters, expected", [
    (None, {}, 80_000, 1), (None, {}, 60_000_000, 2), (2, {}, 80_000, 2), (None, {"OMP_NUM_THREADS": "2"}, 80_000, 2)])
def test_training_a_small_model_uses_one_thread_unless_told_otherwise(monkeypatch, threads, env, parameters, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    torch.set_num_threads(2)
    model = torch.nn.Linear(parameters // 1000, 1000, bias=False)
    lines = []
    trainer = SimpleNamespace(device=torch.device("cpu"), run=SimpleNamespace(model=model), log=lines.append)
    _threads_for_small_models(trainer, threads)
    assert torch.get_num_threads() == expected
    assert lines == (["1 CPU thread for this small model (--threads N to use more)"] if expected == 1 else [])
