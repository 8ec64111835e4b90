"""Data-parallel training under torchrun: DistributedDataParallel over gloo (CPU) or nccl (CUDA).

    torchrun --nproc-per-node 2 -m igpg.cli train generator --zoo Z --tokenizer T --config C --out DIR
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 2 --master-addr HEAD --master-port 29500 -m igpg.cli ...

Without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) nothing here does
anything: `init_from_env(device)` returns a one-process `Context` on that device, `wrap` returns the model itself,
and training runs exactly as it always did (bit for bit).

With N processes (ranks), training stays deterministic and resumable:
- every rank draws the same GLOBAL batch from the same RNG (restored from the checkpoint on resume) and keeps its
  share (`shard_batch`: items rank, rank + N, ...), so the N ranks together see what one process would;
- randomness inside a step (dropout, noise, loss subsets) comes from torch's RNG seeded per step and rank
  (`step_seed`), so a resumed run continues with the same draws as an uninterrupted one, no per-rank RNG state to
  save;
- rank 0 alone writes checkpoints and metrics; every rank loads the same checkpoint when it resumes.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from igpg.errors import IgpgError


@dataclass(frozen=True)
class Context:
    """Where this process sits in the job: rank 0 of 1 when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def init_from_env(timeout_minutes: float = 30, device: str | torch.device | None = "auto") -> Context:
    """Join the process group torchrun describes in the environment (once; later calls return the same Context).

    gloo on CPU, nccl on CUDA (one GPU per local rank; `device` auto or cuda: when CUDA is present). WORLD_SIZE
    absent or 1: a one-process Context on `device` (auto: cuda, else mps, else cpu), and no process group."""
    from igpg.device import resolve_device

    resolved = resolve_device(device)
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Context(device=resolved)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    cuda = resolved.type == "cuda"
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if not dist.is_initialized():
        if "TORCHELASTIC_RUN_ID" in os.environ:
            # torchrun starts each rank in a session of its own: a SIGKILLed torchrun (or a lost node) would leave
            # its ranks training on, or waiting on a collective until the timeout. End this rank with its launcher.
            from igpg.zoo.train import exit_with_parent

            exit_with_parent(os.getppid())
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world,
                                timeout=timedelta(minutes=timeout_minutes))
    return Context(dist.get_rank(), dist.get_world_size(), local_rank, device)


def is_main() -> bool:
    """True on rank 0, and in a process that is not part of a distributed job."""
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (if any)."""
    if dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(device: str | torch.device | None = "auto") -> Iterator[Context]:
    """`init_from_env(device=device)` for the duration; leaves the process group at the end if this call joined it."""
    joined = not dist.is_initialized()
    ctx = init_from_env(device=device)
    try:
        yield ctx
    finally:
        if joined and ctx.distributed:
            cleanup()


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    """DistributedDataParallel around `model` (moved to the rank's device) when distributed, else `model` itself.

    Optimizers and checkpoints keep using `model`: DDP shares its parameters and adds no state of its own."""
    if not ctx.distributed:
        return model
    model.to(ctx.device)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def step_seed(seed: int, step: int, rank: int) -> int:
    """A 63-bit seed for (run seed, step, rank), the same in every process and run."""
    return int(hashlib.sha256(f"igpg-ddp|{seed}|{step}|{rank}".encode()).hexdigest()[:15], 16)


def shard_indices(n: int, ctx: Context) -> slice:
    """This rank's share of n items of a global batch: rank, rank + N, ... (deterministic, sizes differ by <= 1)."""
    if n < ctx.world_size:
        raise IgpgError(f"a global batch of {n} cannot be shared by {ctx.world_size} processes: raise batch_size in "
                        "the config or start fewer processes")
    return slice(ctx.rank, None, ctx.world_size)


def shard_batch(batch, ctx: Context, n: int | None = None):
    """This rank's share of a batch: every tensor with leading axis n (the batch size) is sliced, nested dicts too."""
    if not ctx.distributed:
        return batch
    if n is None:
        n = _batch_size(batch)
    share = shard_indices(n, ctx)

    def cut(x):
        if isinstance(x, dict):
            return {k: cut(v) for k, v in x.items()}
        if isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == n:
            return x[share]
        return x

    return cut(batch)


def _batch_size(batch) -> int:
    for v in batch.values():
        if isinstance(v, dict):
            return _batch_size(v)
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return v.shape[0]
    raise ValueError("batch holds no tensor")


def to_device(batch, device: torch.device):
    """Every tensor of a (nested) batch on `device`; on the CPU the batch itself."""
    if device.type == "cpu":
        return batch
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch.to(device) if isinstance(batch, torch.Tensor) else batch


def check_same(value, what: str, ctx: Context) -> None:
    """Refuse to go on unless every rank holds the same `value` (e.g. the step it resumes from)."""
    if not ctx.distributed:
        return
    seen = [None] * ctx.world_size
    dist.all_gather_object(seen, value)
    if any(v != seen[0] for v in seen):
        raise IgpgError(f"the ranks disagree on {what}: {seen} (rank order); every rank must read the same output "
                        "directory (a shared file system across nodes)")


def mean_over_ranks(value: float, ctx: Context) -> float:
    """The mean of a scalar over all ranks (for metrics logged by rank 0); the value itself when not distributed."""
    if not ctx.distributed:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.item() / ctx.world_size
