"""Cross-attention of a trained default-task model follows the generator's word alignment."""

import re

import pytest

from glassformer.cli import main
from glassformer.data.tasks import DEFAULT_TASK, get_task
from glassformer.generate import translate_texts
from glassformer.inspect.ablate import ablate, head
from glassformer.inspect.alignment import alignment_agreement
from glassformer.run_folder import load_run

pytestmark = pytest.mark.slow


def test_a_cross_attention_head_finds_the_reordered_alignment(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "300", "--eval-every", "300", "--eval-examples", "50", "--examples", "0",
                 "--out", str(out), "--no-progress"]) == 0
    test_line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("test: "))
    exact_match = float(re.search(r"exact_match ([0-9.]+)%", test_line).group(1)) / 100
    assert exact_match >= 0.85  # the default task after 300 of its 1,000 default steps
    run = load_run(out)
    pairs = get_task(DEFAULT_TASK).splits(0).test[:200]
    # The task reorders words (verb last, adjectives after nouns), so a monotonic diagonal fails.
    aligned = [[a for a in p.alignment if a >= 0] for p in pairs]
    assert sum(a != sorted(a) for a in aligned) > 150
    agreement = alignment_agreement(run, pairs)
    best = max(agreement, key=agreement.get)
    # Measured: layer 1 head 2 agrees on 94% of aligned target words after 500 steps.
    assert agreement[best] >= 0.7, agreement
    # Ablating that head costs exact match, and so, on average, does ablating a cross-attention head.
    # Measured (seed 0, 300 steps, 100 test pairs): 0.90 intact; layer 1 head 2 (agreement 0.80)
    # zeroed 0.72; the others 0.45-0.85. The claim that the best-aligned head costs the most does NOT
    # hold here: layer 0 head 1 (agreement 0.59) costs more (0.45); encoder self-attention heads
    # zeroed one at a time keep 0.88-0.93, decoder self-attention heads 0.68-0.89.
    sources = [p.source for p in pairs[:100]]
    intact = sum(o == p.target for o, p in zip(translate_texts(run, sources), pairs)) / 100
    exact = _exact_match_without_each_cross_attention_head(run, pairs[:100])
    assert exact[best] <= intact - 0.08, (intact, exact)
    assert sum(exact.values()) / len(exact) <= intact - 0.08, (intact, exact)  # measured: mean 0.74


def _exact_match_without_each_cross_attention_head(run, pairs):
    sources, targets = [p.source for p in pairs], [p.target for p in pairs]
    exact = {}
    for layer in range(run.config.decoder_layers):
        for h in range(run.config.n_heads):
            with ablate(run.model, head(f"decoder.layers.{layer}.cross_attn", h)):
                outputs = translate_texts(run, sources)
            exact[(layer, h)] = sum(o == t for o, t in zip(outputs, targets)) / len(pairs)
    return exact

