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
def _tile(
    base,
    start,
    stride_t,
    BLOCK: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    TRANS: tl.constexpr,
    LONG: tl.constexpr,
):
    """Pointers to rows ``start .. start + BLOCK`` of one (T, hs) head: (BLOCK, hs), or
    (hs, BLOCK) when ``TRANS``.

    ``LONG`` (the launcher sets it when ``T * stride`` can pass 2^31): the block's first row is
    offset in int64, rows within the block in int32 (the launcher keeps ``stride_t < 2^23``).
    Otherwise all in int32, as one expression per iteration: measured on sm_90, the ``LONG``
    form at head dim 128 lets the compiler hoist the in-block offsets out of the key loop, and
    the forward's 128x128 tile went from 250 registers to 255 and 120 bytes of spills."""
    cols = tl.arange(0, HEAD_DIM)
    if LONG:
        base = base + tl.cast(start, tl.int64) * stride_t
        rows = tl.arange(0, BLOCK)
    else:
        rows = start + tl.arange(0, BLOCK)
    if TRANS:
        return base + rows[None, :] * stride_t + cols[:, None]
    else:
        return base + rows[:, None] * stride_t + cols[None, :]


@triton.jit
def _head(base, stride_t, T, BLOCK: tl.constexpr, HEAD_DIM: tl.constexpr, TMA: tl.constexpr):
    """One (T, hs) head as the loops address it: with ``TMA`` a tensor descriptor of
    (BLOCK, hs) tiles (on sm_90 loads and stores become ``cp.async.bulk.tensor``; rows past T
    load as zeros and are not stored, so no mask), otherwise the base pointer itself."""
    if TMA:
        return tl.make_tensor_descriptor(
            base, shape=[T, HEAD_DIM], strides=[stride_t, 1], block_shape=[BLOCK, HEAD_DIM]
        )
    else:
        return base


@triton.jit
def _load_rows(
    src,
    start,
    stride_t,
    T,
    BLOCK: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    TRANS: tl.constexpr,
    LONG: tl.constexpr,
    TMA: tl.constexpr,
):
    """Rows ``start .. start + BLOCK`` of a head from :func:`_head` (zeros past T): (BLOCK, hs),
    or (hs, BLOCK) when ``TRANS``."""
    if TMA:
        x = src.load([start, 0])
        if TRANS:
            x = tl.trans(x)
        return x
    else:
        in_t = (start + tl.arange(0, BLOCK)) < T
        mask = in_t[None, :] if TRANS else in_t[:, None]
        return tl.load(
            _tile(src, start, stride_t, BLOCK, HEAD_DIM, TRANS, LONG), mask=mask, other=0.0
        )


@triton.jit
def _store_rows(
    dst,
    start,
    stride_t,
    T,
    value,
    BLOCK: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    LONG: tl.constexpr,
    TMA: tl.constexpr,
):
    """Store ``value`` (BLOCK, hs) to rows ``start ..`` of a head from :func:`_head`; rows past
    T are dropped."""
    if TMA:
        dst.store([start, 0], value)
    else:
        in_t = (start + tl.arange(0, BLOCK)) < T
        tl.store(
            _tile(dst, start, stride_t, BLOCK, HEAD_DIM, False, LONG), value, mask=in_t[:, None]
        )


@triton.jit
def _attn_fwd_inner(
    acc,
    l_i,
    m_i,
    q,
    k_src,
    v_src,
    stride_kt,
    stride_vt,
    offs_m,
    T,
    qk_scale,
    lo,
    hi,
    HEAD_DIM: tl.constexpr,
    LONG: tl.constexpr,
    TMA: tl.constexpr,
    BLOCK_N: tl.constexpr,
    MASK: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Online-softmax sweep over key blocks ``[lo, hi)`` for one block of queries.

    ``MASK``: the blocks on the diagonal or at the sequence tail (causal mask, keys past T).
    Unmasked blocks take the row max of the raw scores and apply scale and max in one FMA,
    ``s * scale - m`` (``qk_scale > 0``, checked by the launcher)."""
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        # K is loaded transposed, (hs, BLOCK_N), so the score tile is a plain q @ kT.
        kT = _load_rows(k_src, start_n, stride_kt, T, BLOCK_N, HEAD_DIM, True, LONG, TMA)
        qk = _dot(q, kT, None, DOT_FP32, PRECISION)  # (BLOCK_M, BLOCK_N) fp32
        if MASK:
            keep = (offs_n < T)[None, :]
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= offs_n[None, :])
            qk = tl.where(keep, qk * qk_scale, float("-inf"))
            m_ij = tl.maximum(m_i, tl.max(qk, 1))  # finite: every row keeps >= 1 key
            qk = qk - m_ij[:, None]
        else:
            m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
            qk = qk * qk_scale - m_ij[:, None]  # one FMA per score
        p = tl.math.exp2(qk)
        alpha = tl.math.exp2(m_i - m_ij)  # rescales what was accumulated under the old max
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = _load_rows(v_src, start_n, stride_vt, T, BLOCK_N, HEAD_DIM, False, LONG, TMA)
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
    T_BUCKET,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    LONG: tl.constexpr,
    TMA: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program: BLOCK_M queries of one (batch, head). Grid: (cdiv(T, BLOCK_M), nh, B).

    ``T_BUCKET`` (T rounded up to a power of two) is unused here: it is the autotuning key.
    ``TMA``: Q, K, V and O through tensor descriptors (:func:`_head`) instead of pointers."""
    # Causal: run the longest rows first.
    start_m = tl.num_programs(0) - 1 - tl.program_id(0) if CAUSAL else tl.program_id(0)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    q_src = _head(Q + off_b * stride_qb + off_h * stride_qh, stride_qt, T, BLOCK_M, HEAD_DIM, TMA)
    k_src = _head(K + off_b * stride_kb + off_h * stride_kh, stride_kt, T, BLOCK_N, HEAD_DIM, TMA)
    v_src = _head(V + off_b * stride_vb + off_h * stride_vh, stride_vt, T, BLOCK_N, HEAD_DIM, TMA)
    o_dst = _head(Out + off_b * stride_ob + off_h * stride_oh, stride_ot, T, BLOCK_M, HEAD_DIM, TMA)
    lse_base = LSE + (off_b * H + off_h) * T

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < T
    # (BLOCK_M, hs), stays in registers for the whole sweep
    q = _load_rows(q_src, start_m * BLOCK_M, stride_qt, T, BLOCK_M, HEAD_DIM, False, LONG, TMA)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running max (base-2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running sum of exp2(s - m)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        # Stage 1: key blocks fully below the diagonal -- no mask at all.
        acc, l_i, m_i = _attn_fwd_inner(
            acc, l_i, m_i, q, k_src, v_src, stride_kt, stride_vt, offs_m, T, qk_scale,
            0, start_m * BLOCK_M,
            HEAD_DIM, LONG, TMA, BLOCK_N, False, CAUSAL, DOT_FP32, PRECISION,
        )  # fmt: skip
        # Stage 2: the diagonal block(s), causal mask plus the sequence tail.
        acc, l_i, m_i = _attn_fwd_inner(
            acc, l_i, m_i, q, k_src, v_src, stride_kt, stride_vt, offs_m, T, qk_scale,
            start_m * BLOCK_M, tl.minimum((start_m + 1) * BLOCK_M, T),
            HEAD_DIM, LONG, TMA, BLOCK_N, True, CAUSAL, DOT_FP32, PRECISION,
        )  # fmt: skip
    else:
        t_full = (T // BLOCK_N) * BLOCK_N
        acc, l_i, m_i = _attn_fwd_inner(
            acc, l_i, m_i, q, k_src, v_src, stride_kt, stride_vt, offs_m, T, qk_scale,
            0, t_full,
            HEAD_DIM, LONG, TMA, BLOCK_N, False, CAUSAL, DOT_FP32, PRECISION,
        )  # fmt: skip
        acc, l_i, m_i = _attn_fwd_inner(
            acc, l_i, m_i, q, k_src, v_src, stride_kt, stride_vt, offs_m, T, qk_scale,
            t_full, T,
            HEAD_DIM, LONG, TMA, BLOCK_N, True, CAUSAL, DOT_FP32, PRECISION,
        )  # fmt: skip

    acc = acc / l_i[:, None]
    tl.store(lse_base + offs_m, m_i + tl.math.log2(l_i), mask=mask_m)
    _store_rows(o_dst, start_m * BLOCK_M, stride_ot, T, acc.to(Out.dtype.element_ty),
                BLOCK_M, HEAD_DIM, LONG, TMA)  # fmt: skip


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
    LONG: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """``delta[i] = sum_d O[i, d] * dO[i, d]`` in fp32 -- the ``rowsum(P * dP)`` of softmax."""
    start_m = tl.program_id(0)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < T
    o = tl.load(
        _tile(Out + off_b * stride_ob + off_h * stride_oh, start_m * BLOCK_M, stride_ot,
              BLOCK_M, HEAD_DIM, False, LONG),
        mask=mask_m[:, None],
        other=0.0,
    ).to(tl.float32)  # fmt: skip
    do = tl.load(
        _tile(DO + off_b * stride_dob + off_h * stride_doh, start_m * BLOCK_M, stride_dot,
              BLOCK_M, HEAD_DIM, False, LONG),
        mask=mask_m[:, None],
        other=0.0,
    ).to(tl.float32)  # fmt: skip
    tl.store(DELTA + (off_b * H + off_h) * T + offs_m, tl.sum(o * do, 1), mask=mask_m)


@triton.jit
def _attn_bwd_dkdv_inner(
    dk,
    dv,
    k,
    v,
    q_src,
    do_src,
    dq_base,
    lse_base,
    delta_base,
    stride_qt,
    stride_dot,
    stride_dqt,
    offs_n,
    T,
    qk_scale,
    lo,
    hi,
    HEAD_DIM: tl.constexpr,
    LONG: tl.constexpr,
    TMA: tl.constexpr,
    BLOCK_M: tl.constexpr,
    MASK: tl.constexpr,
    KEY_TAIL: tl.constexpr,
    FUSED_DQ: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Accumulate dK, dV of one key block over query blocks ``[lo, hi)``; MASK: causal mask.

    ``FUSED_DQ``: also add this key block's share of dQ (``dS k``, unscaled, fp32) to
    ``dq_base`` with atomics -- the single-pass backward. ``KEY_TAIL``: the key block runs past
    T (its zero keys' P is clamped)."""
    for start_m in range(lo, hi, BLOCK_M):
        start_m = tl.multiple_of(start_m, BLOCK_M)
        offs_m = start_m + tl.arange(0, BLOCK_M)
        mask_m = offs_m < T
        # Queries past T load as zeros (and lse = delta = 0): pT = 1 there, but both dV (x dO = 0)
        # and dK (x q = 0) receive exactly zero from them, so no tail mask is needed.
        q = _load_rows(q_src, start_m, stride_qt, T, BLOCK_M, HEAD_DIM, False, LONG, TMA)
        lse = tl.load(lse_base + offs_m, mask=mask_m, other=0.0)
        qkT = _dot(k, tl.trans(q), None, DOT_FP32, PRECISION)  # (BLOCK_N, BLOCK_M)
        # Unmasked blocks hold real scores only, s - lse <= 0: no clamp. In the boundary blocks
        # the discarded entries (keys after the query, zero keys past T) can overflow exp2; the
        # clamp keeps them finite, so they meet no inf * 0 (a zero key adds dS * 0 to dQ).
        if MASK or KEY_TAIL:
            pT = tl.math.exp2(tl.minimum(qkT * qk_scale - lse[None, :], 0.0))
        else:
            pT = tl.math.exp2(qkT * qk_scale - lse[None, :])
        if MASK:
            pT = tl.where(offs_m[None, :] >= offs_n[:, None], pT, 0.0)
        do = _load_rows(do_src, start_m, stride_dot, T, BLOCK_M, HEAD_DIM, False, LONG, TMA)
        dv = _dot(pT.to(do.dtype), do, dv, DOT_FP32, PRECISION)  # dV += P^T dO
        delta = tl.load(delta_base + offs_m, mask=mask_m, other=0.0)
        dpT = _dot(v, tl.trans(do), None, DOT_FP32, PRECISION)  # (dO V^T)^T
        dsT = (pT * (dpT - delta[None, :])).to(q.dtype)  # softmax backward: dS = P * (dP - delta)
        dk = _dot(dsT, q, dk, DOT_FP32, PRECISION)  # dK += dS^T Q (scale later)
        if FUSED_DQ:
            # Pointer atomics in both variants: a descriptor's reduce-add (TMA) has no
            # interpreter implementation in triton 3.9, so it could not be tested here.
            dq = _dot(tl.trans(dsT), k, None, DOT_FP32, PRECISION)  # (BLOCK_M, hs): dS K
            tl.atomic_add(
                _tile(dq_base, start_m, stride_dqt, BLOCK_M, HEAD_DIM, False, LONG),
                dq,
                mask=mask_m[:, None],
                sem="relaxed",
            )
    return dk, dv


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q,
    K,
    V,
    DO,
    DK,
    DV,
    DQ_ACC,
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
    stride_ab,
    stride_ah,
    stride_at,
    H,
    T,
    T_BUCKET,
    sm_scale,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    LONG: tl.constexpr,
    TMA: tl.constexpr,
    CAUSAL: tl.constexpr,
    FUSED_DQ: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program: dK and dV for BLOCK_N keys of one (batch, head); with ``FUSED_DQ`` also
    this block's share of dQ, atomically added to the fp32 ``DQ_ACC`` (unscaled). ``TMA``:
    Q, K, V, dO, dK and dV through tensor descriptors (``DQ_ACC`` keeps pointer atomics)."""
    start_n = tl.program_id(0)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    q_src = _head(Q + off_b * stride_qb + off_h * stride_qh, stride_qt, T, BLOCK_M, HEAD_DIM, TMA)
    do_src = _head(DO + off_b * stride_dob + off_h * stride_doh, stride_dot, T, BLOCK_M,
                   HEAD_DIM, TMA)  # fmt: skip
    dq_base = DQ_ACC + off_b * stride_ab + off_h * stride_ah
    lse_base = LSE + (off_b * H + off_h) * T
    delta_base = DELTA + (off_b * H + off_h) * T

    offs_n = start_n * BLOCK_N + tl.arange(0, BLOCK_N)
    k = _load_rows(
        _head(K + off_b * stride_kb + off_h * stride_kh, stride_kt, T, BLOCK_N, HEAD_DIM, TMA),
        start_n * BLOCK_N, stride_kt, T, BLOCK_N, HEAD_DIM, False, LONG, TMA,
    )  # fmt: skip
    v = _load_rows(
        _head(V + off_b * stride_vb + off_h * stride_vh, stride_vt, T, BLOCK_N, HEAD_DIM, TMA),
        start_n * BLOCK_N, stride_vt, T, BLOCK_N, HEAD_DIM, False, LONG, TMA,
    )  # fmt: skip
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        lo = start_n * BLOCK_N
        # Diagonal query blocks (masked), then every query block below them (unmasked). Keys
        # past T are masked for every real query by the causal mask itself.
        dk, dv = _attn_bwd_dkdv_inner(
            dk, dv, k, v, q_src, do_src, dq_base, lse_base, delta_base,
            stride_qt, stride_dot, stride_at, offs_n, T, qk_scale,
            lo, tl.minimum(lo + BLOCK_N, T),
            HEAD_DIM, LONG, TMA, BLOCK_M, True, False, FUSED_DQ, DOT_FP32, PRECISION,
        )  # fmt: skip
        dk, dv = _attn_bwd_dkdv_inner(
            dk, dv, k, v, q_src, do_src, dq_base, lse_base, delta_base,
            stride_qt, stride_dot, stride_at, offs_n, T, qk_scale,
            lo + BLOCK_N, T,
            HEAD_DIM, LONG, TMA, BLOCK_M, False, False, FUSED_DQ, DOT_FP32, PRECISION,
        )  # fmt: skip
    elif (start_n + 1) * BLOCK_N > T:
        # The last key block runs past T: its zero-loaded keys get P = exp2(-lse), which
        # overflows for rows of very negative scores; dK/dV rows past T are never stored, but
        # in the single pass their dS reaches dQ (inf * 0 = NaN), so P is clamped here.
        dk, dv = _attn_bwd_dkdv_inner(
            dk, dv, k, v, q_src, do_src, dq_base, lse_base, delta_base,
            stride_qt, stride_dot, stride_at, offs_n, T, qk_scale,
            0, T,
            HEAD_DIM, LONG, TMA, BLOCK_M, False, True, FUSED_DQ, DOT_FP32, PRECISION,
        )  # fmt: skip
    else:
        dk, dv = _attn_bwd_dkdv_inner(
            dk, dv, k, v, q_src, do_src, dq_base, lse_base, delta_base,
            stride_qt, stride_dot, stride_at, offs_n, T, qk_scale,
            0, T,
            HEAD_DIM, LONG, TMA, BLOCK_M, False, False, FUSED_DQ, DOT_FP32, PRECISION,
        )  # fmt: skip

    g_off = off_b * stride_gb + off_h * stride_gh
    _store_rows(_head(DV + g_off, stride_gt, T, BLOCK_N, HEAD_DIM, TMA), start_n * BLOCK_N,
                stride_gt, T, dv.to(DV.dtype.element_ty), BLOCK_N, HEAD_DIM, LONG, TMA)  # fmt: skip
    _store_rows(_head(DK + g_off, stride_gt, T, BLOCK_N, HEAD_DIM, TMA), start_n * BLOCK_N,
                stride_gt, T, (dk * sm_scale).to(DK.dtype.element_ty), BLOCK_N, HEAD_DIM, LONG,
                TMA)  # fmt: skip


@triton.jit
def _attn_bwd_dq_inner(
    dq,
    q,
    do,
    lse,
    delta,
    k_src,
    v_src,
    stride_kt,
    stride_vt,
    offs_m,
    T,
    qk_scale,
    lo,
    hi,
    HEAD_DIM: tl.constexpr,
    LONG: tl.constexpr,
    TMA: tl.constexpr,
    BLOCK_N: tl.constexpr,
    MASK: tl.constexpr,
    KEY_TAIL: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Accumulate dQ of one query block over key blocks ``[lo, hi)``; MASK: causal mask,
    KEY_TAIL: the block runs past T (non-causal tail block; P clamped)."""
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kT = _load_rows(k_src, start_n, stride_kt, T, BLOCK_N, HEAD_DIM, True, LONG, TMA)
        vT = _load_rows(v_src, start_n, stride_vt, T, BLOCK_N, HEAD_DIM, True, LONG, TMA)
        qk = _dot(q, kT, None, DOT_FP32, PRECISION)
        # P = exp2(s - lse) <= 1 for every real score: no clamp in unmasked blocks. In the
        # boundary blocks, entries that are thrown away -- keys after the query, zero-loaded
        # keys past T whose exp2(0 - lse) overflows when every real score of the row is very
        # negative -- are clamped finite, so no inf * 0 = NaN (a zero key adds dS * 0).
        if MASK or KEY_TAIL:
            p = tl.math.exp2(tl.minimum(qk * qk_scale - lse[:, None], 0.0))
        else:
            p = tl.math.exp2(qk * qk_scale - lse[:, None])
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
    T_BUCKET,
    sm_scale,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    LONG: tl.constexpr,
    TMA: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program: dQ for BLOCK_M queries of one (batch, head); ``TMA``: Q, K, V, dO and dQ
    through tensor descriptors."""
    # Causal: run the longest rows first.
    start_m = tl.num_programs(0) - 1 - tl.program_id(0) if CAUSAL else tl.program_id(0)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    k_src = _head(K + off_b * stride_kb + off_h * stride_kh, stride_kt, T, BLOCK_N, HEAD_DIM, TMA)
    v_src = _head(V + off_b * stride_vb + off_h * stride_vh, stride_vt, T, BLOCK_N, HEAD_DIM, TMA)

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < T
    q = _load_rows(
        _head(Q + off_b * stride_qb + off_h * stride_qh, stride_qt, T, BLOCK_M, HEAD_DIM, TMA),
        start_m * BLOCK_M, stride_qt, T, BLOCK_M, HEAD_DIM, False, LONG, TMA,
    )  # fmt: skip
    do = _load_rows(
        _head(DO + off_b * stride_dob + off_h * stride_doh, stride_dot, T, BLOCK_M, HEAD_DIM, TMA),
        start_m * BLOCK_M, stride_dot, T, BLOCK_M, HEAD_DIM, False, LONG, TMA,
    )  # fmt: skip
    lse = tl.load(LSE + (off_b * H + off_h) * T + offs_m, mask=mask_m, other=0.0)
    delta = tl.load(DELTA + (off_b * H + off_h) * T + offs_m, mask=mask_m, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        dq = _attn_bwd_dq_inner(
            dq, q, do, lse, delta, k_src, v_src, stride_kt, stride_vt, offs_m, T,
            qk_scale, 0, start_m * BLOCK_M,
            HEAD_DIM, LONG, TMA, BLOCK_N, False, False, DOT_FP32, PRECISION,
        )  # fmt: skip
        # Diagonal blocks: keys past T sit after every real query, so the causal mask drops them.
        dq = _attn_bwd_dq_inner(
            dq, q, do, lse, delta, k_src, v_src, stride_kt, stride_vt, offs_m, T,
            qk_scale, start_m * BLOCK_M, tl.minimum((start_m + 1) * BLOCK_M, T),
            HEAD_DIM, LONG, TMA, BLOCK_N, True, False, DOT_FP32, PRECISION,
        )  # fmt: skip
    else:
        t_full = (T // BLOCK_N) * BLOCK_N
        dq = _attn_bwd_dq_inner(
            dq, q, do, lse, delta, k_src, v_src, stride_kt, stride_vt, offs_m, T,
            qk_scale, 0, t_full,
            HEAD_DIM, LONG, TMA, BLOCK_N, False, False, DOT_FP32, PRECISION,
        )  # fmt: skip
        dq = _attn_bwd_dq_inner(
            dq, q, do, lse, delta, k_src, v_src, stride_kt, stride_vt, offs_m, T,
            qk_scale, t_full, T,
            HEAD_DIM, LONG, TMA, BLOCK_N, False, True, DOT_FP32, PRECISION,
        )  # fmt: skip

    dq_dst = _head(DQ + off_b * stride_gb + off_h * stride_gh, stride_gt, T, BLOCK_M, HEAD_DIM, TMA)
    _store_rows(dq_dst, start_m * BLOCK_M, stride_gt, T, (dq * sm_scale).to(DQ.dtype.element_ty),
                BLOCK_M, HEAD_DIM, LONG, TMA)  # fmt: skip
