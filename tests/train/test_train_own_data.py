"""A user's own data trained with no flags but the budget: it learns, and resume keeps the fitted schedule."""

import importlib.util
import json
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from glassformer.cli import main
from glassformer.train.checkpoint import latest_checkpoint, read_checkpoint

_spec = importlib.util.spec_from_file_location(
    "own_data_sets", Path(__file__).resolve().parents[2] / "benchmarks" / "own_data_sets.py")
own_data_sets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(own_data_sets)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_data_sets_are_seeded_and_shaped_as_promised():
    pairs = own_data_sets.reorder_pairs(4000)
    assert pairs == own_data_sets.reorder_pairs(4000) and len(set(pairs)) == 4000
    lengths = {len(p.split("\t")[0].split()) for p in pairs}
    assert (min(lengths), max(lengths)) == (4, 15)
    copies = own_data_sets.copy_pairs(4000)
    assert all(a == b for a, b in (p.split("\t") for p in copies))
    assert len({w for p in copies for w in p.split("\t")[0].split()}) == 1000
    labels = [line.split("\t")[0] for line in own_data_sets.classify_lines(3000)]
    assert sorted(set(labels)) == ["foundry", "harbour", "orchard"] and min(map(labels.count, set(labels))) > 800
    assert len(own_data_sets.lm_lines(4000)) == 4000


def _test_metric(out: str, name: str) -> float:
    return float(re.search(rf"^test: .*\b{name} ([\d.]+)%", out, re.M).group(1))


@pytest.mark.slow
def test_flagless_training_learns_a_reordering(tmp_path, capsys):
    data = _write(tmp_path / "pairs.tsv", own_data_sets.reorder_pairs(1200, seed=5))
    assert main(["train", "--data", str(data), "--kind", "seq2seq", "--steps", "200", "--out", str(tmp_path / "run"),
                 "--no-progress", "--examples", "0"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:4] == [
        "preset small-seq2seq: 1,080 pairs, vocabulary 179, lengths 4-15",
        "batch size 32: 1,080 training examples",
        "lr 0.002: peak for d_model 128, warm-up then cosine decay to a tenth of it",
        "schedule cosine: warm-up 10 steps, decay to 0.0002 at step 200: fitted to --steps 200",
    ]
    # Held-out (60 pairs) after 200 steps, measured: exact match 35.0% and token accuracy 90.1% (AVX2),
    # 28.3% and 89.6% (ATEN_CPU_CAPABILITY=default). The paper's schedule would still be warming up
    # (noam, 4,000 warm-up steps: a rate under 1e-4 at step 200).
    assert _test_metric(out, "exact_match") >= 20.0
    assert _test_metric(out, "token_accuracy") >= 85.0


def _signal_inside_optimizer_step(monkeypatch, at_call: int):
    real_step = torch.optim.Adam.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)


def test_resume_keeps_the_fitted_schedule(tmp_path, monkeypatch, capsys):
    data = _write(tmp_path / "pairs.tsv", own_data_sets.reorder_pairs(120, seed=9))
    flags = ["--data", str(data), "--kind", "seq2seq", "--steps", "24", "--eval-every", "12", "--log-every", "1",
             "--no-progress", "--examples", "0"]
    assert main(["train", *flags, "--out", str(tmp_path / "whole")]) == 0
    parts = tmp_path / "parts"
    with monkeypatch.context() as patch:
        _signal_inside_optimizer_step(patch, 13)
        assert main(["train", *flags, "--out", str(parts)]) == 130
    assert read_checkpoint(parts).state.step == 13
    assert read_checkpoint(parts).state.schedule == {"warmup": 10, "total": 24}
    # Resumed with a longer budget, the run keeps the schedule it started with (it ends at step 24).
    assert main(["train", "--resume", "--out", str(parts), "--steps", "24", "--no-progress", "--examples", "0"]) == 0
    whole = load_file(str(latest_checkpoint(tmp_path / "whole") / "model.safetensors"))
    resumed = load_file(str(latest_checkpoint(parts) / "model.safetensors"))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(parts), "--steps", "27", "--no-progress", "--examples", "0"]) == 0
    assert "the schedule stays as fitted when the run started (decay to 0.0003 at step 24): steps 25-27 train at " \
           "0.0003" in capsys.readouterr().out
    rates = {r["step"]: r["lr"] for r in map(json.loads, open(parts / "metrics.jsonl")) if "lr" in r}
    config = json.loads((parts / "config.json").read_text())["train"]
    assert (config["decay_steps"], config["warmup"], config["lr"]) == (24, 10, 3e-3)
    assert rates[10] == pytest.approx(3e-3)
    assert rates[24] == rates[25] == rates[27] == pytest.approx(3e-4)
    capsys.readouterr()
