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
    # Measured (seed 0, 300 steps, 100 test pairs; the same on a 2-core EPYC, AVX2): 0.90 intact.
    #   cross head   L0H0 L0H1 L0H2 L0H3 L1H0 L1H1 L1H2 L1H3
    #   agreement    0.32 0.59 0.56 0.61 0.66 0.75 0.80 0.69
    #   zeroed       0.67 0.45 0.73 0.85 0.84 0.81 0.72 0.82
    #   mean-ablated 0.64 0.60 0.69 0.81 0.87 0.82 0.72 0.82
    # The claim, that the best-aligned head costs the most of all, does NOT hold here, with
    # zero or with mean ablation: layer 0 head 1 costs more. A likely reason (not tested): the job is
    # split across the two layers, and a first-layer head whose output the second layer builds on can
    # matter more while aligning worse. Within the last layer, whose
    # attention the alignment is read from, it holds: the best-aligned head costs the most (0.72
    # against 0.81-0.84). With one decoder layer (4 cross heads, 300 steps, intact 0.82) the
    # best-aligned head (0.83) zeroed gave 0.49 against 0.52-0.71 for the others, too close to
    # assert, and mean-ablated 0.48 against 0.42 for the worst-aligned head (0.66): no clean claim.
    sources = [p.source for p in pairs[:100]]
    intact = sum(o == p.target for o, p in zip(translate_texts(run, sources), pairs)) / 100
    exact = _exact_match_without_each_cross_attention_head(run, pairs[:100])
    assert exact[best] <= intact - 0.08, (intact, exact)
    assert sum(exact.values()) / len(exact) <= intact - 0.08, (intact, exact)  # measured: mean 0.74
    last = run.config.decoder_layers - 1
    in_last = {key: value for key, value in agreement.items() if key[0] == last}
    best_last = max(in_last, key=in_last.get)
    others = [exact[key] for key in in_last if key != best_last]
    assert exact[best_last] <= min(others) - 0.04, (best_last, exact)  # measured 0.72 against 0.81


def _exact_match_without_each_cross_attention_head(run, pairs):
    sources, targets = [p.source for p in pairs], [p.target for p in pairs]
    exact = {}
    for layer in range(run.config.decoder_layers):
        for h in range(run.config.n_heads):
            with ablate(run.model, head(f"decoder.layers.{layer}.cross_attn", h)):
                outputs = translate_texts(run, sources)
            exact[(layer, h)] = sum(o == t for o, t in zip(outputs, targets)) / len(pairs)
    return exact

