"""``PackedDataset``: fixed-length training blocks and documents from packed shards.

Blocks are ``block_size + 1`` tokens of the concatenated token stream of a split (documents
separated by ``<|endoftext|>``), so ``x, y = block[:-1], block[1:]``:

* ``stride=None`` (default): contiguous chunks, block ``i`` starts at ``i * block_size``
  (CodeParrot's ``ConstantLengthDataset``, nanoGPT);
* ``stride=S``: sliding windows starting every ``S`` tokens (the seeds' ``segment_len`` /
  ``stride``), overlapping when ``S < block_size``.

:class:`BlockSampler` gives a seeded random order, a (rank, world_size) share for distributed
training and a state that can be saved with the checkpoint and restored, so a resumed run sees
exactly the batches it would have seen.
"""

from __future__ import annotations

import bisect
import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from codekiln.data.shards import Shard, ShardError, sha256_file


def _torch() -> Any:
    # Imported on first use: `import codekiln.data` must not pay torch's ~0.5 GB and seconds.
    import torch

    return torch


__all__ = ["BlockSampler", "PackedDataset"]


def _split_shards(directory: str, split: str) -> tuple[list[str], int | None]:
    """The shard paths of ``split`` and the manifest's vocabulary size (None without one)."""
    from codekiln.data.pack import MANIFEST, is_shard_name, load_manifest

    if os.path.exists(os.path.join(directory, MANIFEST)):
        m = load_manifest(directory)
        if m.get("status") != "complete":
            raise ShardError(
                f"{directory}: the pack is not complete (status {m.get('status')!r}); re-run the pack command to finish it"
            )
        if split not in m.get("splits", {}):
            raise ValueError(f"{directory}: no split {split!r} (have {sorted(m['splits'])})")
        paths = [os.path.join(directory, s["file"]) for s in m["splits"][split]["shards"]]
        return paths, m.get("tokenizer", {}).get("vocab_size")
    names = sorted(n for n in os.listdir(directory) if is_shard_name(n, split))
    return [os.path.join(directory, n) for n in names], None


class PackedDataset:
    """Blocks of ``block_size + 1`` tokens from the ``split`` shards in ``directory``.

    Shards are memory-mapped and validated on open (header, exact size, document index,
    the manifest's vocabulary size); token ids are checked against the vocabulary as blocks
    and documents are read; ``verify=True`` adds the full SHA-256 check against the manifest.
    The dataset pickles small (shards by path), so ``DataLoader`` workers started with spawn
    or forkserver reopen the memory maps instead of copying the data. Items are ``torch.int64``
    tensors when torch is installed (``as_numpy=False``), else ``numpy.int64`` arrays. It is a
    map-style dataset (``__len__`` + ``__getitem__``), which ``torch.utils.data.DataLoader``
    takes as is.

    >>> # ds = PackedDataset("packed/", "train", block_size=1024); x, y = ds[0][:-1], ds[0][1:]
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        split: str = "train",
        block_size: int = 1024,
        *,
        stride: int | None = None,
        verify: bool = False,
        as_numpy: bool | None = None,
    ) -> None:
        self.directory = os.fspath(directory)
        if block_size < 1:
            raise ValueError(f"block_size must be positive, not {block_size}")
        if stride is not None and stride < 1:
            raise ValueError(f"stride must be positive, not {stride}")
        self.split = split
        self.block_size = block_size
        self.stride = stride or block_size
        has_torch = importlib.util.find_spec("torch") is not None
        self.as_numpy = not has_torch if as_numpy is None else as_numpy
        if not self.as_numpy and not has_torch:
            raise ImportError("as_numpy=False needs torch (pip install 'codekiln[train]')")
        paths, manifest_vocab = _split_shards(self.directory, split)
        if not paths:
            raise ShardError(f"{self.directory}: no {split!r} shards")
        if verify:
            self._verify(paths)
        self.shards = [Shard(p) for p in paths]
        first = self.shards[0].header
        for s in self.shards[1:]:
            if (s.header.fingerprint, s.header.token_bytes) != (
                first.fingerprint,
                first.token_bytes,
            ):
                raise ShardError(
                    f"{s.path}: made with a different tokenizer than {self.shards[0].path}"
                )
        if manifest_vocab is not None and first.vocab_size != manifest_vocab:
            raise ShardError(
                f"{self.shards[0].path}: vocabulary size {first.vocab_size} in the header, "
                f"{manifest_vocab} in the manifest: the shard is corrupt"
            )
        self.vocab_size = first.vocab_size
        self.eot_id = first.eot_id
        self.fingerprint = first.fingerprint
        self._tok_starts = np.cumsum([0] + [s.header.token_count for s in self.shards]).tolist()
        self._doc_starts = np.cumsum([0] + [s.header.doc_count for s in self.shards]).tolist()
        self.num_tokens = self._tok_starts[-1]
        n = self.num_tokens - (self.block_size + 1)
        self._len = 0 if n < 0 else n // self.stride + 1

    def _verify(self, paths: list[str]) -> None:
        from codekiln.data.pack import load_manifest

        manifest = load_manifest(self.directory)
        want = {s["file"]: s["sha256"] for s in manifest["splits"][self.split]["shards"]}
        for p in paths:
            got = sha256_file(p)
            if want.get(os.path.basename(p)) != got:
                raise ShardError(
                    f"{p}: SHA-256 {got} does not match the manifest's {want.get(os.path.basename(p))}"
                )

    # ---- blocks

    def __len__(self) -> int:
        return self._len

    def tokens(self, start: int, end: int) -> np.ndarray:
        """Tokens ``[start, end)`` of the split's concatenated stream (int64)."""
        if not 0 <= start <= end <= self.num_tokens:
            raise IndexError(f"token range [{start}, {end}) outside [0, {self.num_tokens})")
        out = np.empty(end - start, dtype=np.int64)
        pos = start
        k = bisect.bisect_right(self._tok_starts, start) - 1
        while pos < end:
            base = self._tok_starts[k]
            take = min(end, self._tok_starts[k + 1]) - pos
            out[pos - start : pos - start + take] = self.shards[k].checked_tokens(
                pos - base, pos - base + take
            )
            pos += take
            k += 1
        return out

    def block(self, i: int) -> np.ndarray:
        """Block ``i`` as a numpy int64 array of ``block_size + 1`` tokens."""
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"block {i} out of range ({self._len} blocks)")
        start = i * self.stride
        return self.tokens(start, start + self.block_size + 1)

    def __getitem__(self, i: int) -> Any:
        b = self.block(int(i))
        return b if self.as_numpy else _torch().from_numpy(b)

    def batch(self, indices: list[int] | np.ndarray) -> tuple[Any, Any]:
        """``(x, y)`` of shape ``(len(indices), block_size)``: inputs and next-token targets."""
        blocks = np.stack([self.block(int(i)) for i in indices])
        x, y = blocks[:, :-1], blocks[:, 1:]
        if self.as_numpy:
            return x, y
        torch = _torch()
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))

    def iter_batches(self, batch_size: int, sampler: BlockSampler) -> Iterator[tuple[Any, Any]]:
        """Batches in ``sampler`` order, through epoch after epoch (stop when you have had
        enough); ``sampler.state_dict()`` taken between batches resumes exactly after the last
        batch yielded."""
        it = sampler.stream()
        while True:
            idx = [i for _, i in zip(range(batch_size), it)]
            if len(idx) < batch_size:
                return
            yield self.batch(idx)

    # ---- documents

    @property
    def num_documents(self) -> int:
        return self._doc_starts[-1]

    def document_tokens(self, i: int) -> np.ndarray:
        """The tokens of document ``i`` of the split, without its separator."""
        if not 0 <= i < self.num_documents:
            raise IndexError(f"document {i} out of range ({self.num_documents} documents)")
        k = bisect.bisect_right(self._doc_starts, i) - 1
        return np.asarray(self.shards[k].document(i - self._doc_starts[k]))

    def __repr__(self) -> str:
        return (
            f"PackedDataset({self.directory!r}, split={self.split!r}, block_size={self.block_size}, "
            f"stride={self.stride}, blocks={self._len}, tokens={self.num_tokens}, "
            f"documents={self.num_documents}, shards={len(self.shards)})"
        )


class BlockSampler:
    """Indices of blocks: seeded shuffling per epoch, a rank's share, resumable.

    Epoch ``e`` uses the permutation of ``numpy.random.default_rng([seed, e])`` (or ``0..n-1``
    with ``shuffle=False``); rank ``r`` of ``world_size`` takes positions ``r, r + world_size,
    ...`` of the first ``n - n % world_size`` (every rank gets the same number). Iterating
    ``iter(sampler)`` gives the rest of the current epoch, so a ``DataLoader`` epoch ends after
    ``len(loader)`` batches; :meth:`stream` runs through the following epochs without end.

    >>> s = BlockSampler(10, seed=1)
    >>> first = [i for _, i in zip(range(4), s)]
    >>> state = s.state_dict()
    >>> rest = [i for _, i in zip(range(6), s)]
    >>> t = BlockSampler(10, seed=1); t.load_state_dict(state)
    >>> [i for _, i in zip(range(6), t)] == rest
    True
    """

    def __init__(
        self,
        num_blocks: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        if num_blocks < world_size:
            raise ValueError(f"{num_blocks} blocks cannot be shared by {world_size} ranks")
        self.num_blocks = num_blocks
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, np.ndarray] | None = None

    def epoch_length(self) -> int:
        """Indices per rank per epoch."""
        return self.num_blocks // self.world_size

    def _order(self, epoch: int) -> np.ndarray:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        n = self.num_blocks
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        mine = order[: n - n % self.world_size][self.rank :: self.world_size]
        self._cache = (epoch, mine)
        return mine

    def __iter__(self) -> Iterator[int]:
        """The rest of the current epoch (all of it from a fresh sampler); the next ``iter()``
        starts the following epoch. So ``DataLoader(ds, sampler=s)`` ends each epoch after
        ``len(loader)`` batches, as PyTorch's idioms expect; :meth:`stream` never ends."""
        if self.position >= self.epoch_length():  # saved right at the end of an epoch
            self.epoch, self.position = self.epoch + 1, 0
        order = self._order(self.epoch)
        while self.position < len(order):
            i = int(order[self.position])
            self.position += 1
            yield i
        self.epoch += 1
        self.position = 0

    def stream(self) -> Iterator[int]:
        """Indices through this and all following epochs, without end (for step-based training)."""
        while True:
            yield from self

    def __len__(self) -> int:
        return self.epoch_length()

    def state_dict(self) -> dict[str, int | bool]:
        return {
            "num_blocks": self.num_blocks,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "epoch": self.epoch,
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("num_blocks", "shuffle", "seed", "rank", "world_size"):
            if state[k] != getattr(self, k):
                raise ValueError(
                    f"sampler state has {k}={state[k]!r} but this sampler has {getattr(self, k)!r}; "
                    "resume with the same dataset, seed and ranks"
                )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
