"""Folders glassformer may write: missing, empty, or a run being resumed; a lock keeps a second process out."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from glassformer.cli import main
from glassformer.folder_guard import LOCK_FILE, FolderLock

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The arguments of a two-step training on a small text file."""
    data = tmp_path_factory.mktemp("data") / "text.txt"
    data.write_text("\n".join(f"the cat sat on mat {i % 9}" for i in range(40)))
    return ["train", "--data", str(data), "--kind", "lm", "--preset", "tiny-lm", "--batch-size", "8", "--steps", "2",
            "--eval-every", "2", "--checkpoint-every", "2", "--no-progress", "--examples", "0"]


def _someone_elses_model(folder):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 8}))
    (folder / "model.safetensors").write_bytes(b"not ours")
    (folder / "notes.txt").write_text("keep me")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("guard") / "run"
    assert main([*tiny, "--out", str(out)]) == 0
    return out


def test_train_refuses_a_folder_holding_another_models_files(tmp_path, capsys, tiny):
    before = _someone_elses_model(tmp_path / "theirs")
    assert main([*tiny, "--out", str(tmp_path / "theirs")]) == 2
    err = capsys.readouterr().err
    assert "holds another model's files (config.json, model.safetensors, notes.txt)" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in (tmp_path / "theirs").iterdir()} == before  # nothing touched, no lock left


def test_overwrite_replaces_only_the_run_files(tmp_path, tiny_run, tiny):
    _someone_elses_model(tmp_path / "theirs")
    assert main([*tiny, "--out", str(tmp_path / "theirs"), "--overwrite"]) == 0
    folder = tmp_path / "theirs"
    assert json.loads((folder / "config.json").read_text())["format"] == "glassformer-run"
    assert (folder / "notes.txt").read_text() == "keep me"
    assert not (folder / LOCK_FILE).exists()


def test_train_refuses_a_file_and_a_non_empty_folder(tmp_path, capsys, tiny):
    (tmp_path / "file").write_text("x")
    assert main([*tiny, "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "thesis.tex").write_text("x")
    assert main([*tiny, "--out", str(tmp_path / "full")]) == 2
    assert "is not empty (thesis.tex)" in capsys.readouterr().err


def test_export_refuses_an_existing_run(tmp_path, tiny_run, capsys):
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    assert main(["export", "--model", str(tiny_run), "--out", str(other)]) == 2
    assert "already holds a glassformer run" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before
    assert main(["export", "--model", str(tiny_run), "--out", str(tmp_path / "hf")]) == 0
    assert main(["export", "--model", str(tiny_run), "--out", str(tmp_path / "hf")]) == 2
    assert main(["export", "--model", str(tiny_run), "--out", str(tmp_path / "hf"), "--overwrite"]) == 0


def test_a_live_lock_keeps_a_second_training_out_and_a_stale_one_is_taken_over(tmp_path, tiny_run, capsys, tiny):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_FILE).write_text(f"{os.getppid()}\n")  # a process that is alive
    assert main([*tiny, "--out", str(tmp_path / "run")]) == 2
    assert f"is in use by process {os.getppid()}" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "run" / LOCK_FILE).write_text(dead.stdout)
    lock = FolderLock(tmp_path / "run").acquire()  # the stale lock of an ended process is taken over
    assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(os.getpid())
    lock.release()
    assert not (tmp_path / "run" / LOCK_FILE).exists()
