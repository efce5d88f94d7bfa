"""Fused causal / non-causal attention in Triton: the FlashAttention-2 algorithm.

Three layers in three files, as in Triton tutorial 06 and Liger-Kernel:

1. ``@triton.jit`` kernels in ``attention_kernels.py`` -- ``_attn_fwd_kernel`` (online softmax, saves the log-sum-exp),
   ``_attn_bwd_preprocess_kernel`` (``delta = rowsum(O * dO)``), ``_attn_bwd_dkdv_kernel`` (one
   program per key block, loops over query blocks) and ``_attn_bwd_dq_kernel`` (one program per
   query block, loops over key blocks);
2. launchers ``attention_forward`` / ``attention_backward`` (here) that check shapes, dtypes and
   strides and pick block sizes from ``attention_configs.py`` (autotuned on CUDA, one small fixed
   config under the interpreter);
3. ``FlashAttentionFunction`` (``torch.autograd.Function``) and the public :func:`attention`.

Shapes: ``q, k, v`` are ``(B, nh, T, hs)`` -- nanoGPT's layout after ``.transpose(1, 2)``.
Any strides are accepted as long as the last (head) dimension is contiguous, so the model passes
views of its fused ``c_attn`` output without a copy.

Decisions (see docs/model.md for the overview):

* Softmax runs in base 2: scores are multiplied by ``scale * log2(e)`` once and ``exp2`` is used
  throughout; the saved log-sum-exp is in base 2 too (``lse2 = m + log2(l)``). That is the
  tutorial's trick: in blocks without a mask the row max is taken on the raw scores and
  ``s * scale - m`` is one FMA per score (so ``scale`` must be positive; the launcher checks).
  Only the diagonal and tail blocks pay for a select, and no block pays for a clamp.
* Causal attention is split into two loops per program: blocks strictly below the diagonal run
  without any mask, only the diagonal blocks pay for the ``where``. This needs ``BLOCK_M`` to be
  a multiple of ``BLOCK_N`` (forward, dQ) and ``BLOCK_N`` a multiple of ``BLOCK_M`` (dK/dV); the
  config pruner enforces it (and prunes by measured occupancy: ``attention_configs.py``).
* Sequence tails: all loads are masked (``other=0``). In the forward a zero key would still
  take ``exp2(0 - m)`` of a softmax row, so the loops that can see a key past ``T`` mask the
  scores. In the backward a zero query past ``T`` adds ``P^T dO = 0`` and ``dS^T q = 0`` to dV
  and dK (no mask). A zero key past ``T`` gets ``P = exp2(-lse)``, which overflows to inf for a
  row of very negative scores: rows of dK/dV past ``T`` are never stored, but dQ would see
  ``inf * 0``, so boundary blocks (diagonal, ``KEY_TAIL``) recompute ``P`` as
  ``exp2(min(s - lse, 0))``. Unmasked blocks hold real scores only (``s - lse <= 0``): no clamp.
* Two backward passes, both exact:
  - ``deterministic=True`` (default): two kernels, dK/dV (one program per key block) and dQ (one
    program per query block). No atomics, bitwise reproducible, each kernel autotunes its own
    block shape; but P and dP are computed twice: 7 matmuls per tile pair.
  - ``deterministic=False``: the single pass of FlashAttention-2/3 -- the dK/dV kernel also
    adds ``dS k`` to an fp32 dQ buffer with atomics (5 matmuls per tile pair), then dQ is
    scaled and converted. The order of the atomic adds varies, so dQ's last bits may differ
    run to run. ``GPTConfig(attention="auto")`` measures both on the user's GPU and keeps the
    faster (the single pass only when ``torch.are_deterministic_algorithms_enabled()`` is off).
* Autotuning is keyed on the sequence length rounded up to a power of two (``T_BUCKET``), not
  on the exact length, so a new prompt length does not re-tune; on CUDA Triton's on-disk
  tuning cache is on (``cache_results``), so a new process does not re-tune either.
* Positions: when ``(T + 256) * stride_t`` of any operand reaches 2^31 (long sequences of a
  wide model) the launcher compiles the ``LONG`` variant, which offsets each block's first row
  in int64; offsets within a block stay int32, which needs ``stride_t < 2^23`` -- the launcher
  copies a tensor whose row stride is larger. Below that, offsets are int32 as before: the
  int64 form costs registers (see ``_tile``).
* TMA (``tma=True``; ``attention="auto"`` measures it on sm_90+): the same kernels with the
  ``TMA`` switch load and store Q, K, V, O, dO, dK, dV and dQ through tensor descriptors
  (``tl.make_tensor_descriptor``, one per head and program), which sm_90 lowers to
  ``cp.async.bulk.tensor``: rows past ``T`` load as zeros and stores past ``T`` are dropped by
  the hardware, so those loads and stores carry no mask (the scores' masks stay). The log-sum-exp
  and ``delta`` rows, the preprocess kernel and the single pass's dQ atomics stay on pointers
  (a descriptor's reduce-add has no interpreter implementation in triton 3.9, so it could not
  be tested). Descriptors need 16-byte aligned head bases and row strides and a unit last
  stride; the launcher checks every operand (:func:`tma_compatible`) and takes the pointer
  kernels otherwise, and on CUDA below sm_90. The descriptors live in global scratch memory,
  which triton asks for at launch: the launcher installs an allocator (torch bytes on the
  tensors' device) around its CUDA launches and restores the previous one after.
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
  memory back; the occupancy table the pruner reads (``attention_occupancy.py``) comes from it.
* fp32 inputs use TF32 tensor cores on CUDA when ``torch.backends.cuda.matmul.allow_tf32`` is
  set (``torch.set_float32_matmul_precision("high")``), full IEEE fp32 otherwise.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from typing import Any

import torch
import triton

from codekiln.kernels.attention_configs import (
    _LOG2E,
    BWD_DKDV_CONFIGS,
    BWD_DQ_CONFIGS,
    FWD_CONFIGS,
    INTERPRET,
    SUPPORTED_DTYPES,
    SUPPORTED_HEAD_DIMS,
    _pruner,
)
from codekiln.kernels.attention_kernels import (
    _attn_bwd_dkdv_kernel,
    _attn_bwd_dq_kernel,
    _attn_bwd_preprocess_kernel,
    _attn_fwd_kernel,
)

__all__ = [
    "INTERPRET",
    "SUPPORTED_DTYPES",
    "SUPPORTED_HEAD_DIMS",
    "FlashAttentionFunction",
    "attention",
    "attention_backward",
    "attention_forward",
    "length_bucket",
    "runnable_on",
    "tma_compatible",
    "tma_supported",
    "unsupported_reason",
]

# The autotuned entry points. With a single config (the interpreter) triton's Autotuner skips
# benchmarking, so the launchers below run the same code path on CPU and GPU.
# The key: T bucketed to a power of two, not T (the tensors' dtypes are added by triton); the
# variants (TMA, LONG) are keys too, so one never reuses the other's choice.
_TUNE_KEY = ["T_BUCKET", "HEAD_DIM", "CAUSAL", "PRECISION", "TMA", "LONG"]
_attn_fwd = triton.autotune(
    FWD_CONFIGS,
    key=_TUNE_KEY,
    prune_configs_by={"early_config_prune": _pruner("fwd")},
    cache_results=True,
)(_attn_fwd_kernel)
_attn_bwd_dkdv = triton.autotune(
    BWD_DKDV_CONFIGS,
    key=[*_TUNE_KEY, "FUSED_DQ"],
    prune_configs_by={"early_config_prune": _pruner("dkdv")},
    reset_to_zero=["DQ_ACC"],  # the single pass accumulates dQ: each timed run starts from 0
    cache_results=True,
)(_attn_bwd_dkdv_kernel)
_attn_bwd_dq = triton.autotune(
    BWD_DQ_CONFIGS,
    key=_TUNE_KEY,
    prune_configs_by={"early_config_prune": _pruner("dq")},
    cache_results=True,
)(_attn_bwd_dq_kernel)

#: Rows further apart than this are copied first: in-block offsets (``BLOCK * stride_t``) must
#: fit in int32 for blocks of up to 256 rows.
_MAX_ROW_STRIDE = 2**31 // 256


def _needs_long(T: int, *tensors: torch.Tensor) -> bool:
    """Whether a row offset ``(T + block) * stride_t`` of any of ``tensors`` (B, nh, T, hs) can
    pass int32: then the kernels offset each block's first row in int64 (``LONG``)."""
    return max((T + 256) * x.stride(2) for x in tensors) >= 2**31


def tma_supported(device: torch.device) -> bool:
    """Whether the TMA variant is a candidate on ``device``: a CUDA GPU of compute capability 9
    (Hopper) or newer, never the interpreter (tests ask for it explicitly with ``tma=True``)."""
    if INTERPRET or device.type != "cuda":
        return False
    return torch.cuda.get_device_capability(device)[0] >= 9


def tma_compatible(*tensors: torch.Tensor) -> bool:
    """Whether tensor descriptors can address every ``(B, nh, T, hs)`` operand in ``tensors``:
    unit stride in the head dimension, and the start of every head and every row on a 16-byte
    boundary (data pointer, batch, head and row strides; a stride of a size-1 dimension is
    never used; a broadcast one, stride 0, fails). A view that starts mid-row (``x[..., 1:33]``)
    or rows 72 bytes apart fail."""
    for x in tensors:
        size = x.element_size()
        if x.stride(-1) != 1 or x.data_ptr() % 16 != 0 or (x.shape[-1] * size) % 16 != 0:
            return False
        # A broadcast dimension (stride 0, e.g. the dO of ``o.sum().backward()``) is no
        # tensor-map stride either.
        if any(x.shape[d] > 1 and (x.stride(d) <= 0 or x.stride(d) * size % 16) for d in range(3)):
            return False
    return True


def _use_tma(requested: bool, *tensors: torch.Tensor) -> bool:
    """The launchers' choice: descriptors when asked for, the hardware (or the interpreter) has
    them, and every operand meets their constraints; pointers otherwise."""
    if not requested:
        return False
    device = tensors[0].device
    if not INTERPRET and not tma_supported(device):
        return False
    return tma_compatible(*tensors)


@contextlib.contextmanager
def _scratch_allocator(device: torch.device, tma: bool) -> Iterator[None]:
    """Around a CUDA launch of the TMA variant: give triton an allocator for the descriptors'
    global scratch (torch bytes on ``device``), then put the previous allocator back."""
    if not tma or device.type != "cuda":
        yield
        return
    from triton.runtime import _allocation

    def alloc(size: int, alignment: int, stream: int | None) -> torch.Tensor:
        return torch.empty(size, dtype=torch.int8, device=device)

    current = getattr(_allocation, "_allocator", None)  # triton 3.x: a ContextVar
    if not isinstance(current, contextvars.ContextVar):
        triton.set_allocator(alloc)  # a triton that keeps it elsewhere: set it, leave it set
        yield
        return
    token = current.set(alloc)
    try:
        yield
    finally:
        current.reset(token)


def length_bucket(T: int) -> int:
    """The autotuning bucket of a sequence length: ``T`` rounded up to a power of two."""
    return 1 << max(0, T - 1).bit_length()


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
    # The kernels index the head dimension with unit stride and rows within a block in int32;
    # any other stride pattern is fine.
    return x if x.stride(-1) == 1 and x.stride(2) < _MAX_ROW_STRIDE else x.contiguous()


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
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if not (math.isfinite(scale) and scale > 0):
        # The unmasked blocks take the row max before scaling: max(s) * scale == max(s * scale)
        # needs scale > 0.
        raise ValueError(f"codekiln.kernels.attention: scale must be finite and > 0, got {scale}")
    return float(scale)


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
    tma: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the forward kernel. Returns ``o`` (B, nh, T, hs) and ``lse2`` (B, nh, T) fp32.

    ``lse2`` is the base-2 log-sum-exp of the scaled scores (``log2 sum_j 2^(s_ij log2 e)``);
    the natural-log value is ``lse2 / log2(e)``. ``tma``: use the tensor-descriptor variant
    where it can run (see the module docstring), the pointer kernel elsewhere.
    """
    _check_runnable(q, k, v)
    q, k, v = _head_contiguous(q), _head_contiguous(k), _head_contiguous(v)
    B, H, T, D = q.shape
    sm_scale = _scale_or_default(scale, D)
    o = _empty_bthd(q)
    lse = torch.empty((B, H, T), dtype=torch.float32, device=q.device)
    long = _needs_long(T, q, k, v, o)
    use_tma = _use_tma(tma, q, k, v, o)

    def grid(meta: dict[str, Any]) -> tuple[int, int, int]:
        return (triton.cdiv(T, meta["BLOCK_M"]), H, B)

    with _scratch_allocator(q.device, use_tma):
        _attn_fwd[grid](
            q, k, v, o, lse,
            *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *o.stride()[:3],
            H, T, length_bucket(T), sm_scale * _LOG2E,
            HEAD_DIM=D, LONG=long, TMA=use_tma, CAUSAL=bool(causal), DOT_FP32=INTERPRET,
            PRECISION=_dot_precision(q.dtype), **_LAUNCH_OPTIONS,
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
    deterministic: bool = True,
    tma: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the backward kernels for ``o, lse = attention_forward(q, k, v, causal, scale)``.

    ``deterministic=True``: the two-kernel backward (no atomics); ``False``: the single pass
    with an fp32 dQ accumulated by atomics (see the module docstring). ``tma``: the
    tensor-descriptor variant where it can run, as in :func:`attention_forward`.
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
    dk, dv = _empty_bthd(k), _empty_bthd(v)  # one layout: one set of strides
    long = _needs_long(T, q, k, v, o, do, dk)  # dq and its fp32 buffer share dk's row stride
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
        LONG=long,
        BLOCK_M=pre_block,
        **_LAUNCH_OPTIONS,
    )

    strides = (*q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *do.stride()[:3])
    common = dict(
        HEAD_DIM=D, LONG=long, CAUSAL=bool(causal), DOT_FP32=INTERPRET, PRECISION=precision,
        **_LAUNCH_OPTIONS,
    )  # fmt: skip
    # dq is allocated like dk (same layout, dtype and alignment): checking dk covers it.
    use_tma = _use_tma(tma, q, k, v, do, dk, dv)
    bucket = length_bucket(T)

    def grid_n(meta: dict[str, Any]) -> tuple[int, int, int]:
        return (triton.cdiv(T, meta["BLOCK_N"]), H, B)

    def grid_m(meta: dict[str, Any]) -> tuple[int, int, int]:
        return (triton.cdiv(T, meta["BLOCK_M"]), H, B)

    if deterministic:
        dq = _empty_bthd(q)
        with _scratch_allocator(q.device, use_tma):
            # DQ_ACC is unused without FUSED_DQ: dk stands in for it.
            _attn_bwd_dkdv[grid_n](
                q, k, v, do, dk, dv, dk, lse, delta, *strides, *dk.stride()[:3], *dk.stride()[:3],
                H, T, bucket, sm_scale, sm_scale * _LOG2E, FUSED_DQ=False, TMA=use_tma, **common,
            )  # fmt: skip
            _attn_bwd_dq[grid_m](
                q, k, v, do, dq, lse, delta, *strides, *dq.stride()[:3],
                H, T, bucket, sm_scale, sm_scale * _LOG2E, TMA=use_tma, **common,
            )  # fmt: skip
        return dq, dk, dv
    dq_acc = torch.zeros((B, T, H, D), dtype=torch.float32, device=q.device).transpose(1, 2)
    with _scratch_allocator(q.device, use_tma):
        _attn_bwd_dkdv[grid_n](
            q, k, v, do, dk, dv, dq_acc, lse, delta, *strides, *dk.stride()[:3],
            *dq_acc.stride()[:3], H, T, bucket, sm_scale, sm_scale * _LOG2E, FUSED_DQ=True,
            TMA=use_tma, **common,
        )  # fmt: skip
    # (B, T, nh, hs) in, (B, T, nh, hs) out: .to keeps the strides, the merge of heads stays free.
    dq = dq_acc.mul_(sm_scale).to(q.dtype)
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
        deterministic: bool = True,
        tma: bool = False,
    ) -> torch.Tensor:
        o, lse = attention_forward(q, k, v, causal, scale, tma=tma)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal = causal
        ctx.scale = scale
        ctx.deterministic = deterministic
        ctx.tma = tma
        return o

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(
            do, q, k, v, o, lse, ctx.causal, ctx.scale, ctx.deterministic, ctx.tma
        )
        return dq, dk, dv, None, None, None, None


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
    deterministic: bool = True,
    tma: bool = False,
) -> torch.Tensor:
    """Scaled dot-product attention ``softmax(q k^T * scale [+ causal mask]) v``, fused.

    Args:
        q, k, v: ``(B, nh, T, hs)`` tensors of one dtype (float16, bfloat16 or float32) with
            ``hs`` in ``{16, 32, 64, 128}`` and a contiguous last dimension; CUDA tensors, or CPU
            tensors when ``TRITON_INTERPRET=1`` was set before import.
        causal: mask out keys after each query (GPT decoding).
        scale: softmax scale, > 0; default ``1 / sqrt(hs)``.
        deterministic: the backward pass: ``True`` -- two kernels, no atomics, bitwise
            reproducible; ``False`` -- one pass (5 matmuls per tile instead of 7) with dQ
            accumulated in fp32 by atomics, whose order (so dQ's last bits) may vary.
        tma: load and store through TMA tensor descriptors (sm_90+; the same results) where
            the GPU and the operands' alignment allow (:func:`tma_compatible`), the pointer
            kernels elsewhere. Off by default: ``attention="auto"`` measures whether it wins.

    Returns:
        ``(B, nh, T, hs)`` in the input dtype, differentiable with respect to ``q, k, v``.

    >>> import torch, codekiln.kernels as K  # doctest: +SKIP
    >>> q = k = v = torch.randn(2, 4, 256, 64, device="cuda", dtype=torch.bfloat16)  # doctest: +SKIP
    >>> K.attention(q, k, v).shape  # doctest: +SKIP
    torch.Size([2, 4, 256, 64])
    """
    return FlashAttentionFunction.apply(q, k, v, causal, scale, deterministic, tma)
