"""The ``@triton.jit`` kernels of fused attention (FlashAttention-2); nothing else.

Launch them through :mod:`codekiln.kernels.attention`, which checks shapes, dtypes and strides,
picks block sizes (``attention_configs.py``) and wraps them in an autograd function; the design
decisions are listed in that module's docstring.
"""

from __future__ import annotations

import triton
import triton.language as tl


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
