"""Process-group set-up for ``torchrun`` (DistributedDataParallel).

Launched by ``torchrun --nproc_per_node=N -m facetoon train ...``, each process reads its
rank from the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``). NCCL on CUDA, gloo on CPU.
A plain ``python -m facetoon train ...`` runs one process without a process group.

NCCL reduces CUDA tensors only: every tensor of a collective lives on the device the model trains on
(:func:`flag_tensor`), never on the CPU by default.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "flag_tensor", "any_rank", "all_ranks"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group set up by torchrun, if any; returns this process's rank info."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def flag_tensor(flags: Sequence[bool], device: torch.device) -> torch.Tensor:
    """``flags`` as a float tensor (1.0 = true) on ``device``, the one the model trains on: the
    process group's backend for that device (NCCL for CUDA) then reduces it."""
    return torch.tensor([1.0 if f else 0.0 for f in flags], device=device)


def any_rank(flags: Sequence[bool], info: DistInfo, device: torch.device) -> list[bool]:
    """Each of ``flags``, true on every rank if it is true on any rank (e.g. a stop request);
    ``device``: the runtime device (a collective of CPU tensors fails under NCCL)."""
    if not info.enabled:
        return list(flags)
    t = flag_tensor(flags, device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]


def all_ranks(obj: Any, info: DistInfo) -> list[Any]:
    """``obj`` of every rank, in rank order (pickled; every rank must call this); ``[obj]`` without a
    process group."""
    if not info.enabled or not dist.is_initialized():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
