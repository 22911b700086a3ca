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
  fastest for its shape on this machine (`small_batch`, `glassformer.speed.choice`), C compiled
  here at first use among them (`native`). For a model whose decoding steps will run in C (below),
  only the dtype is measured, for the row-major C kernel, since that is what runs (`NATIVE_ONLY`).
- a decoder-only LM: its one-token decoding steps as one flat function (`decode_step`), the same
  operations without a module call per part, whenever no hook watches the model; on CPU, where the
  C kernels are built, all its layers in one call into C (`native_layers`), equal within rounding.
- CUDA: the same fusion, and bf16 weights where the GPU computes in bf16 natively
  (`glassformer.hardware`).
- `weights="bf16"`: the weights of the linear layers stored in bf16 and multiplied in bf16, the
  rest in fp32 (`glassformer.speed.bf16_weights`); on a CPU only where the measurement shows the
  bf16 product faster for that shape, on a GPU everywhere. Outputs then differ from fp32 by
  bf16's rounding of the weights (see `glassformer.speed.weights_check`).
- `compile=True` also wraps the model's entry points in `torch.compile`. It is off by default:
  on 2 CPU cores compiling a 2-layer, 64-wide model took 19 s for its forward and 34 s more for
  its decode steps, longer than a command's whole decoding. (Not measured on a GPU yet.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from glassformer.errors import UserError
from glassformer.hardware import native_bf16
from glassformer.nn.multi_head_attention import SelfAttention
from glassformer.speed import native
from glassformer.speed.bf16_weights import widen_bf16_embeddings
from glassformer.speed.choice import NATIVE_ONLY, WEIGHTS, Choice
from glassformer.speed.decode_step import install_flat_decode, supported
from glassformer.speed.fused_qkv import FusedSelfAttention, fuse_qkv
from glassformer.speed.lookups import cache_submodule_lookups
from glassformer.speed.native_layers import structure_fits
from glassformer.speed.small_batch import use_small_batch_kernels


@dataclass
class Optimized:
    """What `optimize_for_inference` did to a model.

    Args:
        device: the model's device.
        dtype: its weights' dtype afterwards.
        fused_qkv: self-attention modules whose Q, K and V now come from one product.
        kernels: how many linear layers use each kernel for one row, e.g. {"bag": 24, "linear": 1}.
        bf16_products: products (linear layers, fused Q/K/V counted once) whose weight is now bf16.
        products: all products the transform chose for (the same counting).
        lookups: whether submodules are found as plain attributes.
        flat_decode: whether one-token decoding steps run as one flat function (`decode_step`).
        native_layers: whether those steps run their layers in one call into C (`native_layers`).
        compiled: whether the entry points are wrapped in torch.compile.
    """

    device: torch.device
    dtype: torch.dtype
    fused_qkv: int = 0
    kernels: Counter = field(default_factory=Counter)
    bf16_products: int = 0
    products: int = 0
    lookups: bool = False
    flat_decode: bool = False
    native_layers: bool = False
    compiled: bool = False

    def summary(self) -> str:
        """One line saying what was applied, for the commands to print."""
        parts = []
        if self.fused_qkv:
            parts.append(f"fused Q/K/V in {self.fused_qkv} self-attention modules")
        if self.kernels:
            used = ", ".join(f"{name} x{n}" for name, n in self.kernels.most_common())
            missing = "" if native.available() else f"; C kernels not built: {native.why_unavailable()}"
            parts.append(f"small-batch kernels measured on this CPU ({used}{missing})")
        if self.lookups:
            parts.append("submodules as plain attributes")
        if self.flat_decode:
            parts.append("one flat function per decoding step" + (", its layers in C" if self.native_layers else ""))
        if self.bf16_products:
            parts.append(f"bf16 weights in {self.bf16_products} of {self.products} products, fp32 elsewhere")
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
    weights: str | None = None,
    flat_decode: bool = True,
    native_layers: bool = True,
) -> Optimized:
    """Prepare model, in place, for inference on its device, and put it in eval mode.

    Apply it after the model is on its device, its weights are loaded and its submodules are in
    place (peft, replaced heads); train the plain model, not this one. Every switch below can
    turn its part off.

    Args:
        fused_qkv: one product for Q, K and V of each self-attention.
        small_batch: the measured small-batch kernels (CPU only).
        lookups: submodules as plain attributes (replace submodules before, not after).
        bf16: the whole model in bf16; None means on a GPU that computes in bf16 natively.
        compile: wrap `forward`, `encode` and `decode` in torch.compile.
        weights: "bf16": only the linear layers' weights in bf16, where their products measure
            faster in bf16 (CPU) or everywhere (GPU), activations in fp32; "fp32": no bf16 at
            all; None: as `bf16` says. Either string overrides `bf16`.
        flat_decode: one-token decoding steps of a decoder-only LM as one flat function, while no
            hook watches the model (`glassformer.speed.decode_step`); not with compile.
        native_layers: the flat step's layers in one call into C on CPU (`glassformer.speed.native_layers`),
            where the C kernels are built and fit the model; outputs equal within fp32 rounding.
    """
    if weights not in (None, *WEIGHTS):
        raise UserError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    model.eval()
    device = _device_of(model)
    if weights is not None:
        bf16 = False
    if bf16 is None:
        # On a CPU some bf16 products beat fp32 while others, emulated, are many times slower:
        # bf16 weights there need a choice measured per product: weights="bf16" makes it.
        bf16 = device.type == "cuda" and native_bf16(device)
    if bf16:
        model.to(torch.bfloat16)
    done = Optimized(device, torch.bfloat16 if bf16 else torch.float32)
    weights = weights or "fp32"
    mixed = weights == "bf16" and not bf16
    cpu_kernels = small_batch and device.type == "cpu"
    # Without the measurement (off the CPU, or small_batch=False) bf16 weights, when asked for, go everywhere.
    given = None if cpu_kernels or weights == "fp32" else Choice(False, ("linear",) * 3, "bfloat16")
    # Where the C code will run every decoding step, each product runs on the row-major C kernel:
    # only its dtype is measured (`choice.NATIVE_ONLY`).
    in_c = (cpu_kernels and native_layers and flat_decode and not compile and native.available()
            and supported(model) and structure_fits(model, fused_qkv))
    only = NATIVE_ONLY if in_c else None
    fused_parts: set[int] = set()  # w_q, w_k, w_v of fused modules: no longer called
    for module in list(model.modules()):
        if isinstance(module, FusedSelfAttention) or (fused_qkv and isinstance(module, SelfAttention)):
            if not isinstance(module, FusedSelfAttention):
                chosen = fuse_qkv(module, small_batch=cpu_kernels, weights=weights, only=only)
                done.products += 1
                done.bf16_products += mixed and chosen is not None and chosen.dtype == "bfloat16"
            done.fused_qkv += 1
            fused_parts.update(id(part) for part in (module.w_q, module.w_k, module.w_v))
    if cpu_kernels or given is not None:
        for module in list(model.modules()):
            if isinstance(module, nn.Linear) and id(module) not in fused_parts:
                chosen = use_small_batch_kernels(module, weights, given, only)
                done.products += 1
                done.bf16_products += mixed and chosen.dtype == "bfloat16"
                if cpu_kernels:
                    done.kernels[chosen.kernels[0]] += 1
    if done.bf16_products:
        widen_bf16_embeddings(model)
    if lookups:
        cache_submodule_lookups(model)
        done.lookups = True
    if flat_decode and not compile:
        step = install_flat_decode(model, native=native_layers and small_batch and device.type == "cpu")
        done.flat_decode = step is not None
        done.native_layers = step is not None and step.native is not None
    if compile:
        for name in ("forward", "encode", "decode"):
            if hasattr(model, name):
                setattr(model, name, torch.compile(getattr(model, name), dynamic=True))
        done.compiled = True
    return done
