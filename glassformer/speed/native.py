"""Products of a few rows in C, compiled on this machine at first use: the weight read at the speed of memory.

Decoding one token multiplies one row by every weight, so a step's time is the time of reading
the weights. PyTorch's products are built for many rows: on a quiet 2-core AVX2 EPYC, F.linear
of one row read a 768 x 3072 or 50,257 x 768 fp32 weight at 10-15 GB/s, where summing a large
tensor reads 30-35 GB/s. `native.c` reads each weight row once, front to back, and multiplies it
with up to four rows of x at a time in AVX2 fused multiply-adds (16-24 GB/s on the same shapes);
a bf16 weight is widened in registers, so half the bytes are read and the sums stay fp32.

The source ships with the package and is compiled by the system's C compiler (`CC`, else `cc`)
with AVX2, FMA and OpenMP, into the cache folder (`GLASSFORMER_CACHE_DIR`, default
~/.cache/glassformer) under the hash of the source and the flags: about a second, once per machine.
Its OpenMP runtime is the one PyTorch has loaded (the same `libgomp.so.1`), and it runs on
`torch.get_num_threads()` threads. Without a compiler, on a CPU without AVX2 and FMA, or with
`GLASSFORMER_NATIVE=0`, `available()` is False and `why_unavailable()` says why; the kernel is
then never a candidate of `glassformer.speed.choice`, and `native_linear` falls back to F.linear.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch
import torch.nn.functional as F

from glassformer.files import cache_dir

SOURCES = tuple(Path(__file__).with_name(name) for name in ("native.c", "native_layers.c"))
HEADER = Path(__file__).with_name("native.h")
FLAGS = ("-O3", "-mavx2", "-mfma", "-fPIC", "-shared", "-fopenmp")
COMPILE_TIMEOUT_S = 120

_ARGS = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3 + [ctypes.c_int]


def _cache_folder() -> Path:
    return cache_dir() / "native"


def _compile(compiler: str, target: Path) -> str | None:
    """Build the shared library at target (atomically); returns None, or why it failed in one line."""
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([compiler, *FLAGS, *map(str, SOURCES), "-o", str(tmp)], capture_output=True, text=True,
                              timeout=COMPILE_TIMEOUT_S)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            return f"{compiler} failed: {lines[0] if lines else f'exit {done.returncode}'}"
        os.replace(tmp, target)
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return f"{compiler} failed: {e}"
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _has_avx2_and_fma() -> bool:
    """Whether the CPU itself has the instructions native.c uses (whatever kernels PyTorch is told to use)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return {"avx2", "fma"} <= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")  # no /proc: PyTorch's own detection


@functools.lru_cache(maxsize=1)
def _load() -> tuple[ctypes.CDLL | None, str, str]:
    """The compiled library (built now if needed), "" and its key (the hash of its sources, compiler
    and flags); or None, the reason it is not there, and ""."""
    if os.environ.get("GLASSFORMER_NATIVE", "1") == "0":
        return None, "turned off by GLASSFORMER_NATIVE=0", ""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None, f"written for x86-64 with AVX2, not {platform.machine()}", ""
    if not _has_avx2_and_fma():
        return None, "this CPU has no AVX2 and FMA", ""
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        return None, f"no C compiler ({compiler}) on PATH", ""
    sources = b"".join(path.read_bytes() for path in (*SOURCES, HEADER))
    key = hashlib.sha256(sources + " ".join((compiler, *FLAGS)).encode()).hexdigest()[:16]
    target = _cache_folder() / f"native-{key}.so"
    if not target.is_file():
        failed = _compile(compiler, target)
        if failed:
            return None, failed, ""
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as e:
        return None, f"could not load {target}: {e}", ""
    for function in (lib.linear_f32, lib.linear_bf16):
        function.argtypes = _ARGS
        function.restype = ctypes.c_int
    lib.decode_layers.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] + [ctypes.c_void_p] * 3
    lib.decode_layers.restype = ctypes.c_int
    lib.decode_greedy.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] + [ctypes.c_void_p] * 3 + [
        ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
        ctypes.c_void_p]
    lib.decode_greedy.restype = ctypes.c_int64
    lib.activation.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 3
    lib.activation.restype = None
    lib.linear_cm.argtypes = [ctypes.c_void_p, ctypes.c_int64] + [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3 + [
        ctypes.c_int]
    lib.linear_cm.restype = ctypes.c_int
    lib.read_f32.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    lib.read_f32.restype = ctypes.c_double
    return lib, "", key


def library() -> ctypes.CDLL | None:
    """The compiled library (compiling it on the first call), or None where it cannot be built."""
    return _load()[0]


def available() -> bool:
    """Whether the compiled kernels can run here (compiling them on the first call)."""
    return _load()[0] is not None


def why_unavailable() -> str:
    """One line on why `available()` is False; empty when it is True."""
    return _load()[1]


def build_key() -> str:
    """The hash of the compiled kernels' sources, compiler and flags; "" where they are not built.
    Kernel choices measured against one build are measured again for another (`choice.cache_key`)."""
    return _load()[2]


def native_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias) for fp32 x and bias and an fp32 or bf16 weight, with an fp32 result.

    Args:
        x: [..., in] fp32 on CPU; weight: [out, in], row-major or column-major ([in, out] in memory),
            fp32 or bf16; bias: [out] fp32 or None.
    Returns:
        [..., out] fp32: fp32 sums of the products (a bf16 weight is widened exactly).
    """
    lib = _load()[0]
    out_features, in_features = weight.shape
    column = not weight.is_contiguous() and weight.stride() == (1, out_features)
    tracked = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    if (
        lib is None
        or tracked  # the C code has no backward
        or x.dtype != torch.float32
        or weight.dtype not in (torch.float32, torch.bfloat16)
        or (bias is not None and bias.dtype != torch.float32)
        or not (weight.is_contiguous() or column)
        or not x.is_cpu
    ):
        return F.linear(x, weight.to(x.dtype), bias)
    rows = x.numel() // in_features
    flat = x.reshape(rows, in_features).contiguous()
    y = torch.empty(rows, out_features)
    if bias is not None:
        bias = bias.contiguous()
    pointers = (flat.data_ptr(), None if bias is None else bias.data_ptr(), y.data_ptr())
    shape = (rows, out_features, in_features, torch.get_num_threads())
    if column:
        failed = lib.linear_cm(weight.data_ptr(), int(weight.dtype == torch.bfloat16), *pointers, *shape)
    else:
        function = lib.linear_f32 if weight.dtype == torch.float32 else lib.linear_bf16
        failed = function(weight.data_ptr(), *pointers, *shape)
    if failed:  # no memory for the split copy of x or the partial sums
        return F.linear(x, weight.to(x.dtype), bias)
    return y.view(*x.shape[:-1], out_features)
