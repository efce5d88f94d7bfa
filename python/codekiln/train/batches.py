"""Training batches from memory-mapped shards, prepared one step ahead.

The indices of the next batch are drawn in the caller's thread (so the sampler's position is
known exactly for every batch, and a checkpoint records where the *consumed* batches end), the
tokens are gathered from the memory maps on a worker thread while the current step runs, and
on CUDA they land in pinned memory and are copied to the GPU on a side stream. The input
pipeline so never sits between two steps.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

import numpy as np
import torch

from codekiln.data import BlockSampler, PackedDataset

__all__ = ["BatchLoader"]


class BatchLoader:
    """``next()`` gives ``(x, y, sampler_state)``: (B, T) int64 inputs and targets on ``device``,
    and the sampler state just after this batch's indices."""

    def __init__(
        self,
        dataset: PackedDataset,
        sampler: BlockSampler,
        batch_size: int,
        device: torch.device,
    ) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = batch_size
        self.device = device
        self._it = sampler.stream()  # step-based training runs through epochs
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="codekiln-batch")
        self._cuda = device.type == "cuda"
        self._stream = torch.cuda.Stream(device) if self._cuda else None
        self._next: tuple[Any, Any, dict[str, Any], Any] | None = None
        self._schedule()

    def _gather(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        blocks = np.stack([self.dataset.block(i) for i in indices])  # (B, T + 1) int64
        x = torch.from_numpy(np.ascontiguousarray(blocks[:, :-1]))
        y = torch.from_numpy(np.ascontiguousarray(blocks[:, 1:]))
        if self._cuda:
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def _schedule(self) -> None:
        indices = [next(self._it) for _ in range(self.batch_size)]
        state = self.sampler.state_dict()
        future = self._pool.submit(self._gather, indices)
        self._next = (future, None, state, None)

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        assert self._next is not None
        future, _, state, _ = self._next
        x, y = future.result()
        if self._cuda:
            assert self._stream is not None
            with torch.cuda.stream(self._stream):
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
            # The step's kernels run on the current stream: wait for the copy, and keep the
            # pinned host buffers alive until it is done.
            torch.cuda.current_stream(self.device).wait_stream(self._stream)
            x.record_stream(torch.cuda.current_stream(self.device))
            y.record_stream(torch.cuda.current_stream(self.device))
        self._schedule()  # gather the following batch while this one trains
        return x, y, state

    def __iter__(self) -> BatchLoader:
        return self

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
