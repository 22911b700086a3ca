"""The memory-read limit of decoding: bytes a generated token reads, and how fast this machine reads.

Generating one token at batch 1 multiplies one row by every weight matrix: two flops per number
read, so the time of a step is bounded below by the bytes it reads over the read bandwidth of
the memory. `bytes_per_step` counts those bytes for a model as it is prepared (bf16 weights count
2 bytes); `read_bandwidth` measures the bandwidth on this machine by summing a tensor larger
than the caches, in the same process and the same threads as the decoding it is compared with.

How a tensor is read changes what the memory delivers: on a 2-core AMD EPYC, `x.sum()` (one
stream of addresses per thread) read 27-33 GB/s where four streams per thread read 31-36 GB/s, and
the C products read their weights that way. So the limit is the faster of the two
(`read_probes`): a decoding figure above 100% of a slower probe would say nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from glassformer.nn.positional_encoding import LearnedPositions, SinusoidalPositions
from glassformer.speed import native

BANDWIDTH_BYTES = 1 << 30  # far more than the last-level cache of the CPUs this runs on


def read_probes(x: torch.Tensor) -> dict[str, Callable[[], float]]:
    """Ways to read all of x, each returning its sum: "x.sum()", and on a CPU where `native`'s kernels
    are built, "C read" (each thread's share read as four streams, as its products read a weight).

    Args:
        x: contiguous fp32.
    """
    probes = {"x.sum()": lambda: x.sum().item()}
    lib = native.library() if x.is_cpu and x.dtype == torch.float32 and x.is_contiguous() else None
    if lib is not None:
        probes["C read"] = lambda: lib.read_f32(x.data_ptr(), x.numel(), torch.get_num_threads())
    return probes


@torch.inference_mode()
def read_bandwidth(n_bytes: int = BANDWIDTH_BYTES, reps: int = 5, device: str | torch.device = "cpu") -> float:
    """Bytes per second read from an fp32 tensor of n_bytes by the faster of `read_probes`: the best of
    reps, after a warm-up.

    The best rep, not the median: the limit is what the machine can do, and a busy spell only
    makes a rep slower.
    """
    x = torch.ones(n_bytes // 4, device=device)
    probes = read_probes(x)
    times = {name: [] for name in probes}
    for _ in range(reps + 1):
        for name, probe in probes.items():
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            probe()  # a Python number: the GPU is done
            times[name].append(time.perf_counter() - start)
    return x.numel() * 4 / min(min(t[1:]) for t in times.values())


def _storage_key(t: torch.Tensor) -> tuple[int, int]:
    return t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers read by one decoding step of one token.

    Tensors sharing memory (tied weights, the views of a fused Q/K/V weight) count once. A table
    that is only looked up (token, position and segment embeddings, sinusoidal positions) counts
    one row; a table that an output projection shares counts whole.
    """
    lookups: dict[tuple[int, int], int] = {}  # storage -> bytes of one row
    for module in model.modules():
        if isinstance(module, (nn.Embedding, LearnedPositions)):
            table = module.weight
        elif isinstance(module, SinusoidalPositions):
            table = module.table
        else:
            continue
        lookups[_storage_key(table)] = table[0].numel() * table.element_size()
    multiplied = set()
    for module in model.modules():
        if isinstance(module, nn.Linear):
            multiplied.add(_storage_key(module.weight))
    seen: dict[tuple[int, int], int] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        key = _storage_key(tensor)
        if key in lookups and key not in multiplied:
            seen[key] = lookups[key]
        else:
            seen[key] = key[1]
    return sum(seen.values())


def kv_bytes(model: nn.Module, context: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of keys and values one sequence's step reads from a KV cache holding context positions."""
    config = model.config
    kv_heads = getattr(config, "n_kv_heads", None) or config.n_heads  # fewer with grouped-query attention
    width = kv_heads * config.d_head
    return 2 * config.n_layers * width * context * torch.finfo(dtype).bits // 8


def bytes_per_step(model: nn.Module, batch: int, context: int) -> int:
    """Bytes a decoding step of batch sequences reads: the weights once, and each sequence's keys and values."""
    return weight_bytes(model) + batch * kv_bytes(model, context)

