"""Which precision training runs in: bf16 autocast only where the device does bf16 arithmetic natively.

--bf16 is a request, granted where the hardware does bf16 natively (`glassformer.hardware`):
emulated bf16 is many times slower than fp32. The answer comes with a one-line reason, which the
trainer prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from glassformer.hardware import cpu_native_bf16, cuda_native_bf16

FORCE_ENV = "GLASSFORMER_FORCE_BF16"
"""Set to 1 to train in bf16 even where the hardware has no native bf16 arithmetic."""


@dataclass(frozen=True)
class Precision:
    """The precision chosen for training, and why, in one line meant for the user."""

    bf16: bool
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.bf16 else torch.float32


def choose_precision(device: torch.device | str, bf16: bool, force: bool = False) -> Precision:
    """The training precision on device when bf16 was (or was not) asked for.

    Args:
        device: where training runs.
        bf16: the user asked for bf16 autocast.
        force: grant bf16 even without native support (slow on most CPUs).
    """
    kind = torch.device(device).type
    if not bf16:
        return Precision(False, "training in fp32")
    if force:
        return Precision(True, f"bf16 autocast on {kind}, forced by {FORCE_ENV}=1 (native support not checked)")
    if kind == "cuda":
        if cuda_native_bf16():
            return Precision(True, "bf16 autocast on cuda")
        return Precision(False, "bf16 requested, but this CUDA device has no native bf16 arithmetic "
                                "(compute capability under 8.0): training in fp32")
    if kind == "cpu":
        native, has = cpu_native_bf16()
        if native:
            return Precision(True, f"bf16 autocast on cpu ({has}: native bf16 arithmetic)")
        return Precision(False, f"bf16 requested, but this CPU ({has}) has no native bf16 arithmetic: training in fp32")
    return Precision(True, f"bf16 autocast on {kind}")


def force_from_env() -> bool:
    """Whether GLASSFORMER_FORCE_BF16=1 is set."""
    return os.environ.get(FORCE_ENV, "").strip() == "1"
