"""Block-size configurations and autotuning rules of the attention kernels.

Kept apart from the kernels (``attention_kernels.py``, ``@triton.jit`` only) and the launchers
(``attention.py``) so that the tables can be read, tested and changed without touching kernel
code; ``kernels/compile_attention.py`` compiles every config for sm_90 to check registers,
spills and shared memory, and the tables and the spill list below come from it.
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
# autotuner keeps the fastest per (T, head dim, causal, dtype) and drops any config that runs out
# of shared memory. Not yet tuned on a GPU in this repository -- see kernels/README.md.
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


# Configs that spill registers at head dim 128 (ahead-of-time compile for sm_90 with triton
# 3.9's ptxas, bf16, read with cuobjdump --dump-resource-usage: STACK > 0). They compile, but
# tuning them only wastes time, so the pruner drops them for head dims above 64.
# fwd 128x32 s4 w4 joined when the unmasked blocks moved to one FMA per score (255 registers
# before, 255 + 24 B of spills after); "bwd1" is the dK/dV kernel with FUSED_DQ (the
# single-pass backward), which also holds the dQ tile: its 32x64 s3 w4 spills 56 B causal.
# Configs at the register cap without spills (fwd 128x128 w8 at head dim 128: 254-255) stay:
# they are FlashAttention-2's own tile, and only a GPU can say whether they lose.
_SPILLS_AT_HEAD_DIM_128 = {
    "fwd": {(128, 64, 4, 4), (128, 32, 4, 4)},
    "dkdv": {(64, 128, 3, 8), (64, 64, 2, 4)},
    "bwd1": {(32, 64, 3, 4)},
    "dq": {(128, 32, 2, 4)},
}


def _key(config: triton.Config) -> tuple[int, int, int, int]:
    kw = config.kwargs
    return (kw["BLOCK_M"], kw["BLOCK_N"], config.num_stages, config.num_warps)


def _pruner(kernel: str) -> Any:
    """An ``early_config_prune`` for ``kernel`` ("fwd", "dkdv" or "dq").

    The causal split needs the outer block to be a multiple of the inner one: forward and dQ
    walk key blocks up to ``start_m * BLOCK_M`` (``BLOCK_M % BLOCK_N == 0``); dK/dV walks query
    blocks from ``start_n * BLOCK_N`` (``BLOCK_N % BLOCK_M == 0``). Configs measured to spill
    at head dim 128 are dropped there (for dK/dV launched with ``FUSED_DQ``, the single pass's
    own list too).
    """

    def prune(
        configs: list[triton.Config], named_args: dict[str, Any], **kwargs: Any
    ) -> list[triton.Config]:
        head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM", 64))
        spills = _SPILLS_AT_HEAD_DIM_128[kernel]
        if kernel == "dkdv" and kwargs.get("FUSED_DQ", named_args.get("FUSED_DQ", False)):
            spills = spills | _SPILLS_AT_HEAD_DIM_128["bwd1"]
        kept = []
        for config in configs:
            bm, bn = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"]
            if (bn % bm if kernel == "dkdv" else bm % bn) != 0:
                continue
            if head_dim > 64 and _key(config) in spills:
                continue
            kept.append(config)
        return kept

    return prune
