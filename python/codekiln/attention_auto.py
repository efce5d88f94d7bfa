"""``attention="auto"`` on CUDA: measure the available attention implementations once, keep the
fastest, remember it on disk.

For each *key* -- GPU name and compute capability, dtype, head dim, causal, the sequence length
rounded up to a power of two, forward-only or forward+backward, and the set of candidates -- the
first call times every candidate on random tensors of the call's shape and keeps the winner:

* ``"triton"`` -- codekiln's kernel, two-kernel backward (deterministic);
* ``"triton-single-pass"`` -- the same forward, single-pass backward (dQ by fp32 atomics; left
  out while ``torch.are_deterministic_algorithms_enabled()``);
* ``"triton-tma"``, ``"triton-tma-single-pass"`` -- the same two, loading and storing through
  TMA tensor descriptors (``tma=True``), on sm_90 and newer only;
* ``"sdpa-flash"``, ``"sdpa-cudnn"``, ``"sdpa-efficient"`` -- PyTorch SDPA forced to one backend;
* ``"flash-attn-3"`` -- FlashAttention-3 (``flash_attn_interface``, the Hopper build of the
  ``flash-attn`` package) on sm_90 when it is installed.

A candidate that raises (unsupported shape, out of memory) is skipped. The choices live in a
JSON file (``$CODEKILN_ATTENTION_CACHE``, else ``$XDG_CACHE_HOME/codekiln/attention_auto.json``,
else ``~/.cache/codekiln/attention_auto.json``), written atomically; an unreadable file is
ignored and an unwritable one only costs re-measuring in the next process. Measuring needs no
care from the caller: it runs once per key, outside autograd, on its own tensors.

Without CUDA nothing is measured (:func:`codekiln.attention.resolve_backend` sends CPU tensors to
SDPA). :class:`AutoChooser` takes the timer and the candidates as arguments so that its logic is
tested on the CPU with fake timers.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["CANDIDATES", "AutoChooser", "auto_key", "candidate_names", "default_cache_path"]

#: Every candidate name, in the order they are measured (and preferred on a tie).
CANDIDATES: tuple[str, ...] = (
    "triton",
    "triton-single-pass",
    "triton-tma",
    "triton-tma-single-pass",
    "sdpa-flash",
    "sdpa-cudnn",
    "sdpa-efficient",
    "flash-attn-3",
)
_CACHE_VERSION = 1


def default_cache_path() -> Path:
    """Where the measured choices are kept (see the module docstring)."""
    explicit = os.environ.get("CODEKILN_ATTENTION_CACHE")
    if explicit:
        return Path(explicit)
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "codekiln" / "attention_auto.json"


def length_bucket(T: int) -> int:
    """``T`` rounded up to a power of two (the kernels' autotuning bucket too)."""
    return 1 << max(0, T - 1).bit_length()


def auto_key(
    device_name: str, dtype: torch.dtype, head_dim: int, causal: bool, T: int, grad: bool,
    candidates: tuple[str, ...],
) -> str:  # fmt: skip
    """The cache key of one measurement (a string, so that it can be a JSON key)."""
    mode = "fwd+bwd" if grad else "fwd"
    names = ",".join(candidates)
    return (
        f"{device_name}|{str(dtype).removeprefix('torch.')}|hd{head_dim}|"
        f"{'causal' if causal else 'full'}|T<={length_bucket(T)}|{mode}|{names}"
    )


def candidate_names(
    *,
    kernel_ok: bool,
    single_pass_ok: bool,
    sdpa_backends: tuple[str, ...],
    fa3_ok: bool,
    tma_ok: bool = False,
) -> tuple[str, ...]:
    """The candidates to measure, in :data:`CANDIDATES` order. ``tma_ok``: the GPU has TMA
    (sm_90+, :func:`codekiln.kernels.tma_supported`), so the descriptor variants are offered."""
    available = set(sdpa_backends)
    if kernel_ok:
        available.add("triton")
        if tma_ok:
            available.add("triton-tma")
        if single_pass_ok:
            available.add("triton-single-pass")
            if tma_ok:
                available.add("triton-tma-single-pass")
    if fa3_ok:
        available.add("flash-attn-3")
    return tuple(name for name in CANDIDATES if name in available)


class AutoChooser:
    """Measure-once, remember-on-disk choice among named candidates.

    Args:
        path: the JSON cache file (default :func:`default_cache_path`, read lazily).
        timer: ``timer(fn) -> milliseconds`` for one call of ``fn`` (warm-up included by the
            timer); on CUDA :func:`cuda_timer`.
    """

    def __init__(
        self, path: Path | None = None, timer: Callable[[Callable[[], Any]], float] | None = None
    ) -> None:
        self._path = path
        self._timer = timer if timer is not None else cuda_timer
        self._memo: dict[str, str] = {}
        self._disk: dict[str, Any] | None = None
        self.measured: list[str] = []  # keys measured by this instance (for tests and logs)

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else default_cache_path()

    def _entries(self) -> dict[str, Any]:
        if self._disk is None:
            self._disk = {}
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("version") == _CACHE_VERSION:
                    entries = data.get("entries")
                    if isinstance(entries, dict):
                        self._disk = entries
            except (OSError, ValueError):
                pass  # absent or unreadable: measure again
        return self._disk

    def cached(self, key: str) -> str | None:
        """The remembered winner of ``key`` (this process, then the file), or None."""
        if key in self._memo:
            return self._memo[key]
        entry = self._entries().get(key)
        if isinstance(entry, dict) and isinstance(entry.get("winner"), str):
            self._memo[key] = entry["winner"]
            return entry["winner"]
        return None

    def choose(self, key: str, runners: Mapping[str, Callable[[], Any]], fallback: str) -> str:
        """The fastest of ``runners`` for ``key``: remembered, or measured now and remembered.

        A runner that raises is skipped; when every runner fails the answer is ``fallback``
        (remembered in this process only).
        """
        hit = self.cached(key)
        if hit is not None and hit in runners:
            return hit
        times: dict[str, float] = {}
        for name, run in runners.items():
            try:
                times[name] = float(self._timer(run))
            except Exception:  # unsupported here (shape, memory, build): skip it
                times[name] = math.inf
        self.measured.append(key)
        finite = {n: t for n, t in times.items() if math.isfinite(t)}
        if not finite:
            self._memo[key] = fallback
            return fallback
        winner = min(finite, key=lambda n: (finite[n], list(runners).index(n)))
        self._memo[key] = winner
        self._entries()[key] = {
            "winner": winner,
            "ms": {n: (round(t, 4) if math.isfinite(t) else None) for n, t in times.items()},
        }
        self._save()
        return winner

    def _save(self) -> None:
        from codekiln._io import atomic_write_json

        try:
            # Merge with what other processes wrote since we read the file.
            merged: dict[str, Any] = {}
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and isinstance(data.get("entries"), dict):
                    merged = data["entries"]
            except (OSError, ValueError):
                pass
            merged.update(self._entries())
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"version": _CACHE_VERSION, "entries": merged})
        except OSError:
            pass  # a read-only home: the choice still holds for this process


def cuda_timer(fn: Callable[[], Any], reps: int = 10) -> float:
    """Median milliseconds of ``fn`` on the current CUDA stream, after one untimed call (which
    compiles and autotunes)."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)
