"""Several processes, GPUs or machines, applied from outside the model (as torchtitan does).

`torchrun` sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous; `init_world` joins the group
(gloo on CPU, NCCL on CUDA) and `parallelize` wraps a built model in DistributedDataParallel
or shards it with FSDP2's `fully_shard`. The model code never knows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from glassformer.errors import UserError
from glassformer.nn.decoder import DecoderLayer
from glassformer.nn.encoder import EncoderLayer


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device, timeout_s: float = 300.0) -> World:
    """Join the process group that torchrun describes in the environment (a no-op for one process).

    Args:
        timeout_s: how long a collective waits for the other processes before failing, so that a
            dead process makes the others stop with an error instead of hanging.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return World(rank, size, local_rank)


def local_device(device: torch.device, world: World) -> torch.device:
    """The device of this process: its own GPU under torchrun on CUDA."""
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


def parallelize(model: nn.Module, world: World, fsdp: bool = False) -> nn.Module:
    """DistributedDataParallel, or FSDP2 sharding of each layer and then the whole model."""
    if not world.distributed:
        return model
    if not fsdp:
        ids = [world.local_rank] if next(model.parameters()).is_cuda else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for module in model.modules():
        if isinstance(module, (EncoderLayer, DecoderLayer)):
            fully_shard(module)
    fully_shard(model)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The model itself, without a DistributedDataParallel wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A sharded (DTensor) value gathered whole; other tensors as they are. Collective for DTensors."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def shard_like(value: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    """A whole tensor cut into this process's shard the way `parameter` is sharded."""
    if hasattr(parameter, "device_mesh") and value.dim() > 0:
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(value.to(parameter.device), parameter.device_mesh, parameter.placements)
    return value


def all_reduce_sum(values: list[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sums over all processes (the values themselves for one process)."""
    if not world.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_objects(items: list, world: World) -> list:
    """Every process's list, concatenated in rank order."""
    if not world.distributed:
        return items
    gathered: list = [None] * world.size
    dist.all_gather_object(gathered, items)
    return [x for part in gathered for x in part]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, accumulate: int, world: World) -> None:
    """The global batch must split evenly over processes and accumulation steps."""
    if batch_size % (world.size * accumulate):
        raise UserError(
            f"global batch {batch_size} does not split into {world.size} processes x {accumulate} accumulation steps"
        )
