"""Data-parallel training across processes: ``torchrun --nproc_per_node=N lava-spikeformer train ...``.

torchrun starts N copies of the command and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; ``session`` joins them into one process group (nccl on CUDA,
one GPU per process; gloo on CPU). Every rank holds the same model, draws the same epoch order
from the same seed and trains on its own shard of it (``Distributed.shard``, what
``torch.utils.data.DistributedSampler`` does); DistributedDataParallel averages the gradients.
Only rank 0 evaluates, prints and writes files, so a run directory has one writer.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place in the group; ``Distributed()`` is a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's part of an epoch order: padded by wrapping around to a multiple of the world
        size (every rank runs the same number of steps, or the gradient all-reduce would hang),
        then every ``world_size``-th element from ``rank`` on."""
        if not self.enabled:
            return order
        padded_len = -(-len(order) // self.world_size) * self.world_size
        padded = torch.cat([order, order[:padded_len - len(order)]])
        return padded[self.rank::self.world_size]

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module to train through: DistributedDataParallel when running in a group."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel
        device_ids = [device.index if device.index is not None else self.local_rank] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum of ``tensor`` over all ranks (in place; one collective)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def current() -> Distributed:
    """The process group this process has joined (``session``), or a single-process run."""
    if not (dist.is_available() and dist.is_initialized()):
        return Distributed()
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be an integer (set by torchrun)") from None


@contextmanager
def session(device: str = "auto") -> Iterator[Distributed]:
    """Join the group torchrun describes in the environment for the duration of the block; without
    ``WORLD_SIZE`` > 1 a single-process run. The group is torn down even when training raises."""
    if "WORLD_SIZE" not in os.environ or _env_int("WORLD_SIZE") <= 1 or dist.is_initialized():
        yield current()
        return
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {name} is not set: start distributed "
                             f"runs with torchrun --nproc_per_node=N")
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(_env_int("LOCAL_RANK"))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        yield current()
    finally:
        dist.destroy_process_group()
