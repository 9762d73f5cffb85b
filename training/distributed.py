"""Process-group set-up for ``torchrun`` (one process per GPU) and plain single-process runs."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group ``torchrun`` describes in the environment, or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def all_reduce_mean(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= ctx.world_size
    return value


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def finish_together(ctx: DistContext) -> None:
    """Return on every rank only once every rank has finished all of its collective work.

    A gloo barrier alone does not give that: its last message may still be on its way to a
    peer when the rank that sent it returns, destroys the group and exits, and the peer's
    barrier then fails with "Connection closed by peer". So after the barrier each rank
    also checks in at the rendezvous store (torchrun's agent holds it, not a rank) and waits
    for the others there: when that returns, no gloo operation is in flight anywhere."""
    if not ctx.distributed:
        return
    dist.barrier()
    store = dist.distributed_c10d._get_default_store()
    store.set(f"masksem/finished/{ctx.rank}", "1")
    store.wait([f"masksem/finished/{rank}" for rank in range(ctx.world_size)])


@contextmanager
def process_group(device: str = "auto") -> Iterator[DistContext]:
    """Join (and always leave) the process group for the length of a run."""
    ctx = init_distributed(device)
    try:
        yield ctx
        # Every rank is done before any tears its gloo connections down (rank 0 still writes
        # the last checkpoint and plots while the others wait). Not on an error: a failed
        # rank's peers would wait for it until the timeout.
        finish_together(ctx)
    finally:
        # A DistributedDataParallel wrapper sits in a reference cycle and holds the process
        # group: collected here, the group dies inside destroy_process_group; left to the
        # collector, it can outlive it to interpreter exit, where tearing gloo down while the
        # peer closes its side aborted a rank (scripts/torchrun_teardown_stress.py).
        gc.collect()
        shutdown(ctx)
