"""`glassformer ablate`, `patch` and `lens` on saved run folders: the numbers they print and their errors."""

import json

import pytest
import torch

from glassformer.cli.main import main
from glassformer.config import get_preset
from glassformer.inspect.ablate import ablate, head
from glassformer.inspect.lens import logit_lens
from glassformer.models import build_model
from glassformer.load import load_model
from glassformer.run_folder import save_run
from glassformer.text import WordTokenizer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One random run folder of each kind these commands read."""
    root = tmp_path_factory.mktemp("touch-runs")
    tok = WordTokenizer.train(["the cat sat on the mat", "a dog ran in the park", "birds sing at dawn ."])
    torch.manual_seed(0)
    paths = {}
    for kind, preset, changes, labels in [
        ("seq2seq", "tiny-seq2seq", dict(tie_output=False), None),
        ("lm", "tiny-lm", dict(tie_output=False), None),
        ("mlm", "tiny-encoder", dict(head="mlm"), None),
        ("classify", "tiny-encoder", dict(head="classify", n_labels=2), ["neg", "pos"]),
    ]:
        config = get_preset(preset).replace(vocab_size=tok.vocab_size, max_len=64, **changes)
        paths[kind] = str(save_run(root / kind, build_model(config).eval(), config, kind, tok, labels=labels))
    return paths


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_ablate_prints_the_answers_probability_and_logit_difference_before_and_after(runs, capsys):
    out = _json(capsys, ["ablate", "--model", runs["lm"], "--head", "1.2", "the cat sat on", "--json"])
    run = load_model(runs["lm"])
    ids = torch.tensor([[run.tokenizer.start_id, *run.tokenizer.encode("the cat sat on")]])
    with torch.no_grad():
        before = run.model(ids)[0, -1]
        with ablate(run.model, head("decoder.layers.1.self_attn", 2)):
            after = run.model(ids)[0, -1]
    answer, wrong = before.topk(2).indices.tolist()
    assert out["answer"] == run.tokenizer.id_to_token(answer) and out["wrong"] == run.tokenizer.id_to_token(wrong)
    assert out["ablated"] == ["decoder.layers.1.self_attn head 2"]
    assert out["before"]["p_answer"] == pytest.approx(float(before.softmax(-1)[answer]), abs=1e-6)
    assert out["after"]["p_answer"] == pytest.approx(float(after.softmax(-1)[answer]), abs=1e-6)
    assert out["after"]["logit_difference"] == pytest.approx(float(after[answer] - after[wrong]), abs=1e-5)
    assert out["before"]["output"] and out["after"]["output"] != out["before"]["output"]


def test_ablate_reads_every_kind(runs, capsys):
    assert main(["ablate", "--model", runs["seq2seq"], "--head", "cross.1.2", "--layer", "encoder.0", "the cat"]) == 0
    text = capsys.readouterr().out
    assert "ablated (zero): decoder.layers.1.cross_attn head 2, encoder.layers.0" in text and "greedy output" in text
    out = _json(capsys, ["ablate", "--model", runs["mlm"], "--ffn", "1", "--how", "mean", "--reference",
                         "a dog ran in", "--reference", "birds sing at dawn", "the <mask> sat on", "--json"])
    assert out["before"]["output"] is None and out["before"]["p_answer"] != out["after"]["p_answer"]
    out = _json(capsys, ["ablate", "--model", runs["classify"], "--head", "0.1", "--answer", "pos", "the cat",
                         "--json"])
    assert out["answer"] == "pos" and out["wrong"] == "neg"
    assert out["before"]["p_answer"] != pytest.approx(out["after"]["p_answer"], abs=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--head", "1.7", "the cat"], "--head 1.7: head 7 does not exist; each attention has heads 0-3"),
    (["--head", "4.0", "the cat"], "layer 4 does not exist; the decoder has layers 0-1"),
    (["--head", "x", "the cat"], "--head takes L.H"),
    (["--head", "cross.0.1", "the cat"], "has no cross side"),
    (["--head", "1.2", "  "], "the text is empty"),
    (["--head", "1.2", "--answer", "zebra", "the"], "--answer 'zebra' is not one token of the model's vocabulary"),
    (["the cat"], "name at least one part"),
    (["--head", "1.2", "--how", "mean", "the cat"], "--how mean needs --reference TEXT"),
    (["--head", "1.2", "--how", "mean", "--reference", "a dog", "--reference", "a dog ran", "the"],
     "the --reference texts must all be the same length in tokens"),
    (["--head", "1.1", "--how", "resample", "--reference", "the cat sat", "the cat"], "as long as TEXT"),
])
def test_ablate_mistakes_are_one_line_and_exit_2(runs, capsys, argv, message):
    assert main(["ablate", "--model", runs["lm"], *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_patch_prints_both_grids_and_restores_all_at_the_changed_token(runs, capsys):
    out = _json(capsys, ["patch", "--model", runs["lm"], "--clean", "the cat sat on", "--corrupt", "the dog sat on",
                         "--json"])
    assert out["positions"] == ["<start>", "the", "cat/dog", "sat", "on"]
    assert len(out["residual"]) == 3 and len(out["residual"][0]) == 5
    assert out["residual"][0] == pytest.approx([0, 0, 1, 0, 0], abs=1e-5)
    assert out["residual"][2] == pytest.approx([0, 0, 0, 0, 1], abs=1e-5)
    assert len(out["heads"]["decoder.self_attn"]) == 2 and len(out["heads"]["decoder.self_attn"][0]) == 4
    assert out["clean_logit_difference"] > 0 > out["corrupt_logit_difference"]
    assert main(["patch", "--model", runs["seq2seq"], "--clean", "the cat sat", "--corrupt", "the dog sat",
                 "--estimate"]) == 0
    text = capsys.readouterr().out
    assert "residual stream (encoder)" in text and "decoder.cross_attn heads" in text and "cat/dog" in text


@pytest.mark.parametrize("argv, message", [
    (["--clean", "the cat sat on", "--corrupt", "the dog sat"], "--clean is 5 tokens and --corrupt 4"),
    (["--clean", "the cat", "--corrupt", "the dog", "--answer", "zebra"], "--answer 'zebra' is not one token"),
    (["--clean", "", "--corrupt", "the dog"], "--clean is empty"),
    (["--clean", "the cat", "--corrupt", "the cat"], "score the same"),
    (["--clean", "the cat", "--corrupt", "the dog", "--side", "encoder"], "--side is for seq2seq runs"),
])
def test_patch_mistakes_are_one_line_and_exit_2(runs, capsys, argv, message):
    assert main(["patch", "--model", runs["lm"], *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["lm", "mlm", "seq2seq"])
def test_lens_prints_the_top_token_per_layer_and_position_and_the_last_row_is_the_output(runs, capsys, kind):
    out = _json(capsys, ["lens", "--model", runs[kind], "the cat sat", "--top", "2", "--json"])
    run = load_model(runs[kind])
    tok = run.tokenizer
    ids = [tok.start_id, *tok.encode("the cat sat")] + ([tok.end_id] if kind == "mlm" else [])
    inputs = (torch.tensor([ids]),)
    if kind == "seq2seq":
        inputs = (torch.tensor([[*tok.encode("the cat sat"), tok.end_id]]),
                  torch.tensor([[tok.start_id, *tok.encode(" ".join(out["positions"][1:]))]]))
        assert out["positions"][0] == "<start>"
    lens = logit_lens(run.model, *inputs)[:, 0].softmax(-1)
    assert len(out["rows"]) == lens.size(0) == 3
    for row, reading in zip(out["rows"], lens):
        assert [cell[0]["token"] for cell in row["top"]] == [tok.id_to_token(int(i)) for i in reading.argmax(-1)]
        assert row["top"][-1][0]["p"] == pytest.approx(float(reading[-1].max()), abs=1e-6)
        assert len(row["top"][0]) == 2


def test_lens_mistakes(runs, capsys):
    assert main(["lens", "--model", runs["classify"], "the cat"]) == 2
    assert "a classify run's head has labels" in capsys.readouterr().err
    assert main(["lens", "--model", runs["lm"], "the cat", "--top", "0"]) == 2
    assert "--top must be at least 1" in capsys.readouterr().err
    assert main(["lens", "--model", runs["lm"] + "-missing", "the cat"]) == 2
    assert "no such folder" in capsys.readouterr().err
