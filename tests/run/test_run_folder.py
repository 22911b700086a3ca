import json

import pytest
import torch
from safetensors.torch import load_file

from glassformer.config import get_preset
from glassformer.errors import UserError
from glassformer.models import build_model
from glassformer.run_folder import atomic_write_text, load_run, save_run
from glassformer.text import WordTokenizer


def _saved(tmp_path, shared=True):
    source = WordTokenizer.train(["when you play the game of thrones"])
    target = source if shared else WordTokenizer.train(["you win or you die"])
    config = get_preset("tiny-seq2seq").replace(
        vocab_size=source.vocab_size, tgt_vocab_size=None if shared else target.vocab_size, tie_embeddings=shared
    )
    model = build_model(config).eval()
    save_run(tmp_path / "run", model, config, "seq2seq", source, target, meta={"task": "demo"})
    return model, tmp_path / "run"


@pytest.mark.parametrize("shared", [True, False])
def test_save_then_load_gives_identical_outputs(tmp_path, shared):
    model, path = _saved(tmp_path, shared)
    run = load_run(path)
    src, tgt = torch.tensor([[5, 6, 7]]), torch.tensor([[1, 5]])
    assert torch.equal(run.model(src, tgt), model(src, tgt))
    assert run.kind == "seq2seq" and run.meta["task"] == "demo"
    assert (run.source_tokenizer is run.target_tokenizer) == shared


def test_tied_weights_are_stored_once_and_no_pickle(tmp_path):
    _, path = _saved(tmp_path)
    stored = load_file(str(path / "model.safetensors"))
    assert "src_embed.token.weight" in stored and "lm_head.weight" not in stored
    document = json.loads((path / "config.json").read_text())
    assert document["format"] == "glassformer-run"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such folder"),
        (lambda p: p.mkdir(), "not a run folder"),
        (lambda p: (p.mkdir(), (p / "config.json").write_text("{")), "not valid JSON"),
        (lambda p: (p.mkdir(), (p / "config.json").write_text('{"a": 1}')), "not a glassformer run folder"),
    ],
)
def test_folders_that_are_not_runs_are_clear_errors(tmp_path, make, message):
    make(tmp_path / "x")
    with pytest.raises(UserError, match=message):
        load_run(tmp_path / "x")


def test_weights_of_another_model_are_rejected_by_name(tmp_path):
    _, path = _saved(tmp_path)
    document = json.loads((path / "config.json").read_text())
    document["model"]["d_model"] = 32
    (path / "config.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match="weights do not fit the model: wrong shape"):
        load_run(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    from glassformer.run_folder import atomic_write

    def crash(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
