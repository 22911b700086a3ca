"""`optimize_for_inference`: prepare a built model for fast inference on the device it sits on.

Like torchtitan's `parallelize_llama`, it transforms a model it did not write, from outside:
nothing in `glassformer.nn` or `glassformer.models` knows of it. It changes how products are
computed, never what: the transformed model gives the plain model's outputs within rounding
(tested for every family), and its parameters, names, state dict and hook points stay the same.

What it does, by device:
- everywhere: submodules found as plain attributes (`glassformer.speed.lookups`), which decoding
  one token at a time looks up a few hundred times per token.
- CPU: Q, K and V of each self-attention from one product (`fused_qkv`), and every linear
  layer's products of up to 16 rows (decoding) through the kernel and weight layout measured
  fastest for its shape on this machine (`small_batch`, `glassformer.speed.choice`).
- CUDA: the same fusion, and bf16 weights where the GPU computes in bf16 natively
  (`glassformer.hardware`).
- `compile=True` also wraps the model's entry points in `torch.compile`. It is off by default:
  on 2 CPU cores compiling a 2-layer, 64-wide model took 19 s for its forward and 34 s more for
  its decode steps, longer than a command's whole decoding. (Not measured on a GPU yet.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from glassformer.hardware import native_bf16
from glassformer.nn.multi_head_attention import SelfAttention
from glassformer.speed.fused_qkv import FusedSelfAttention, fuse_qkv
from glassformer.speed.lookups import cache_submodule_lookups
from glassformer.speed.small_batch import use_small_batch_kernels


@dataclass
class Optimized:
    """What `optimize_for_inference` did to a model.

    Args:
        device: the model's device.
        dtype: its weights' dtype afterwards.
        fused_qkv: self-attention modules whose Q, K and V now come from one product.
        kernels: how many linear layers use each kernel for one row, e.g. {"bag": 24, "linear": 1}.
        lookups: whether submodules are found as plain attributes.
        compiled: whether the entry points are wrapped in torch.compile.
    """

    device: torch.device
    dtype: torch.dtype
    fused_qkv: int = 0
    kernels: Counter = field(default_factory=Counter)
    lookups: bool = False
    compiled: bool = False

    def summary(self) -> str:
        """One line saying what was applied, for the commands to print."""
        parts = []
        if self.fused_qkv:
            parts.append(f"fused Q/K/V in {self.fused_qkv} self-attention modules")
        if self.kernels:
            used = ", ".join(f"{name} x{n}" for name, n in self.kernels.most_common())
            parts.append(f"small-batch kernels measured on this CPU ({used})")
        if self.lookups:
            parts.append("submodules as plain attributes")
        if self.dtype != torch.float32:
            parts.append(f"{str(self.dtype).removeprefix('torch.')} weights")
        if self.compiled:
            parts.append("torch.compile")
        return f"inference speed-ups on {self.device.type}: " + ("; ".join(parts) or "none apply")


def _device_of(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def optimize_for_inference(
    model: nn.Module,
    fused_qkv: bool = True,
    small_batch: bool = True,
    lookups: bool = True,
    bf16: bool | None = None,
    compile: bool = False,
) -> Optimized:
    """Prepare model, in place, for inference on its device, and put it in eval mode.

    Apply it after the model is on its device, its weights are loaded and its submodules are in
    place (peft, replaced heads); train the plain model, not this one. Every switch below can
    turn its part off.

    Args:
        fused_qkv: one product for Q, K and V of each self-attention.
        small_batch: the measured small-batch kernels (CPU only).
        lookups: submodules as plain attributes (replace submodules before, not after).
        bf16: bf16 weights; None means on a GPU that computes in bf16 natively.
        compile: wrap `forward`, `encode` and `decode` in torch.compile.
    """
    model.eval()
    device = _device_of(model)
    if bf16 is None:
        # On a CPU some bf16 products beat fp32 while others, emulated, are many times slower:
        # bf16 weights there need a choice measured per product, which is not made here yet.
        bf16 = device.type == "cuda" and native_bf16(device)
    if bf16:
        model.to(torch.bfloat16)
    done = Optimized(device, torch.bfloat16 if bf16 else torch.float32)
    cpu_kernels = small_batch and device.type == "cpu"
    fused_parts: set[int] = set()  # w_q, w_k, w_v of fused modules: no longer called
    for module in list(model.modules()):
        if isinstance(module, FusedSelfAttention) or (fused_qkv and isinstance(module, SelfAttention)):
            if not isinstance(module, FusedSelfAttention):
                fuse_qkv(module, small_batch=cpu_kernels)
            done.fused_qkv += 1
            fused_parts.update(id(part) for part in (module.w_q, module.w_k, module.w_v))
    if cpu_kernels:
        for module in list(model.modules()):
            if isinstance(module, nn.Linear) and id(module) not in fused_parts:
                done.kernels[use_small_batch_kernels(module).kernels[0]] += 1
    if lookups:
        cache_submodule_lookups(model)
        done.lookups = True
    if compile:
        for name in ("forward", "encode", "decode"):
            if hasattr(model, name):
                setattr(model, name, torch.compile(getattr(model, name), dynamic=True))
        done.compiled = True
    return done
