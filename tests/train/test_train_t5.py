"""The T5-style parts train: tiny-t5 (relative position bias, unscaled attention, RMSNorm, gated
GELU, no biases) learns toy-translation."""

import re

import pytest

from glassformer.cli import main
from glassformer.run_folder import load_run

pytestmark = pytest.mark.slow


def test_t5_style_model_exact_match_on_toy_translation(tmp_path, capsys):
    out = tmp_path / "t5"
    assert main(["train", "--task", "toy-translation", "--preset", "tiny-t5", "--steps", "200", "--eval-every", "200",
                 "--out", str(out), "--eval-examples", "100", "--lr", "3e-3", "--warmup", "50", "--no-progress",
                 "--examples", "0"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("test: "))
    exact_match = float(re.search(r"exact_match ([0-9.]+)%", line).group(1)) / 100
    # Measured on an AMD EPYC without AVX-512, one thread, seeds 0 and 1: 14.6% and 17.6% under avx2,
    # 17.0% and 16.0% under ATEN_CPU_CAPABILITY=default (300 steps: 19.4-21.8%, 400: 22.2-25.8%);
    # an untrained model gets 0%. The same preset with attn_scale=true reaches 67.8% in 400 steps:
    # T5's unscaled scores learn more slowly under Adam at this size. 21 s on an idle machine.
    assert exact_match >= 0.10
    run = load_run(out)
    assert (run.config.positions, run.config.attn_scale, run.config.gated_ffn) == ("relative", False, True)
