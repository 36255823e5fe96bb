"""Process-group setup and rank helpers: one code path for one CPU, one GPU and torchrun.

Under `torchrun` (RANK / WORLD_SIZE / LOCAL_RANK in the environment) the default process group
is created with NCCL when CUDA is available, gloo otherwise; a plain `python -m bigr ...` run
is world size 1 and needs no process group. Training logic lives in `bigr.train`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    own_group: bool = False  # a one-process group made for FSDP, destroyed at teardown

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None, *, group: bool = False) -> Context:
    """Join the torchrun process group if there is one; pick this rank's device. `group`: a
    one-process run gets a process group of its own too (FSDP needs one to shard over)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    if target.type == "cuda" and target.index is None:
        target = torch.device("cuda", local)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    backend = "nccl" if target.type == "cuda" else "gloo"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend=backend)
    own = group and world == 1 and not dist.is_initialized()
    if own:
        store = dist.HashStore()  # one process: nothing to rendezvous with
        dist.init_process_group(backend=backend, store=store, rank=0, world_size=1)
    return Context(rank=rank, world_size=world, local_rank=local, device=target, own_group=own)


def teardown(ctx: Context) -> None:
    if (ctx.distributed or ctx.own_group) and dist.is_initialized():
        if ctx.distributed:
            dist.barrier()  # no rank leaves while another still has collectives in flight
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(ctx: Context, tensor: torch.Tensor) -> torch.Tensor:
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(ctx: Context, tensor: torch.Tensor) -> torch.Tensor:
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (run seed, step, rank, purpose), stable across runs."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(device: torch.device | str, *parts: object) -> torch.Generator:
    return torch.Generator(device).manual_seed(derived_seed(*parts))
