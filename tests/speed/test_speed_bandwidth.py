"""Bytes a decoding step reads, counted exactly, and the measured read bandwidth."""

import pytest
import torch

from glassformer.speed import native, optimize_for_inference
from glassformer.speed.bandwidth import bytes_per_step, kv_bytes, read_bandwidth, read_probes, weight_bytes

from tiny_models import tiny_model


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights once, as parameters() gives them


def test_weights_read_per_token_count_lookup_tables_as_one_row_and_shared_weights_once():
    tied = tiny_model("tiny-lm")  # d_model 64, vocabulary 40, 64 learned positions, output tied
    d = 64
    assert tied.lm_head.proj.weight is tied.embed.token.weight
    # The token table is read whole by the output projection; of the positions, one row.
    assert weight_bytes(tied) == 4 * (_numel(tied) - 64 * d + d)
    untied = tiny_model("tiny-lm", tie_output=False)
    assert weight_bytes(untied) == 4 * (_numel(untied) - 40 * d + d - 64 * d + d)
    sinusoidal = tiny_model("tiny-lm", tie_output=False, positions="sinusoidal")
    assert weight_bytes(sinusoidal) == 4 * (_numel(sinusoidal) - 40 * d + d + d)  # plus one row of the table
    before = weight_bytes(tied)
    optimize_for_inference(tied, small_batch=False)  # fused Q/K/V: views of one weight, counted once
    assert weight_bytes(tied) == before
    optimize_for_inference(untied, small_batch=False, weights="bf16")
    linear = sum(m.weight.numel() for m in untied.modules() if isinstance(m, torch.nn.Linear))
    assert weight_bytes(untied) == 4 * (_numel(untied) - 40 * d + d - 64 * d + d) - 2 * linear


def test_a_step_reads_the_weights_once_and_every_sequences_keys_and_values():
    model = tiny_model("tiny-lm")  # 2 layers, attention width 64
    assert kv_bytes(model, context=10) == 2 * 2 * 64 * 10 * 4
    assert bytes_per_step(model, batch=3, context=10) == weight_bytes(model) + 3 * kv_bytes(model, 10)


def test_read_bandwidth_is_bytes_over_seconds_of_a_sum():
    rate = read_bandwidth(16 << 20, reps=2)
    assert 1e8 < rate < 1e13  # between 0.1 GB/s and 10 TB/s on any machine this runs on


@pytest.mark.skipif(not native.available(), reason=f"native kernels: {native.why_unavailable()}")
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_c_read_probe_reads_every_element_once(threads):
    torch.set_num_threads(threads)
    for n in (5, 32 * 3 + 7, 1_000_003):  # shares too small for four parts, then with remainders
        x = torch.arange(n, dtype=torch.float32) % 7  # small integers: every order of summing is exact
        probes = read_probes(x)
        assert set(probes) == {"x.sum()", "C read"}
        assert probes["C read"]() == probes["x.sum()"]() == float(sum(i % 7 for i in range(n)))
