"""Fused causal / non-causal attention in Triton: the FlashAttention-2 algorithm.

Three layers, as in Triton tutorial 06 and Liger-Kernel:

1. ``@triton.jit`` kernels -- ``_attn_fwd_kernel`` (online softmax, saves the log-sum-exp),
   ``_attn_bwd_preprocess_kernel`` (``delta = rowsum(O * dO)``), ``_attn_bwd_dkdv_kernel`` (one
   program per key block, loops over query blocks) and ``_attn_bwd_dq_kernel`` (one program per
   query block, loops over key blocks);
2. launchers ``attention_forward`` / ``attention_backward`` that check shapes, dtypes and strides
   and pick block sizes (autotuned on CUDA, one small fixed config under the interpreter);
3. ``FlashAttentionFunction`` (``torch.autograd.Function``) and the public :func:`attention`.

Shapes: ``q, k, v`` are ``(B, nh, T, hs)`` -- nanoGPT's layout after ``.transpose(1, 2)``.
Any strides are accepted as long as the last (head) dimension is contiguous, so the model passes
views of its fused ``c_attn`` output without a copy.

Decisions (see docs/model.md for the overview):

* Softmax runs in base 2: scores are multiplied by ``scale * log2(e)`` once and ``exp2`` is used
  throughout; the saved log-sum-exp is in base 2 too (``lse2 = m + log2(l)``). That is the
  tutorial's trick: one FMA per score instead of a multiply and an ``exp``.
* Causal attention is split into two loops per program: blocks strictly below the diagonal run
  without any mask, only the diagonal blocks pay for the ``where``. This needs ``BLOCK_M`` to be
  a multiple of ``BLOCK_N`` (forward, dQ) and ``BLOCK_N`` a multiple of ``BLOCK_M`` (dK/dV); the
  config pruner enforces it (and drops configs measured to spill registers at head dim 128).
* Sequence tails: all loads are masked (``other=0``). In the forward a zero key would still
  take ``exp2(0 - m)`` of a softmax row, so the loops that can see a key past ``T`` mask the
  scores. The backward needs no tail masks: a zero key past ``T`` adds ``dS * k = 0`` to dQ, a
  zero query past ``T`` adds ``P^T dO = 0`` and ``dS^T q = 0`` to dV and dK; ``P`` is recomputed
  as ``exp2(min(s - lse, 0))`` so the discarded entries stay finite (no ``inf * 0``).
* The backward is two kernels rather than the tutorial's single fused one: the same FLOPs, no
  atomics, and each kernel autotunes its own block shape (dK/dV wants wide key blocks, dQ wide
  query blocks).
* Causal forward and dQ programs run the longest rows first (reversed block index), as
  FlashAttention-2 does, so the short diagonal programs fill the tail of the grid.
* The output and the gradients are allocated as ``(B, T, nh, hs)`` and returned transposed, so
  the model's ``y.transpose(1, 2).contiguous()`` that follows is free.
* Under ``TRITON_INTERPRET=1`` the interpreter computes ``tl.dot`` on bf16 inputs wrongly
  (triton 3.9: a 16x16 bf16 dot came back off by 1e10; fp16 was right), so the launcher passes ``DOT_FP32=True`` and every dot upcasts its
  (already rounded) operands to fp32. Rounding of ``P`` and ``dS`` to the input dtype before
  their matmuls is kept, so the interpreter sees the same quantisation as the GPU.
* The interpreter never compiles the CUDA path, so ``kernels/compile_attention.py`` compiles
  every config for sm_90 on a CPU (triton bundles ptxas) and reads registers, spills and shared
  memory back; the config tables and the spill list below come from it.
* fp32 inputs use TF32 tensor cores on CUDA when ``torch.backends.cuda.matmul.allow_tf32`` is
  set (``torch.set_float32_matmul_precision("high")``), full IEEE fp32 otherwise.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import triton
import triton.language as tl

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
_SPILLS_AT_HEAD_DIM_128 = {
    "fwd": {(128, 64, 4, 4)},
    "dkdv": {(64, 128, 3, 8), (64, 64, 2, 4)},
    "dq": {(128, 32, 2, 4)},
}


def _key(config: triton.Config) -> tuple[int, int, int, int]:
    kw = config.kwargs
    return (kw["BLOCK_M"], kw["BLOCK_N"], config.num_stages, config.num_warps)


def _pruner(kernel: str) -> Any:
    """An ``early_config_prune`` for ``kernel`` ("fwd", "dkdv" or "dq").

    The causal split needs the outer block to be a multiple of the inner one: forward and dQ
    walk key blocks up to ``start_m * BLOCK_M`` (``BLOCK_M % BLOCK_N == 0``); dK/dV walks query
    blocks from ``start_n * BLOCK_N`` (``BLOCK_N % BLOCK_M == 0``).
    """

    def prune(
        configs: list[triton.Config], named_args: dict[str, Any], **kwargs: Any
    ) -> list[triton.Config]:
        head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM", 64))
        kept = []
        for config in configs:
            bm, bn = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"]
            if (bn % bm if kernel == "dkdv" else bm % bn) != 0:
                continue
            if head_dim > 64 and _key(config) in _SPILLS_AT_HEAD_DIM_128[kernel]:
                continue
            kept.append(config)
        return kept

    return prune


# --------------------------------------------------------------------------------------------
# Layer 1: kernels
# --------------------------------------------------------------------------------------------


@triton.jit
def _dot(a, b, acc, DOT_FP32: tl.constexpr, PRECISION: tl.constexpr):
    """``acc + a @ b`` with fp32 accumulation; operands upcast to fp32 under the interpreter."""
    if DOT_FP32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc, input_precision=PRECISION)


@triton.jit
def _attn_fwd_inner(
    acc,
    l_i,
    m_i,
    q,
    k_base,
    v_base,
    stride_kt,
    stride_vt,
    offs_m,
    offs_d,
    T,
    qk_scale,
    lo,
    hi,
    BLOCK_N: tl.constexpr,
    MASK: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Online-softmax sweep over key blocks ``[lo, hi)`` for one block of queries."""
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < T
        # K is loaded transposed, (hs, BLOCK_N), so the score tile is a plain q @ kT.
        kT = tl.load(
            k_base + offs_n[None, :] * stride_kt + offs_d[:, None], mask=mask_n[None, :], other=0.0
        )
        qk = _dot(q, kT, None, DOT_FP32, PRECISION)  # (BLOCK_M, BLOCK_N) fp32
        if MASK:
            keep = mask_n[None, :]
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= offs_n[None, :])
            qk = tl.where(keep, qk * qk_scale, float("-inf"))
        else:
            qk = qk * qk_scale
        m_ij = tl.maximum(m_i, tl.max(qk, 1))  # finite: every row keeps >= 1 key (see launcher)
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)  # rescales what was accumulated under the old max
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = tl.load(
            v_base + offs_n[:, None] * stride_vt + offs_d[None, :], mask=mask_n[:, None], other=0.0
        )
        acc = _dot(p.to(v.dtype), v, acc, DOT_FP32, PRECISION)
        m_i = m_ij
    return acc, l_i, m_i


@triton.jit
def _attn_fwd_kernel(
    Q,
    K,
    V,
    Out,
    LSE,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_ob,
    stride_oh,
    stride_ot,
    H,
    T,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program: BLOCK_M queries of one (batch, head). Grid: (cdiv(T, BLOCK_M), nh, B)."""
    # Causal: run the longest rows first.
    start_m = tl.num_programs(0) - 1 - tl.program_id(0) if CAUSAL else tl.program_id(0)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    q_base = Q + off_b * stride_qb + off_h * stride_qh
    k_base = K + off_b * stride_kb + off_h * stride_kh
    v_base = V + off_b * stride_vb + off_h * stride_vh
    o_base = Out + off_b * stride_ob + off_h * stride_oh
    lse_base = LSE + (off_b * H + off_h) * T

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    mask_m = offs_m < T
    q = tl.load(
        q_base + offs_m[:, None] * stride_qt + offs_d[None, :], mask=mask_m[:, None], other=0.0
    )  # (BLOCK_M, hs), stays in registers for the whole sweep

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running max (base-2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running sum of exp2(s - m)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        # Stage 1: key blocks fully below the diagonal -- no mask at all.
        acc, l_i, m_i = _attn_fwd_inner(
            acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, T, qk_scale,
            0, start_m * BLOCK_M,
            BLOCK_N, False, CAUSAL, DOT_FP32, PRECISION,
        )  # fmt: skip
        # Stage 2: the diagonal block(s), causal mask plus the sequence tail.
        acc, l_i, m_i = _attn_fwd_inner(
            acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, T, qk_scale,
            start_m * BLOCK_M, tl.minimum((start_m + 1) * BLOCK_M, T),
            BLOCK_N, True, CAUSAL, DOT_FP32, PRECISION,
        )  # fmt: skip
    else:
        t_full = (T // BLOCK_N) * BLOCK_N
        acc, l_i, m_i = _attn_fwd_inner(
            acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, T, qk_scale,
            0, t_full,
            BLOCK_N, False, CAUSAL, DOT_FP32, PRECISION,
        )  # fmt: skip
        acc, l_i, m_i = _attn_fwd_inner(
            acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, T, qk_scale,
            t_full, T,
            BLOCK_N, True, CAUSAL, DOT_FP32, PRECISION,
        )  # fmt: skip

    acc = acc / l_i[:, None]
    tl.store(lse_base + offs_m, m_i + tl.math.log2(l_i), mask=mask_m)
    tl.store(
        o_base + offs_m[:, None] * stride_ot + offs_d[None, :],
        acc.to(Out.dtype.element_ty),
        mask=mask_m[:, None],
    )


@triton.jit
def _attn_bwd_preprocess_kernel(
    Out,
    DO,
    DELTA,
    stride_ob,
    stride_oh,
    stride_ot,
    stride_dob,
    stride_doh,
    stride_dot,
    H,
    T,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """``delta[i] = sum_d O[i, d] * dO[i, d]`` in fp32 -- the ``rowsum(P * dP)`` of softmax."""
    start_m = tl.program_id(0)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    mask_m = offs_m < T
    o = tl.load(
        Out + off_b * stride_ob + off_h * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :],
        mask=mask_m[:, None],
        other=0.0,
    ).to(tl.float32)
    do = tl.load(
        DO
        + off_b * stride_dob
        + off_h * stride_doh
        + offs_m[:, None] * stride_dot
        + offs_d[None, :],
        mask=mask_m[:, None],
        other=0.0,
    ).to(tl.float32)
    tl.store(DELTA + (off_b * H + off_h) * T + offs_m, tl.sum(o * do, 1), mask=mask_m)


@triton.jit
def _attn_bwd_dkdv_inner(
    dk,
    dv,
    k,
    v,
    q_base,
    do_base,
    lse_base,
    delta_base,
    stride_qt,
    stride_dot,
    offs_n,
    offs_d,
    T,
    qk_scale,
    lo,
    hi,
    BLOCK_M: tl.constexpr,
    MASK: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Accumulate dK, dV of one key block over query blocks ``[lo, hi)``; MASK: causal mask."""
    for start_m in range(lo, hi, BLOCK_M):
        start_m = tl.multiple_of(start_m, BLOCK_M)
        offs_m = start_m + tl.arange(0, BLOCK_M)
        mask_m = offs_m < T
        # Queries past T load as zeros (and lse = delta = 0): pT = 1 there, but both dV (x dO = 0)
        # and dK (x q = 0) receive exactly zero from them, so no tail mask is needed.
        q = tl.load(
            q_base + offs_m[:, None] * stride_qt + offs_d[None, :], mask=mask_m[:, None], other=0.0
        )
        lse = tl.load(lse_base + offs_m, mask=mask_m, other=0.0)
        qkT = _dot(k, tl.trans(q), None, DOT_FP32, PRECISION)  # (BLOCK_N, BLOCK_M)
        pT = tl.math.exp2(tl.minimum(qkT * qk_scale - lse[None, :], 0.0))  # P <= 1, see dQ
        if MASK:
            pT = tl.where(offs_m[None, :] >= offs_n[:, None], pT, 0.0)
        do = tl.load(
            do_base + offs_m[:, None] * stride_dot + offs_d[None, :],
            mask=mask_m[:, None],
            other=0.0,
        )
        dv = _dot(pT.to(do.dtype), do, dv, DOT_FP32, PRECISION)  # dV += P^T dO
        delta = tl.load(delta_base + offs_m, mask=mask_m, other=0.0)
        dpT = _dot(v, tl.trans(do), None, DOT_FP32, PRECISION)  # (dO V^T)^T
        dsT = pT * (dpT - delta[None, :])  # softmax backward: dS = P * (dP - delta)
        dk = _dot(dsT.to(q.dtype), q, dk, DOT_FP32, PRECISION)  # dK += dS^T Q (scale later)
    return dk, dv


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q,
    K,
    V,
    DO,
    DK,
    DV,
    LSE,
    DELTA,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_gb,
    stride_gh,
    stride_gt,
    H,
    T,
    sm_scale,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program: dK and dV for BLOCK_N keys of one (batch, head)."""
    start_n = tl.program_id(0)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    q_base = Q + off_b * stride_qb + off_h * stride_qh
    do_base = DO + off_b * stride_dob + off_h * stride_doh
    lse_base = LSE + (off_b * H + off_h) * T
    delta_base = DELTA + (off_b * H + off_h) * T

    offs_n = start_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    mask_n = offs_n < T
    k = tl.load(
        K + off_b * stride_kb + off_h * stride_kh + offs_n[:, None] * stride_kt + offs_d[None, :],
        mask=mask_n[:, None],
        other=0.0,
    )
    v = tl.load(
        V + off_b * stride_vb + off_h * stride_vh + offs_n[:, None] * stride_vt + offs_d[None, :],
        mask=mask_n[:, None],
        other=0.0,
    )
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        lo = start_n * BLOCK_N
        # Diagonal query blocks (masked), then every query block below them (unmasked).
        dk, dv = _attn_bwd_dkdv_inner(
            dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt, stride_dot,
            offs_n, offs_d, T, qk_scale,
            lo, tl.minimum(lo + BLOCK_N, T),
            BLOCK_M, True, DOT_FP32, PRECISION,
        )  # fmt: skip
        dk, dv = _attn_bwd_dkdv_inner(
            dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt, stride_dot,
            offs_n, offs_d, T, qk_scale,
            lo + BLOCK_N, T,
            BLOCK_M, False, DOT_FP32, PRECISION,
        )  # fmt: skip
    else:
        dk, dv = _attn_bwd_dkdv_inner(
            dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt, stride_dot,
            offs_n, offs_d, T, qk_scale,
            0, T,
            BLOCK_M, False, DOT_FP32, PRECISION,
        )  # fmt: skip

    g_offs = off_b * stride_gb + off_h * stride_gh + offs_n[:, None] * stride_gt + offs_d[None, :]
    tl.store(DV + g_offs, dv.to(DV.dtype.element_ty), mask=mask_n[:, None])
    tl.store(DK + g_offs, (dk * sm_scale).to(DK.dtype.element_ty), mask=mask_n[:, None])


@triton.jit
def _attn_bwd_dq_inner(
    dq,
    q,
    do,
    lse,
    delta,
    k_base,
    v_base,
    stride_kt,
    stride_vt,
    offs_m,
    offs_d,
    T,
    qk_scale,
    lo,
    hi,
    BLOCK_N: tl.constexpr,
    MASK: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Accumulate dQ of one query block over key blocks ``[lo, hi)``; MASK: causal mask."""
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < T
        kT = tl.load(
            k_base + offs_n[None, :] * stride_kt + offs_d[:, None], mask=mask_n[None, :], other=0.0
        )  # (hs, BLOCK_N)
        vT = tl.load(
            v_base + offs_n[None, :] * stride_vt + offs_d[:, None], mask=mask_n[None, :], other=0.0
        )
        qk = _dot(q, kT, None, DOT_FP32, PRECISION)
        # P = exp2(s - lse) <= 1 in exact arithmetic. The clamp keeps entries that are thrown
        # away -- keys after the query, zero-loaded keys past T, whose exp2(0 - lse) overflows
        # when every real score of the row is very negative -- finite, so no inf * 0 = NaN.
        p = tl.math.exp2(tl.minimum(qk * qk_scale - lse[:, None], 0.0))
        if MASK:
            p = tl.where(offs_m[:, None] >= offs_n[None, :], p, 0.0)
        dp = _dot(do, vT, None, DOT_FP32, PRECISION)  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])
        dq = _dot(ds.to(kT.dtype), tl.trans(kT), dq, DOT_FP32, PRECISION)  # dQ += dS K
    return dq


@triton.jit
def _attn_bwd_dq_kernel(
    Q,
    K,
    V,
    DO,
    DQ,
    LSE,
    DELTA,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_gb,
    stride_gh,
    stride_gt,
    H,
    T,
    sm_scale,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program: dQ for BLOCK_M queries of one (batch, head)."""
    # Causal: run the longest rows first.
    start_m = tl.num_programs(0) - 1 - tl.program_id(0) if CAUSAL else tl.program_id(0)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    k_base = K + off_b * stride_kb + off_h * stride_kh
    v_base = V + off_b * stride_vb + off_h * stride_vh

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    mask_m = offs_m < T
    q = tl.load(
        Q + off_b * stride_qb + off_h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :],
        mask=mask_m[:, None],
        other=0.0,
    )
    do = tl.load(
        DO
        + off_b * stride_dob
        + off_h * stride_doh
        + offs_m[:, None] * stride_dot
        + offs_d[None, :],
        mask=mask_m[:, None],
        other=0.0,
    )
    lse = tl.load(LSE + (off_b * H + off_h) * T + offs_m, mask=mask_m, other=0.0)
    delta = tl.load(DELTA + (off_b * H + off_h) * T + offs_m, mask=mask_m, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        dq = _attn_bwd_dq_inner(
            dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, T,
            qk_scale, 0, start_m * BLOCK_M,
            BLOCK_N, False, DOT_FP32, PRECISION,
        )  # fmt: skip
        dq = _attn_bwd_dq_inner(
            dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, T,
            qk_scale, start_m * BLOCK_M, tl.minimum((start_m + 1) * BLOCK_M, T),
            BLOCK_N, True, DOT_FP32, PRECISION,
        )  # fmt: skip
    else:
        # Keys past T load as zeros: their (finite, clamped) dS multiplies k = 0, adding nothing.
        dq = _attn_bwd_dq_inner(
            dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_vt, offs_m, offs_d, T,
            qk_scale, 0, T,
            BLOCK_N, False, DOT_FP32, PRECISION,
        )  # fmt: skip

    g_offs = off_b * stride_gb + off_h * stride_gh + offs_m[:, None] * stride_gt + offs_d[None, :]
    tl.store(DQ + g_offs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=mask_m[:, None])


# The autotuned entry points. With a single config (the interpreter) triton's Autotuner skips
# benchmarking, so the launchers below run the same code path on CPU and GPU.
_TUNE_KEY = ["T", "HEAD_DIM", "CAUSAL", "PRECISION"]  # the tensors' dtypes are added by triton
_attn_fwd = triton.autotune(
    FWD_CONFIGS, key=_TUNE_KEY, prune_configs_by={"early_config_prune": _pruner("fwd")}
)(_attn_fwd_kernel)
_attn_bwd_dkdv = triton.autotune(
    BWD_DKDV_CONFIGS,
    key=_TUNE_KEY,
    prune_configs_by={"early_config_prune": _pruner("dkdv")},
)(_attn_bwd_dkdv_kernel)
_attn_bwd_dq = triton.autotune(
    BWD_DQ_CONFIGS, key=_TUNE_KEY, prune_configs_by={"early_config_prune": _pruner("dq")}
)(_attn_bwd_dq_kernel)


# --------------------------------------------------------------------------------------------
# Layer 2: launchers
# --------------------------------------------------------------------------------------------


def unsupported_reason(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str | None:
    """Why the Triton kernel cannot run ``attention(q, k, v)``, or ``None`` when it can.

    Checks shapes, dtypes and devices only; whether a CUDA device (or the interpreter) is there
    is the caller's business (see :func:`runnable_on`).
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return f"q, k, v must be 4-D (B, nh, T, hs); got {q.dim()}-D, {k.dim()}-D, {v.dim()}-D"
    if q.shape != k.shape or q.shape != v.shape:
        return (
            f"q, k, v must have the same shape (self-attention, equal lengths); got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.dtype != k.dtype or q.dtype != v.dtype:
        return f"q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}"
    if q.dtype not in SUPPORTED_DTYPES:
        return f"dtype {q.dtype} is not supported (use float16, bfloat16 or float32)"
    if q.device != k.device or q.device != v.device:
        return f"q, k, v must be on one device; got {q.device}, {k.device}, {v.device}"
    head_dim = q.shape[-1]
    if head_dim not in SUPPORTED_HEAD_DIMS:
        return f"head dim {head_dim} is not supported (supported: {SUPPORTED_HEAD_DIMS})"
    if q.shape[2] == 0:
        return "sequence length is 0"
    if q.shape[0] > 65535 or q.shape[1] > 65535:
        return "batch and head counts must be <= 65535 (CUDA grid y/z limit)"
    return None


def runnable_on(device: torch.device) -> bool:
    """Whether the kernels can run on ``device``: a CUDA device, or any device when interpreting."""
    return INTERPRET or device.type == "cuda"


def _check_runnable(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    reason = unsupported_reason(q, k, v)
    if reason is not None:
        raise ValueError(f"codekiln.kernels.attention: {reason}")
    if not runnable_on(q.device):
        raise RuntimeError(
            f"codekiln.kernels.attention needs CUDA tensors, got tensors on {q.device}. "
            "To run the kernels on the CPU in Triton's interpreter (slow; for tests), set "
            "TRITON_INTERPRET=1 before codekiln.kernels is imported; otherwise use PyTorch "
            "(GPTConfig(attention='auto') or 'sdpa')."
        )


def _head_contiguous(x: torch.Tensor) -> torch.Tensor:
    # The kernels index the head dimension with unit stride; any other stride pattern is fine.
    return x if x.stride(-1) == 1 else x.contiguous()


def _dot_precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and not INTERPRET and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def _empty_bthd(like: torch.Tensor) -> torch.Tensor:
    # (B, T, nh, hs) memory viewed as (B, nh, T, hs): the model's merge of heads is then a view.
    B, H, T, D = like.shape
    return torch.empty((B, T, H, D), dtype=like.dtype, device=like.device).transpose(1, 2)


# FMA contraction on (``s * scale - m`` is one instruction). Passed explicitly because triton 3.9
# warns when it is left to the default (the default flips in 3.10), and pytest's
# ``filterwarnings = error`` turns that warning into a failure on CUDA machines.
_LAUNCH_OPTIONS: dict[str, Any] = {"enable_fp_fusion": True}


def _scale_or_default(scale: float | None, head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the forward kernel. Returns ``o`` (B, nh, T, hs) and ``lse2`` (B, nh, T) fp32.

    ``lse2`` is the base-2 log-sum-exp of the scaled scores (``log2 sum_j 2^(s_ij log2 e)``);
    the natural-log value is ``lse2 / log2(e)``.
    """
    _check_runnable(q, k, v)
    q, k, v = _head_contiguous(q), _head_contiguous(k), _head_contiguous(v)
    B, H, T, D = q.shape
    sm_scale = _scale_or_default(scale, D)
    o = _empty_bthd(q)
    lse = torch.empty((B, H, T), dtype=torch.float32, device=q.device)

    def grid(meta: dict[str, Any]) -> tuple[int, int, int]:
        return (triton.cdiv(T, meta["BLOCK_M"]), H, B)

    _attn_fwd[grid](
        q, k, v, o, lse,
        *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *o.stride()[:3],
        H, T, sm_scale * _LOG2E,
        HEAD_DIM=D, CAUSAL=bool(causal), DOT_FP32=INTERPRET, PRECISION=_dot_precision(q.dtype),
        **_LAUNCH_OPTIONS,
    )  # fmt: skip
    return o, lse


def attention_backward(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the backward kernels for ``o, lse = attention_forward(q, k, v, causal, scale)``.

    Returns ``dq, dk, dv`` with the shapes of ``q, k, v``.
    """
    _check_runnable(q, k, v)
    if do.shape != q.shape or o.shape != q.shape or lse.shape != q.shape[:3]:
        raise ValueError(
            f"attention_backward: shapes do not match q {tuple(q.shape)}: do {tuple(do.shape)}, "
            f"o {tuple(o.shape)}, lse {tuple(lse.shape)} (expected (B, nh, T))"
        )
    q, k, v = _head_contiguous(q), _head_contiguous(k), _head_contiguous(v)
    o, do = _head_contiguous(o), _head_contiguous(do.to(q.dtype))
    lse = lse.contiguous()
    B, H, T, D = q.shape
    sm_scale = _scale_or_default(scale, D)
    precision = _dot_precision(q.dtype)

    delta = torch.empty_like(lse)
    pre_block = 64 if not INTERPRET else 32
    _attn_bwd_preprocess_kernel[(triton.cdiv(T, pre_block), H, B)](
        o,
        do,
        delta,
        *o.stride()[:3],
        *do.stride()[:3],
        H,
        T,
        HEAD_DIM=D,
        BLOCK_M=pre_block,
        **_LAUNCH_OPTIONS,
    )

    dq, dk, dv = _empty_bthd(q), _empty_bthd(k), _empty_bthd(v)  # one layout: one set of strides
    strides = (*q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *do.stride()[:3])
    common = dict(
        HEAD_DIM=D, CAUSAL=bool(causal), DOT_FP32=INTERPRET, PRECISION=precision, **_LAUNCH_OPTIONS
    )

    def grid_n(meta: dict[str, Any]) -> tuple[int, int, int]:
        return (triton.cdiv(T, meta["BLOCK_N"]), H, B)

    def grid_m(meta: dict[str, Any]) -> tuple[int, int, int]:
        return (triton.cdiv(T, meta["BLOCK_M"]), H, B)

    _attn_bwd_dkdv[grid_n](
        q, k, v, do, dk, dv, lse, delta, *strides, *dk.stride()[:3],
        H, T, sm_scale, sm_scale * _LOG2E, **common,
    )  # fmt: skip
    _attn_bwd_dq[grid_m](
        q, k, v, do, dq, lse, delta, *strides, *dq.stride()[:3],
        H, T, sm_scale, sm_scale * _LOG2E, **common,
    )  # fmt: skip
    return dq, dk, dv


# --------------------------------------------------------------------------------------------
# Layer 3: autograd and the public function
# --------------------------------------------------------------------------------------------


class FlashAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: saves ``q, k, v, o`` and the log-sum-exp, recomputes ``P`` backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        scale: float | None,
    ) -> torch.Tensor:
        o, lse = attention_forward(q, k, v, causal, scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal = causal
        ctx.scale = scale
        return o

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(do, q, k, v, o, lse, ctx.causal, ctx.scale)
        return dq, dk, dv, None, None


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention ``softmax(q k^T * scale [+ causal mask]) v``, fused.

    Args:
        q, k, v: ``(B, nh, T, hs)`` tensors of one dtype (float16, bfloat16 or float32) with
            ``hs`` in ``{16, 32, 64, 128}`` and a contiguous last dimension; CUDA tensors, or CPU
            tensors when ``TRITON_INTERPRET=1`` was set before import.
        causal: mask out keys after each query (GPT decoding).
        scale: softmax scale; default ``1 / sqrt(hs)``.

    Returns:
        ``(B, nh, T, hs)`` in the input dtype, differentiable with respect to ``q, k, v``.

    >>> import torch, codekiln.kernels as K  # doctest: +SKIP
    >>> q = k = v = torch.randn(2, 4, 256, 64, device="cuda", dtype=torch.bfloat16)  # doctest: +SKIP
    >>> K.attention(q, k, v).shape  # doctest: +SKIP
    torch.Size([2, 4, 256, 64])
    """
    return FlashAttentionFunction.apply(q, k, v, causal, scale)
