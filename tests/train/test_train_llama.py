"""The LLaMA-style parts train: tiny-llama (RMSNorm, rotary positions, SwiGLU, 4 query heads
sharing 2 key/value heads) learns grammar-lm as well as the GPT-2-style tiny-lm does."""

import re

import pytest

from glassformer.cli import main
from glassformer.run_folder import load_run

pytestmark = pytest.mark.slow


def test_llama_style_language_model_perplexity(tmp_path, capsys):
    out = tmp_path / "llama"
    assert main(["train", "--task", "grammar-lm", "--preset", "tiny-llama", "--steps", "400", "--eval-every", "400",
                 "--out", str(out), "--eval-examples", "300", "--lr", "3e-3", "--warmup", "50", "--no-progress",
                 "--examples", "0"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("test: "))
    perplexity = float(re.search(r"perplexity ([0-9.]+)", line).group(1))
    # Measured 7.405 and 7.407 (seeds 0, 1), the same with ATEN_CPU_CAPABILITY=default (600 steps:
    # 7.43-7.45); tiny-lm reaches 7.40 in 600.
    assert perplexity <= 8.0
    run = load_run(out)
    assert (run.config.positions, run.config.gated_ffn, run.config.kv_heads) == ("rotary", True, 2)
