"""Attention for the model: backend dispatch, the naive reference, and the KV cache.

The model (:mod:`codekiln.model`) calls :func:`attend`; which implementation runs is chosen
per call by :func:`resolve_backend`:

* ``"triton"`` -- the fused FlashAttention-2 kernel in :mod:`codekiln.kernels` (CUDA, or the
  Triton interpreter when ``TRITON_INTERPRET=1``);
* ``"sdpa"`` -- :func:`torch.nn.functional.scaled_dot_product_attention`;
* ``"naive"`` -- :func:`naive_attention`, explicit ``softmax(q k^T) v``, the readable reference
  (and the oracle the kernel tests compare with);
* ``"auto"`` -- ``"triton"`` for CUDA tensors whose shape and dtype the kernel supports,
  ``"sdpa"`` otherwise (CPU, attention dropout, odd head sizes, decoding against a KV cache).

Dispatch looks at the tensors' device (``q.is_cuda``), never at ``torch.cuda.is_available()``.
This module imports Triton only on first use (through :mod:`codekiln.kernels`), so a CPU-only
install without Triton works. :class:`KVCache` lives here too: it is what decoding feeds to
attention, and generation code uses it without touching the model's internals.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import ModuleType
from typing import Literal

import torch
from torch.nn import functional as F

__all__ = [
    "AttentionBackend",
    "KVCache",
    "attend",
    "naive_attention",
    "resolve_backend",
]

AttentionBackend = Literal["auto", "triton", "sdpa", "naive"]


def _causal_mask(t_q: int, t_k: int, device: torch.device) -> torch.Tensor:
    # Query i sits at absolute position t_k - t_q + i (the cache holds the first t_k - t_q).
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def naive_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Reference attention: ``softmax(q k^T * scale + mask) v`` with the (T, T) matrix in memory.

    ``q`` is (B, nh, Tq, hs), ``k``/``v`` (B, nh, Tk, hs) with ``Tq <= Tk``; causal masking is
    aligned to the end (query i is at position ``Tk - Tq + i``), as in KV-cache decoding.
    """
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    att = (q @ k.transpose(-2, -1)) * scale  # (B, nh, Tq, Tk)
    if causal:
        att = att.masked_fill(~_causal_mask(q.size(-2), k.size(-2), q.device), float("-inf"))
    softmax_dtype = torch.promote_types(att.dtype, torch.float32)  # fp32 for half inputs
    att = F.softmax(att, dim=-1, dtype=softmax_dtype).to(q.dtype)
    if dropout_p > 0.0:
        att = F.dropout(att, p=dropout_p)
    return att @ v  # (B, nh, Tq, hs)


@lru_cache(maxsize=1)
def _kernels() -> ModuleType | None:
    """``codekiln.kernels`` if triton imports, else None (checked once)."""
    try:
        import codekiln.kernels as kernels
    except ImportError:
        return None
    return kernels


def _triton_or_raise(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> ModuleType:
    kernels = _kernels()
    if kernels is None:
        raise RuntimeError("attention='triton' needs triton installed; use 'auto' or 'sdpa'")
    if not kernels.runnable_on(q.device):
        raise RuntimeError(
            f"attention='triton' needs CUDA tensors, but the model runs on {q.device}. Use "
            "attention='auto' (falls back to PyTorch SDPA) or 'sdpa'; or set TRITON_INTERPRET=1 "
            "before importing codekiln to run the kernel in Triton's (slow) CPU interpreter."
        )
    reason = kernels.unsupported_reason(q, k, v)
    if reason is not None:
        raise ValueError(f"attention='triton' cannot run this layer: {reason}; use 'auto'")
    return kernels


def resolve_backend(
    backend: AttentionBackend, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float
) -> Literal["triton", "sdpa", "naive"]:
    """The backend that :func:`attend` will use for these tensors (raises for impossible asks)."""
    if backend in ("sdpa", "naive"):
        return backend
    # Queries continuing a KV cache (Tq < Tk) go to SDPA: the kernel is built for Tq == Tk, and
    # decoding one token at a time is memory-bound anyway.
    decoding = q.size(-2) != k.size(-2)
    if backend == "triton":
        if dropout_p > 0.0:
            raise ValueError(
                "attention='triton' has no attention dropout; set dropout=0.0, call model.eval(), "
                "or use attention='auto'/'sdpa'"
            )
        if decoding:
            return "sdpa"
        _triton_or_raise(q, k, v)
        return "triton"
    if backend != "auto":
        raise ValueError(f"unknown attention backend {backend!r}")
    if decoding or dropout_p > 0.0 or not q.is_cuda:
        return "sdpa"
    kernels = _kernels()
    if kernels is None or kernels.unsupported_reason(q, k, v) is not None:
        return "sdpa"
    return "triton"


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    backend: AttentionBackend = "auto",
    causal: bool = True,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Attention on the chosen backend. q: (B, nh, Tq, hs); k, v: (B, nh, Tk, hs); Tq <= Tk.

    When ``Tq < Tk`` (queries continuing a KV cache) causal masking is aligned to the end.
    """
    chosen = resolve_backend(backend, q, k, v, dropout_p)
    if chosen == "triton":
        return _kernels().attention(q, k, v, causal=causal)  # type: ignore[union-attr]
    if chosen == "naive":
        return naive_attention(q, k, v, causal=causal, dropout_p=dropout_p)
    t_q, t_k = q.size(-2), k.size(-2)
    if not causal or t_q == 1:  # one new token sees the whole cache: no mask at all
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if t_q == t_k:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    # SDPA's is_causal aligns the mask to the top-left corner; a cache needs bottom-right.
    mask = _causal_mask(t_q, t_k, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


class KVCache:
    """Keys and values of every layer for incremental decoding, preallocated to ``max_len``.

    Buffers are created on first use with the dtype and device of the keys (so autocast works);
    ``length`` counts the positions already stored. :meth:`GPT.forward` with ``cache=`` writes
    the new positions and advances ``length``; one cache serves one batch of equal-length rows.
    """

    def __init__(self, n_layer: int, max_len: int) -> None:
        self.n_layer = n_layer
        self.max_len = max_len
        self.length = 0
        self.k: list[torch.Tensor | None] = [None] * n_layer  # each (B, nh, max_len, hs)
        self.v: list[torch.Tensor | None] = [None] * n_layer

    def reset(self) -> None:
        """Forget the stored positions (buffers are kept for reuse)."""
        self.length = 0

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` (B, nh, T, hs) after the cached positions; return all keys and values."""
        start, end = self.length, self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(
                f"KV cache is full: {self.length} cached + {k.size(2)} new > max_len={self.max_len}"
                "; start a new cache (model.new_cache()) on the last block_size tokens"
            )
        stored = self.k[layer]
        if stored is not None and start > 0 and stored.shape[0] != k.size(0):
            # Reallocating here would drop the cached positions (and attend to uninitialised
            # memory: NaN logits), so a batch-size change mid-sequence is the caller's error.
            raise ValueError(
                f"KV cache holds {start} positions for a batch of {stored.shape[0]} rows, but "
                f"layer {layer} got keys for {k.size(0)} rows; decode with the batch size of the "
                "prefill, or reset() the cache (or take model.new_cache()) for a new batch"
            )
        if stored is None or stored.shape[0] != k.size(0):
            B, nh, _, hs = k.shape
            shape = (B, nh, self.max_len, hs)
            self.k[layer] = torch.empty(shape, dtype=k.dtype, device=k.device)
            self.v[layer] = torch.empty(shape, dtype=v.dtype, device=v.device)
        k_buf, v_buf = self.k[layer], self.v[layer]
        assert k_buf is not None and v_buf is not None
        k_buf[:, :, start:end] = k
        v_buf[:, :, start:end] = v
        return k_buf[:, :, :end], v_buf[:, :, :end]
