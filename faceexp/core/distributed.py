"""Which process this is under ``torchrun``, with PyTorch's own process group.

faceexp never schedules work itself: ``torchrun --nproc_per_node N`` starts the
processes and sets ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``; :func:`context`
joins the process group (gloo on CPU, nccl on GPU) and says which share of the
work is this process's. Without torchrun it is process 0 of 1.
"""
from __future__ import annotations

import os

import torch

__all__ = ["context", "barrier", "is_main_process"]


def context(device=None) -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process.

    Parameters
    ----------
    device : str or torch.device, optional
        None: the process's GPU (``LOCAL_RANK``) when CUDA is available, else the
        CPU. Under torchrun with a GPU device the process group uses nccl, else
        gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available() and device in (None, "cuda"):
            torch.cuda.set_device(local_rank)
            device, backend = torch.device("cuda", local_rank), "nccl"
        else:
            device, backend = torch.device("cpu" if device is None else device), "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        return dist.get_rank(), dist.get_world_size(), device
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return 0, 1, torch.device(device)


def barrier() -> None:
    """Wait for every process (nothing to wait for outside torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def is_main_process() -> bool:
    """Whether this is rank 0 (the process that prints summaries)."""
    return int(os.environ.get("RANK", "0")) == 0
