"""Fixtures the speed tests share."""

import pytest

from glassformer.speed.choice import Choice


@pytest.fixture
def fixed_choice(monkeypatch):
    """fixed_choice(column_major, dtype): every product's measured choice fixed to one layout and dtype,
    as the measurement may give them, instead of what this run measures. With bf16 weights the flat
    step widens them ("upcast"), keeping x fp32 as the C code does (the bf16 kernels would round x to
    bf16 too, and which one a run measures fastest varies)."""

    def fix(column_major: bool, dtype: str) -> None:
        kernel = "upcast" if dtype == "bfloat16" else "linear"

        def fixed(out_features, in_features, bias, dt, w="fp32", only=None):
            return Choice(column_major, (kernel,) * 3, dtype)

        monkeypatch.setattr("glassformer.speed.small_batch.choose", fixed)
        monkeypatch.setattr("glassformer.speed.fused_qkv.choose", fixed)

    return fix
