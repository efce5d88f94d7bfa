"""Block-size configurations and autotuning rules of the attention kernels.

Kept apart from the kernels (``attention_kernels.py``, ``@triton.jit`` only) and the launchers
(``attention.py``) so that the tables can be read, tested and changed without touching kernel
code; ``kernels/compile_attention.py`` compiles every config for sm_90 to check registers,
spills and shared memory, and writes what it measured to ``attention_occupancy.py``, which the
pruner below reads.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton

#: True when this module was imported with ``TRITON_INTERPRET=1``: ``@triton.jit`` decides at
#: decoration time whether a kernel is compiled or interpreted, so the flag is read once here.
INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")

#: Head dimensions the kernels are built for (``tl.dot`` needs K >= 16; ``tl.arange`` needs a
#: power of two). Other head sizes go to PyTorch SDPA under ``attention="auto"``.
SUPPORTED_HEAD_DIMS: tuple[int, ...] = (16, 32, 64, 128)
SUPPORTED_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32)

_LOG2E = 1.4426950408889634  # log2(e): exp(x) == exp2(x * log2(e))


# --------------------------------------------------------------------------------------------
# Block-size configurations
# --------------------------------------------------------------------------------------------


def _configs(table: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_stages=stages, num_warps=warps)
        for bm, bn, stages, warps in table
    ]


# (BLOCK_M, BLOCK_N, num_stages, num_warps). The CUDA candidates follow tutorial 06 and the
# FlashAttention-2 paper's choices for sm80/sm90 (128x64 / 128x128 tiles, 4-8 warps); the
# pruner keeps those that reach two CTAs per SM without spilling (measured, see
# ``prune_by_occupancy``), the autotuner the fastest of them per (T bucket, head dim, causal,
# dtype, variant). Not yet tuned on a GPU in this repository -- see kernels/README.md.
# A new config here needs ``kernels/compile_attention.py --all-configs --write-occupancy``
# (``tests/test_kernels.py`` checks that the occupancy table covers every config).
# Removed after kernels/compile_attention.py: fwd 64x128 (breaks the causal-split rule below, so
# it was never tried) and dK/dV 32x128 with 4 warps, 2 stages (spills even at head dim 64).
_FWD_TABLE_CUDA = [
    (128, 128, 3, 8),
    (128, 64, 3, 8),
    (128, 64, 4, 4),
    (128, 32, 4, 4),
    (64, 64, 4, 4),
    (64, 32, 3, 4),
    (128, 128, 2, 8),
]
_BWD_DKDV_TABLE_CUDA = [
    (32, 128, 3, 8),
    (64, 128, 3, 8),
    (32, 64, 3, 4),
    (64, 64, 2, 4),
    (16, 64, 3, 4),
    (16, 128, 3, 8),
    (64, 128, 1, 8),  # FlashAttention-2's tile at head dim 128: spill-free with TMA only
]
_BWD_DQ_TABLE_CUDA = [
    (128, 32, 3, 8),
    (128, 64, 3, 8),
    (64, 32, 3, 4),
    (64, 64, 2, 4),
    (64, 16, 3, 4),
    (128, 32, 2, 4),
]
# Under the interpreter every program runs in Python, one numpy op per tile: small tiles keep
# the tests exercising several blocks, diagonal splits and tails at T <= 129, and (measured on a
# 2-core CPU) a (2, 2, 129, 64) forward+backward takes 1-2 seconds.
_FWD_TABLE_INTERPRET = [(32, 16, 1, 4)]
_BWD_DKDV_TABLE_INTERPRET = [(16, 32, 1, 4)]
_BWD_DQ_TABLE_INTERPRET = [(32, 16, 1, 4)]

FWD_CONFIGS = _configs(_FWD_TABLE_INTERPRET if INTERPRET else _FWD_TABLE_CUDA)
BWD_DKDV_CONFIGS = _configs(_BWD_DKDV_TABLE_INTERPRET if INTERPRET else _BWD_DKDV_TABLE_CUDA)
BWD_DQ_CONFIGS = _configs(_BWD_DQ_TABLE_INTERPRET if INTERPRET else _BWD_DQ_TABLE_CUDA)


def _key(config: triton.Config) -> tuple[int, int, int, int]:
    kw = config.kwargs
    return (kw["BLOCK_M"], kw["BLOCK_N"], config.num_stages, config.num_warps)


def _splits(kernel: str, config: triton.Config) -> bool:
    """The causal split: forward and dQ walk key blocks up to ``start_m * BLOCK_M``
    (``BLOCK_M % BLOCK_N == 0``); dK/dV walks query blocks from ``start_n * BLOCK_N``
    (``BLOCK_N % BLOCK_M == 0``)."""
    bm, bn = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"]
    return (bn % bm if kernel in ("dkdv", "bwd1") else bm % bn) == 0


#: Registers per thread at which ptxas has nothing left (sm_80 / sm_90): a config there is one
#: change away from spilling, and the next kernel edit would silently slow it down.
REGISTER_CAP = 255
#: CTAs per SM a config must reach to stay: two, so that one CTA's loads, softmax and epilogue
#: overlap the other's tensor-core work (FlashAttention-2's argument for small tiles).
MIN_CTAS_PER_SM = 2


def occupancy(
    kernel: str, variant: str, head_dim: int, causal: bool, key: tuple[int, int, int, int]
) -> Any:
    """The measured sm_90 (registers, spill bytes, shared memory, CTAs/SM; 0 when it does not
    fit) of one config, from ``attention_occupancy.py`` (``kernels/compile_attention.py
    --write-occupancy``), or None.

    ``kernel``: "fwd", "dkdv", "dq" or "bwd1" (dK/dV with ``FUSED_DQ``); ``variant``: "ptr" or
    "tma". Head dims below 64 use the head-dim-64 figures, an upper bound (smaller tiles)."""
    from codekiln.kernels.attention_occupancy import OCCUPANCY_SM90

    measured = 64 if head_dim <= 64 else head_dim
    return OCCUPANCY_SM90.get((kernel, variant, measured, bool(causal), key))


def prune_by_occupancy(
    kernel: str, variant: str, head_dim: int, causal: bool, configs: list[triton.Config]
) -> list[triton.Config]:
    """Drop configs that do not fit, sit at the register cap or spill, then those below two
    CTAs per SM unless none would be left -- then keep the best-occupancy ones. Configs without
    measurements stay (a test keeps the table complete). Never returns an empty list for a
    non-empty input."""
    usage = {id(c): occupancy(kernel, variant, head_dim, causal, _key(c)) for c in configs}

    def clean(c: triton.Config) -> bool:
        u = usage[id(c)]
        return u is None or (u[0] < REGISTER_CAP and u[1] == 0 and u[3] >= 1)

    def ctas(c: triton.Config) -> int:
        u = usage[id(c)]
        return MIN_CTAS_PER_SM if u is None else u[3]

    pool = [c for c in configs if clean(c)] or configs  # nothing clean: keep the least bad below
    enough = [c for c in pool if ctas(c) >= MIN_CTAS_PER_SM]
    if enough:
        return enough
    best = max((ctas(c) for c in pool), default=0)
    return [c for c in pool if ctas(c) == best]


def _pruner(kernel: str) -> Any:
    """An ``early_config_prune`` for ``kernel`` ("fwd", "dkdv" or "dq").

    Keeps the configs that satisfy the causal split (:func:`_splits`), then prunes them by
    their measured sm_90 occupancy (:func:`prune_by_occupancy`) for the launch's head dim, mask
    and variant (``TMA``; for dK/dV launched with ``FUSED_DQ``, the single pass's own figures).
    """

    def prune(
        configs: list[triton.Config], named_args: dict[str, Any], **kwargs: Any
    ) -> list[triton.Config]:
        def arg(name: str, default: Any) -> Any:
            return kwargs.get(name, named_args.get(name, default))

        name = "bwd1" if kernel == "dkdv" and arg("FUSED_DQ", False) else kernel
        variant = "tma" if arg("TMA", False) else "ptr"
        kept = [c for c in configs if _splits(kernel, c)]
        return prune_by_occupancy(name, variant, arg("HEAD_DIM", 64), arg("CAUSAL", True), kept)

    return prune
