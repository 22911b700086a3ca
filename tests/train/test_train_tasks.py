"""Each built-in task trains to a stated bar at a tiny size (one thread, seeded)."""

import re

import pytest

from glassformer.cli import main
from glassformer.data.tasks.grammar import is_grammatical
from glassformer.framing import sequence_ids
from glassformer.generate import Sampling, Stopping, generate_lm
from glassformer.run_folder import load_run

pytestmark = pytest.mark.slow
QUICK = ["--eval-examples", "300", "--lr", "3e-3", "--warmup", "50", "--no-progress", "--examples", "0"]


def _train(tmp_path, capsys, task, steps, *extra) -> dict[str, float]:
    out = tmp_path / task
    assert main(["train", "--task", task, "--steps", str(steps), "--eval-every", str(steps), "--out", str(out),
                 *QUICK, *extra]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("test: "))
    metrics = {}
    for name, value, percent in re.findall(r"(\w+) ([0-9.]+)(%?)", line):
        metrics[name] = float(value) / (100 if percent else 1)
    return metrics


@pytest.mark.parametrize(
    "task, steps, bar",
    [
        # Measured on an AMD EPYC without AVX-512, one thread, seeds 0-1, ATEN_CPU_CAPABILITY=default and avx2:
        # copy 97.3-99.3%, reverse 95.0-99.0% (seed 0 under avx2 gave exactly 95.0%); a fresh 2-core EPYC gave
        # copy 95.3% and reverse 94.7% (issue 17), the AVX-512 machine 98.0% and 97.0%. The bars sit below the
        # worst of these with a margin; an untrained or broken model gets about 0%.
        ("copy", 400, 0.93),  # 18 s on an idle machine
        ("reverse", 700, 0.92),  # 32 s (99% needs more than a minute at this size)
    ],
)
def test_copy_and_reverse_exact_match(tmp_path, capsys, task, steps, bar):
    extra = ["--label-smoothing", "0"] if task == "reverse" else []
    assert _train(tmp_path, capsys, task, steps, *extra)["exact_match"] >= bar


def test_sentiment_accuracy(tmp_path, capsys):
    metrics = _train(tmp_path, capsys, "toy-sentiment", 600, "--preset", "tiny-encoder")
    assert metrics["accuracy"] >= 0.95  # measured 100.0%; word counting alone gets under 70%


def test_masked_lm_beats_guessing_by_far(tmp_path, capsys):
    metrics = _train(tmp_path, capsys, "grammar-mlm", 600, "--preset", "tiny-encoder")
    assert metrics["token_accuracy"] >= 0.30  # measured 34.4%
    assert metrics["perplexity"] <= 8.0  # measured 6.87


def test_language_model_perplexity_and_grammatical_samples(tmp_path, capsys):
    metrics = _train(tmp_path, capsys, "grammar-lm", 600, "--preset", "tiny-lm")
    assert metrics["perplexity"] <= 8.0  # measured 7.40
    run = load_run(tmp_path / "grammar-lm")
    prompts = [sequence_ids(run.tokenizer, "", end=False)] * 100
    samples = generate_lm(run.model, prompts, sampling=Sampling(greedy=False, seed=0),
                          stopping=Stopping(end_id=run.tokenizer.end_id, max_new_tokens=40))
    grammatical = sum(is_grammatical(run.tokenizer.decode(s.tokens)) for s in samples)
    assert grammatical >= 40  # measured 47 of 100 sampled at temperature 1
