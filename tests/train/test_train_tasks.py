"""Each built-in task trains to a stated bar at a tiny size (one thread, seeded)."""

import re

import pytest
import torch

from glassformer.cli import main
from glassformer.data.tasks.grammar import is_grammatical
from glassformer.framing import Framing, sequence_ids, source_ids, target_ids
from glassformer.generate import Sampling, Stopping, generate_lm
from glassformer.inspect.patch import activation_patching
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
    _patching_finds_the_cross_attention_heads_that_carry_the_copy(load_run(tmp_path / task), task)


def _patching_finds_the_cross_attention_heads_that_carry_the_copy(run, task):
    """8 sources of 8 letters; the corrupted ones change the letter at position 2. Teacher-forced
    up to the output position that copies it, the answer is the clean letter, the wrong one the
    corrupted letter. Patching the encoder's residual stream at position 2 restores it all (the
    other positions nothing), and the cross-attention heads, which read the letter from the
    encoder, restore far more than any self-attention head. Where they sit differs by task:
    reversal fetches the letter in the last decoder layer, copying in both."""
    tok, g, k = run.tokenizer, torch.Generator().manual_seed(0), 2
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz" if tok.token_to_id(c) != tok.unk_id]
    clean, corrupt, prefixes = [], [], []
    for _ in range(8):
        src = [letters[int(i)] for i in torch.randint(len(letters), (8,), generator=g)]
        bad = src[:k] + [letters[(letters.index(src[k]) + 5) % len(letters)]] + src[k + 1:]
        out = list(reversed(src)) if task == "reverse" else src
        clean.append(source_ids(tok, " ".join(src), Framing()))
        corrupt.append(source_ids(tok, " ".join(bad), Framing()))
        prefixes.append(target_ids(tok, " ".join(out[:k if task == "copy" else 8 - 1 - k]), Framing())[0])  # up to src[k]
    clean, corrupt, prefix = torch.tensor(clean), torch.tensor(corrupt), torch.tensor(prefixes)
    answer, wrong = clean[:, k, None], corrupt[:, k, None]

    def metric(logits):
        return (logits[:, -1].gather(1, answer) - logits[:, -1].gather(1, wrong)).mean()

    result = activation_patching(run.model.eval(), (clean, prefix), (corrupt, prefix), metric, side="encoder")
    assert result.clean > 0 > result.corrupt
    assert result.residual[:, k].min() > 0.9 and result.residual[:, [i for i in range(9) if i != k]].abs().max() < 0.05
    cross = result.heads["decoder.cross_attn"]
    others = torch.cat([result.heads["encoder.self_attn"].flatten(), result.heads["decoder.self_attn"].flatten()])
    # Measured, reverse (400 steps): the last layer's cross heads restore 0.12-0.31 each, 0.76
    # together; no self-attention head more than 0.04 (this test's 700-step run passes the same bars).
    # Copy (400 steps, seed 0, 2-core EPYC, AVX2): cross heads 0.05-0.11 in layer 0 (0.29 together)
    # and 0.04-0.16 in layer 1 (0.41), 0.70 in all; no self-attention head more than 0.016. Patching
    # the decoder's stream after its first layer at the last position restores 0.57 there: copying
    # splits the fetch across both layers, so no last-layer bar of 0.5 holds for it (0.41). Copy passes
    # these bars under ATEN_CPU_CAPABILITY=default as well.
    assert cross.sum() > 0.5 and cross.max() > 3 * others.max()
    if task == "reverse":
        assert int(cross.flatten().argmax()) >= cross.size(1)  # the best head is in the last layer
        assert cross[-1].sum() > 0.5
    else:
        assert cross.sum(dim=1).min() > 0.15  # each layer's cross heads take part


def test_sentiment_accuracy(tmp_path, capsys):
    metrics = _train(tmp_path, capsys, "toy-sentiment", 600, "--preset", "tiny-encoder")
    # Measured 100.0% for seeds 0-1, native (AVX2) and ATEN_CPU_CAPABILITY=default kernels alike, on a
    # 2-core AMD EPYC without AVX-512; word counting alone gets under 70%.
    assert metrics["accuracy"] >= 0.95


def test_masked_lm_beats_guessing_by_far(tmp_path, capsys):
    metrics = _train(tmp_path, capsys, "grammar-mlm", 600, "--preset", "tiny-encoder")
    # Measured on a 2-core AMD EPYC without AVX-512 (seeds 0/1; native AVX2 and ATEN_CPU_CAPABILITY=default):
    # token accuracy 32.7/31.2% and 33.6/32.2%, perplexity 7.38/7.13 and 7.39/7.21; 34.4% and 6.87 on the
    # AVX-512 machine. The bars sit below the worst of these with a margin.
    assert metrics["token_accuracy"] >= 0.28
    assert metrics["perplexity"] <= 8.0


def test_language_model_perplexity_and_grammatical_samples(tmp_path, capsys):
    metrics = _train(tmp_path, capsys, "grammar-lm", 600, "--preset", "tiny-lm")
    # Measured on a 2-core AMD EPYC without AVX-512 (seeds 0/1; native AVX2 and ATEN_CPU_CAPABILITY=default):
    # perplexity 7.439/7.444 and 7.430/7.434 (7.40 on the AVX-512 machine).
    assert metrics["perplexity"] <= 8.0
    run = load_run(tmp_path / "grammar-lm")
    prompts = [sequence_ids(run.tokenizer, "", Framing(), end=False)] * 100
    samples = generate_lm(run.model, prompts, sampling=Sampling(greedy=False, seed=0),
                          stopping=Stopping(end_id=run.tokenizer.end_id, max_new_tokens=40))
    grammatical = sum(is_grammatical(run.tokenizer.decode(s.tokens)) for s in samples)
    # Of 100 samples at temperature 1: 43/46 native and 45/49 under ATEN_CPU_CAPABILITY=default (seeds 0/1),
    # 47 on the AVX-512 machine; 100 draws spread by about 5 either way, so the bar keeps a margin of 8.
    assert grammatical >= 35
