"""Every small-batch kernel computes F.linear, and the measured choice is remembered per machine."""

import json
import os
import time

import pytest
import torch
import torch.nn.functional as F

from glassformer.speed import choice as choice_module
from glassformer.speed import native
from glassformer.speed.choice import Choice, cache_file, choose
from glassformer.speed.kernels import KERNELS, column_major, is_column_major
from glassformer.speed.small_batch import MAX_ROWS, SmallBatchLinear, use_small_batch_kernels


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("layout", ["column-major", "row-major"])
@pytest.mark.parametrize("bias", [True, False])
def test_every_kernel_equals_f_linear(threads, layout, bias):
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(200, 70, generator=g)  # 200 outputs: uneven blocks for 3 threads
    b = torch.randn(200, generator=g) if bias else None
    w = column_major(weight) if layout == "column-major" else weight
    for rows in (1, 2, 4, 5, 16, 17):
        x = torch.randn(rows, 70, generator=g)
        expected = F.linear(x, weight, b)
        for name, kernel in KERNELS.items():
            with torch.inference_mode():
                got = kernel(x, w, b)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=f"{name}, {rows} rows")
        # Batched inputs [B, T, in] keep their leading dimensions.
        torch.testing.assert_close(KERNELS["bag"](x[None], w, b), expected[None], atol=1e-5, rtol=1e-5)


def test_column_major_keeps_shape_and_values_and_changes_only_strides():
    w = torch.arange(15.0).view(5, 3)
    cm = column_major(w)
    assert cm.shape == (5, 3) and cm.stride() == (1, 5) and torch.equal(cm, w)
    assert is_column_major(cm) and not is_column_major(w)


def test_small_batch_linear_uses_its_choice_only_for_few_rows_without_gradients(monkeypatch):
    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 96)
    reference = torch.nn.Linear(32, 96)
    reference.load_state_dict(linear.state_dict())
    monkeypatch.setattr("glassformer.speed.small_batch.choose", lambda *a: Choice(True, ("bag", "split", "linear")))
    assert use_small_batch_kernels(linear) == Choice(True, ("bag", "split", "linear"))
    assert isinstance(linear, SmallBatchLinear) and is_column_major(linear.weight)
    calls = []
    monkeypatch.setitem(KERNELS, "bag", lambda x, w, b: calls.append(x.shape) or F.linear(x, w, b))
    x = torch.randn(1, 32)
    with torch.no_grad():
        torch.testing.assert_close(linear(x), reference(x), atol=1e-6, rtol=0)
        linear(torch.randn(MAX_ROWS + 1, 32))  # too many rows: F.linear
    linear(x).sum().backward()  # gradients wanted: F.linear, and they reach the parameter
    assert calls == [(1, 32)]
    torch.testing.assert_close(linear.weight.grad, torch.ones(96, 1) @ x, atol=1e-6, rtol=0)


def test_a_choice_is_measured_once_then_read_back(monkeypatch):
    measured = []

    def fake_measure(out_features, in_features, bias, dtype, weights="fp32", only=None):
        measured.append((out_features, in_features))
        return Choice(False, ("split", "linear", "linear"))

    monkeypatch.setattr(choice_module, "measure", fake_measure)
    cache_file().unlink(missing_ok=True)
    first = choose(123, 45, True, torch.float32)
    again = choose(123, 45, True, torch.float32)
    assert first == again == Choice(False, ("split", "linear", "linear")) and measured == [(123, 45)]
    stored = json.loads(cache_file().read_text())
    assert [v for k, v in stored.items() if "123x45" in k] == [
        {"column_major": False, "kernels": ["split", "linear", "linear"], "dtype": "float32"}]
    # A damaged or foreign entry is measured again, never trusted.
    cache_file().write_text(json.dumps({k: {"column_major": True, "kernels": ["nope"]} for k in stored}))
    assert choose(123, 45, True, torch.float32) == first and len(measured) == 2
    cache_file().write_text("not json")
    assert choose(123, 45, True, torch.float32) == first and len(measured) == 3
    # Another build of the C kernels (changed C code, another compiler) is measured again.
    monkeypatch.setattr(choice_module.native, "build_key", lambda: "another build")
    assert choose(123, 45, True, torch.float32) == first and len(measured) == 4
    assert choose(123, 45, True, torch.float32) == first and len(measured) == 4


def test_a_choice_measured_on_a_busy_machine_serves_this_process_and_is_not_written(monkeypatch):
    measured, share = [], {"busy": 0.9}

    def fake_measure(out_features, in_features, bias, dtype, weights="fp32", only=None):
        measured.append((out_features, in_features))
        return Choice(False, ("native", "linear", "linear"))

    monkeypatch.setattr(choice_module, "measure", fake_measure)
    monkeypatch.setattr(choice_module, "others_share", lambda work: (work(), share["busy"]))
    monkeypatch.setattr(choice_module, "_UNSAVED", {})
    cache_file().unlink(missing_ok=True)
    first = choose(77, 33, False, torch.float32)
    assert choose(77, 33, False, torch.float32) == first and measured == [(77, 33)]  # kept in this process
    assert not cache_file().exists()
    monkeypatch.setattr(choice_module, "_UNSAVED", {})  # a new process: measured again, on a quiet machine
    share["busy"] = 0.1
    assert choose(77, 33, False, torch.float32) == first and len(measured) == 2
    assert any("77x33" in key for key in json.loads(cache_file().read_text()))
    monkeypatch.setattr(choice_module, "_UNSAVED", {})
    assert choose(77, 33, False, torch.float32) == first and len(measured) == 2  # read back


def test_this_processes_cpu_time_is_read_from_proc_and_short_work_is_not_judged():
    from glassformer.speed.machine_load import cpu_ticks, others_share

    assert others_share(lambda: 7) == (7, None)  # too short to tell
    before = cpu_ticks()
    if before is None:
        pytest.skip("no /proc on this system")
    start = time.process_time()
    while time.process_time() - start < 0.3:  # 0.3 s of this process's CPU time
        pass
    after, tick = cpu_ticks(), os.sysconf("SC_CLK_TCK")
    own = after[1] - before[1]
    assert 0.2 * tick <= own <= 0.5 * tick and after[0] - before[0] >= own - 2


def test_measuring_only_the_c_kernels_picks_them_where_they_run():
    torch.set_num_threads(2)
    got = choice_module.measure(96, 64, True, torch.float32, only=choice_module.NATIVE_ONLY)
    assert got.kernels == ("native",) * 3 if native.available() else all(k in KERNELS for k in got.kernels)
    wide = choice_module.measure(96, 64, True, torch.float64, only=choice_module.NATIVE_ONLY)  # not for the C code
    assert "native" not in wide.kernels and all(k in KERNELS for k in wide.kernels)


def test_a_storage_slow_on_its_first_call_at_16_rows_keeps_a_kernel_for_them(monkeypatch):
    """bf16 fastest on one row but 100x slower on the first call of 16 rows, where only the C kernel is a
    candidate (no F.linear to fall back on): bf16 still gets a kernel for every row count."""
    timings = iter([1.0, 1.0, 1.0, 1.0, 100.0, 100.0])  # bf16's seconds per call, each row count twice

    def fake(calls, reps):
        bf16 = next(timings)
        return {c: bf16 if c[0] == "bfloat16" else 2.0 for c in calls}

    monkeypatch.setattr(choice_module, "_interleaved_best", fake)
    got = choice_module.measure(96, 64, True, torch.float32, weights="bf16", only=choice_module.NATIVE_ONLY)
    assert got.dtype == "bfloat16" and len(got.kernels) == 3


def test_measuring_picks_a_kernel_for_every_bucket_and_a_layout():
    torch.set_num_threads(2)
    got = choice_module.measure(256, 64, True, torch.float32)
    assert isinstance(got.column_major, bool) and len(got.kernels) == 3
    assert all(k in KERNELS for k in got.kernels)
    assert "bag" not in got.kernels or got.column_major  # bag only ever with the layout it needs
    assert got.kernel_for(1) == got.kernels[0] and got.kernel_for(3) == got.kernels[1] and got.kernel_for(9) == got.kernels[2]
