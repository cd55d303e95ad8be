"""Multi-process training under ``torchrun``: one process group, gloo on CPU, nccl on GPU.

The launcher (torchrun) sets the rendezvous variables and ``init_process_group`` reads them;
the CLI decides whether to call this (it is the only layer that looks at the environment).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def setup_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group torchrun prepared; returns (rank, world size)."""
    if not dist.is_initialized():
        chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=chosen)
    return dist.get_rank(), dist.get_world_size()


def cleanup_distributed() -> None:
    """Leave the process group (after the last collective)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
