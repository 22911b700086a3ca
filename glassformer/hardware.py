"""What the hardware computes natively: the checks behind bf16 choices in training and inference.

On a CPU without native bf16 instructions bf16 does not fail; it is emulated through conversions,
and a GPT-2 training step measured 24x slower than fp32 on an AVX2 EPYC (69 s against 2.9 s).

- CUDA: `torch.cuda.is_bf16_supported(including_emulation=False)` (Ampere and later, and ROCm).
- x86 CPU: the AVX512-BF16 or AMX-BF16 instructions. `torch.ops.mkldnn._is_mkldnn_bf16_supported()`
  is not the test here: it says yes for any AVX-512 CPU (Skylake, Cascade Lake), where oneDNN
  emulates bf16 and runs slower than fp32.
- ARM CPU: the BF16 extension, as oneDNN reports it (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`
  checks exactly that there).
"""

from __future__ import annotations

import platform
from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def _proc_cpu_flags() -> frozenset[str]:
    """CPU feature names from /proc/cpuinfo (x86 "flags", ARM "Features"); empty where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def _cpu_check(name: str, flag: str) -> bool:
    """torch.cpu's check (cpuinfo, any OS) where this torch has it, else the /proc/cpuinfo flag."""
    check = getattr(torch.cpu, name, None)
    if check is not None:
        try:
            return bool(check())
        except Exception:  # noqa: BLE001 - a failed probe means "not known to be there"
            pass
    return flag in _proc_cpu_flags()


def _mkldnn_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - torch built without oneDNN, or the op renamed
        return False


def cuda_native_bf16() -> bool:
    """torch.cuda.is_bf16_supported() without counting emulation (which it counts by default: before
    Ampere a bf16 tensor can be made, but its products are emulated)."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the argument counts only native support
        return bool(torch.cuda.is_bf16_supported())


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _is_arm() -> bool:
    return platform.machine().lower() in ("aarch64", "arm64")


@lru_cache(maxsize=1)
def cpu_native_bf16() -> tuple[bool, str]:
    """(whether this CPU does bf16 arithmetic natively, what it has: e.g. "AVX2", "AVX512 + AVX512-BF16").

    Cached: the CPU does not change while the process runs.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if _is_x86():
        found = [name for name, check, flag in (
            ("AVX512-BF16", "_is_avx512_bf16_supported", "avx512_bf16"),
            ("AMX-BF16", "_is_amx_tile_supported", "amx_bf16"),  # every CPU with AMX tiles has AMX-BF16
        ) if _cpu_check(check, flag)]
        return bool(found), " + ".join([capability, *found])
    if _is_arm():
        native = _mkldnn_bf16() or "bf16" in _proc_cpu_flags()
        return native, f"{capability}{' + BF16' if native else ''}"
    return False, capability


def native_bf16(device: torch.device | str) -> bool:
    """Whether device does bf16 arithmetic natively, so that bf16 makes it faster rather than slower."""
    kind = torch.device(device).type
    if kind == "cuda":
        return cuda_native_bf16()
    if kind == "cpu":
        return cpu_native_bf16()[0]
    return False


def available_memory() -> int | None:
    """Bytes of memory the system can still give a process (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
