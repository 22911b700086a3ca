"""--bf16 is granted only where the device does bf16 arithmetic natively; elsewhere fp32, said in one line."""

import pytest
import torch

import glassformer.hardware as hardware
import glassformer.train.precision as precision
from glassformer.cli import main
from glassformer.train.precision import FORCE_ENV, choose_precision

TINY = ["--task", "grammar-lm", "--preset", "tiny-lm", "--steps", "2", "--batch-size", "8", "--eval-every", "2",
        "--eval-examples", "4", "--no-progress", "--examples", "0"]


@pytest.fixture
def cpu(monkeypatch):
    """Set what the CPU reports: cpu(x86=..., avx512_bf16=..., amx=..., mkldnn=..., arm=...)."""

    def set_cpu(x86=True, avx512_bf16=False, amx=False, mkldnn=False, arm=False, proc_flags=()):
        monkeypatch.setattr(hardware, "_is_x86", lambda: x86)
        monkeypatch.setattr(hardware, "_is_arm", lambda: arm)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
        monkeypatch.setattr(hardware, "_mkldnn_bf16", lambda: mkldnn)
        monkeypatch.setattr(hardware, "_proc_cpu_flags", lambda: frozenset(proc_flags))
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512" if x86 else "SVE256")
        hardware.cpu_native_bf16.cache_clear()

    yield set_cpu
    hardware.cpu_native_bf16.cache_clear()  # the real CPU's answer again for later tests


@pytest.mark.parametrize("flags", [dict(avx512_bf16=True), dict(amx=True), dict(avx512_bf16=True, amx=True)])
def test_a_cpu_with_native_bf16_trains_in_bf16(cpu, flags):
    cpu(**flags)
    chosen = choose_precision("cpu", bf16=True)
    assert chosen.bf16 and chosen.dtype == torch.bfloat16
    assert chosen.reason.startswith("bf16 autocast on cpu (AVX512 + ")
    assert ("AVX512-BF16" in chosen.reason) == flags.get("avx512_bf16", False)
    assert ("AMX-BF16" in chosen.reason) == flags.get("amx", False)


@pytest.mark.parametrize("mkldnn", [False, True])
def test_a_cpu_without_native_bf16_trains_in_fp32_and_says_so(cpu, mkldnn):
    # oneDNN calls any AVX-512 CPU bf16-capable (mkldnn=True) and emulates it there: still fp32.
    cpu(avx512_bf16=False, amx=False, mkldnn=mkldnn)
    chosen = choose_precision(torch.device("cpu"), bf16=True)
    assert not chosen.bf16 and chosen.dtype == torch.float32
    assert chosen.reason == "bf16 requested, but this CPU (AVX512) has no native bf16 arithmetic: training in fp32"


def test_proc_cpuinfo_flags_stand_in_where_torch_has_no_check(cpu, monkeypatch):
    cpu(proc_flags=["avx2", "avx512f", "avx512_bf16"])
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    chosen = choose_precision("cpu", bf16=True)
    assert chosen.reason == "bf16 autocast on cpu (AVX512 + AVX512-BF16: native bf16 arithmetic)"
    cpu(proc_flags=["avx2", "avx512f"])
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert not choose_precision("cpu", bf16=True).bf16


@pytest.mark.parametrize("mkldnn, expected", [(True, True), (False, False)])
def test_arm_follows_onednn_bf16_extension_check(cpu, mkldnn, expected):
    cpu(x86=False, arm=True, mkldnn=mkldnn)
    assert choose_precision("cpu", bf16=True).bf16 is expected


def test_the_cpu_answer_is_cached(cpu, monkeypatch):
    cpu(avx512_bf16=True)
    calls = []
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: calls.append(1) or True)
    for _ in range(5):
        choose_precision("cpu", bf16=True)
    assert len(calls) == 1


@pytest.mark.parametrize("native, emulated", [(True, True), (False, True), (False, False)])
def test_cuda_follows_torch_cuda_is_bf16_supported_without_emulation(monkeypatch, native, emulated):
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return native or (including_emulation and emulated)

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    chosen = choose_precision("cuda", bf16=True)
    assert asked == [False]  # a pre-Ampere GPU emulates bf16: that does not count
    assert chosen.bf16 is native
    assert chosen.reason == ("bf16 autocast on cuda" if native else "bf16 requested, but this CUDA device has no "
                             "native bf16 arithmetic (compute capability under 8.0): training in fp32")


def test_not_asked_is_fp32_and_forced_is_bf16(cpu):
    cpu(avx512_bf16=False)
    assert choose_precision("cpu", bf16=False) == precision.Precision(False, "training in fp32")
    forced = choose_precision("cpu", bf16=True, force=True)
    assert forced.bf16 and FORCE_ENV in forced.reason


def _autocast_calls(monkeypatch) -> list:
    calls, real = [], torch.autocast
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    return calls


def test_train_bf16_prints_this_machines_decision_once_and_follows_it(tmp_path, capsys, monkeypatch):
    hardware.cpu_native_bf16.cache_clear()
    expected = choose_precision("cpu", bf16=True)
    monkeypatch.delenv(FORCE_ENV, raising=False)
    calls = _autocast_calls(monkeypatch)
    assert main(["train", *TINY, "--bf16", "--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("training decoder-only"))
    assert lines[at + 1] == expected.reason  # right after the "training ..." line
    assert sum(line == expected.reason for line in lines) == 1
    assert (len(calls) == 2) is expected.bf16  # one forward per step under autocast, or none
    assert all(a == ("cpu",) and k == {"dtype": torch.bfloat16} for a, k in calls)


def test_train_without_bf16_prints_no_precision_line_and_forcing_turns_autocast_on(tmp_path, capsys, monkeypatch):
    calls = _autocast_calls(monkeypatch)
    assert main(["train", *TINY, "--device", "cpu", "--out", str(tmp_path / "plain")]) == 0
    out = capsys.readouterr().out
    assert not any(s in out for s in ("bf16 autocast", "bf16 requested", "training in fp32")) and calls == []
    monkeypatch.setenv(FORCE_ENV, "1")
    assert main(["train", *TINY, "--bf16", "--device", "cpu", "--out", str(tmp_path / "forced")]) == 0
    assert f"bf16 autocast on cpu, forced by {FORCE_ENV}=1 (native support not checked)" in capsys.readouterr().out
    assert len(calls) == 2
