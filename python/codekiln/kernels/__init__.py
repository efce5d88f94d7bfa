"""Triton GPU kernels used by :mod:`codekiln.model`.

Importing this package imports triton. ``TRITON_INTERPRET=1`` must be set *before* the import
to run the kernels on the CPU in Triton's interpreter (the test suite does this when there is no
CUDA device); :data:`INTERPRET` records what was in effect.

* :func:`attention` -- fused FlashAttention-2 style attention, forward and backward.
"""

from __future__ import annotations

try:
    import triton  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "codekiln.kernels needs triton (it ships with the CUDA builds of torch on Linux; "
        "otherwise `pip install triton`). Use GPTConfig(attention='sdpa') to run without it."
    ) from err

from codekiln.kernels.attention import (
    INTERPRET,
    SUPPORTED_DTYPES,
    SUPPORTED_HEAD_DIMS,
    FlashAttentionFunction,
    attention,
    attention_backward,
    attention_forward,
    length_bucket,
    runnable_on,
    tma_compatible,
    tma_supported,
    unsupported_reason,
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
