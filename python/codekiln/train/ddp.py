"""Many processes through PyTorch's own engine: torchrun sets the environment, we join it.

``torchrun --nproc_per_node=N -m codekiln train ...`` (and multi-node through torchrun's
rendezvous) starts N copies; each reads ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` and joins
the process group: NCCL on CUDA (one GPU per local rank), gloo on CPU. The model is wrapped in
DDP (``strategy="ddp"``) or sharded with FSDP2 ``fully_shard`` (``strategy="fsdp"``, every
transformer block a unit). Checkpoints always hold *full* (unsharded) state, written by rank
0, so a run can resume on another world size or strategy.

Without torchrun's variables this module is a no-op: one process, no process group.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "all_reduce_sum", "no_sync", "setup", "teardown", "unwrap", "wrap"]


@dataclass
class DistInfo:
    """Where this process sits: rank, world size and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    enabled: bool  # a process group was started (world_size > 1 or torchrun with 1 process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _device(want: str, local_rank: int) -> torch.device:
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def setup(device: str = "auto") -> DistInfo:
    """Join torchrun's process group if its variables are set, else describe one process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(0, 0, 1, _device(device, 0), enabled=False)
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = _device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend}
        if dev.type == "cuda":
            kwargs["device_id"] = dev
        dist.init_process_group(**kwargs)
    return DistInfo(rank, local_rank, world, dev, enabled=True)


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo, strategy: str) -> nn.Module:
    """``model`` wrapped for data parallelism (unchanged in a single process)."""
    if not info.enabled:
        return model
    if strategy == "fsdp":
        try:
            from torch.distributed.fsdp import fully_shard
        except ImportError:  # torch < 2.6
            raise ValueError("strategy='fsdp' needs torch >= 2.6 (FSDP2 fully_shard)") from None
        blocks = getattr(getattr(model, "transformer", None), "h", [])
        for block in blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if info.device.type == "cuda":
        return DDP(model, device_ids=[info.device.index])
    return DDP(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


@contextlib.contextmanager
def no_sync(model: nn.Module, skip: bool) -> Iterator[None]:
    """Skip DDP's gradient all-reduce for this backward (all but the last micro-batch)."""
    if skip and hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    elif skip and hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``t`` over all ranks in place (no-op in one process)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def is_fsdp(model: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return isinstance(model, FSDPModule)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full (unsharded, CPU) model and optimizer state dicts, on every rank."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_state_dict(model, optimizer, options=opts)
    return unwrap(model).state_dict(), optimizer.state_dict()


def load_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, model_sd: dict, optim_sd: dict | None
) -> None:
    """Load full state dicts into a possibly sharded model and its optimizer."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, model_sd, options=opts)
        if optimizer is not None and optim_sd is not None:
            set_optimizer_state_dict(model, optimizer, optim_sd, options=opts)
        return
    unwrap(model).load_state_dict(model_sd)
    if optimizer is not None and optim_sd is not None:
        optimizer.load_state_dict(optim_sd)
