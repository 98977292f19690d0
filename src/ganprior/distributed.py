"""Runs under ``torchrun``: which share of the work this process takes, on which device.

``torchrun --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT] -m ganprior bench ...``
starts N×M processes with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each one joins a
``torch.distributed`` group (NCCL on GPUs, Gloo on CPU), takes every WORLD_SIZE-th unit of work
starting at its rank (bench: (task, image) pairs; restore: images), runs on ``cuda:LOCAL_RANK``
when the device is a GPU, and waits at a barrier; rank 0 then writes the reports. Work units do not
depend on the split, so the result is the single-process one, and re-running resumes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> Launch | None:
    """This process's place in a ``torchrun`` launch; ``None`` when started alone (or world size 1)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise RuntimeError(f"torchrun environment is malformed (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from None
    return Launch(rank, world, local) if world > 1 else None


def start(launch: Launch, device: str) -> str:
    """Join the process group; the device this rank uses (``cuda`` -> ``cuda:LOCAL_RANK``)."""
    import torch
    import torch.distributed as dist

    on_gpu = device.startswith("cuda")
    if on_gpu:
        if ":" in device:
            raise RuntimeError("under torchrun give --device cuda (each rank takes cuda:LOCAL_RANK), not " + device)
        torch.cuda.set_device(launch.local_rank)
        device = f"cuda:{launch.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if on_gpu else "gloo")
    return device


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def rank_shard(shard: tuple[int, int], launch: Launch) -> tuple[int, int]:
    """A ``--shard K/N`` split further among the launch's W ranks: ``plan[K::N][rank::W]``, which is
    ``plan[K + rank·N :: N·W]``."""
    index, count = shard
    return index + launch.rank * count, count * launch.world_size
