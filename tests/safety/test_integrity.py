"""Weights carry their SHA-256 and a flipped byte is caught on load; shards stay in their folder; files get the umask."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from glassformer.cli import main
from glassformer.config import get_preset
from glassformer.errors import UserError
from glassformer.interop.hf_folder import read_weights
from glassformer.models import build_model
from glassformer.run_folder import load_run, save_run
from glassformer.text.word import WordTokenizer
from glassformer.train.checkpoint import TrainingState, read_checkpoint, save_checkpoint


def _tiny_run(path):
    tokenizer = WordTokenizer.train(["the cat sat on the mat"])
    torch.manual_seed(0)
    config = get_preset("tiny-lm").replace(vocab_size=tokenizer.vocab_size, max_len=16)
    model = build_model(config)
    save_run(path, model, config, "lm", tokenizer)
    return model


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # inside the last tensor's data: the header still parses
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_weights_is_caught_on_load(tmp_path, capsys):
    model = _tiny_run(tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()))
    _flip_last_byte(tmp_path / "run" / "model.safetensors")
    assert main(["trace", "--model", str(tmp_path / "run")]) == 2
    assert "model.safetensors is corrupted" in capsys.readouterr().err


def test_a_flipped_byte_in_a_checkpoint_is_caught(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(tmp_path, model, optimizer, TrainingState(step=1))
    _flip_last_byte(tmp_path / "checkpoint" / "step-0000001" / "model.safetensors")
    with pytest.raises(UserError, match="model.safetensors is corrupted"):
        read_checkpoint(tmp_path).load_model(torch.nn.Linear(3, 2))


def test_a_shard_index_may_not_point_outside_its_folder(tmp_path):
    save_file({"secret": torch.zeros(1)}, str(tmp_path / "secret.safetensors"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../secret.safetensors"}}))
    with pytest.raises(UserError, match="names a shard outside the folder: .../secret.safetensors."):
        read_weights(folder)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_run_files_get_the_users_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        _tiny_run(tmp_path / "run")
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    assert modes == {"config.json": mode, "tokenizer.json": mode, "model.safetensors": mode}
