"""Attention for the model: backend dispatch, the naive reference, and the KV cache.

The model (:mod:`codekiln.model`) calls :func:`attend`; which implementation runs is chosen
per call by :func:`resolve_backend`:

* ``"triton"`` -- the fused FlashAttention-2 kernel in :mod:`codekiln.kernels` (CUDA, or the
  Triton interpreter when ``TRITON_INTERPRET=1``);
* ``"sdpa"`` -- :func:`torch.nn.functional.scaled_dot_product_attention`;
* ``"naive"`` -- :func:`naive_attention`, explicit ``softmax(q k^T) v``, the readable reference
  (and the oracle the kernel tests compare with);
* ``"auto"`` -- on CUDA, the fastest of the implementations available for the call's GPU,
  dtype, head dim, mask and length bucket, measured once and remembered on disk
  (:mod:`codekiln.attention_auto`: this kernel with either backward, with pointer or (sm_90+)
  TMA descriptor loads, SDPA's flash, cuDNN and memory-efficient backends, FlashAttention-3
  when installed); ``"sdpa"`` on the CPU, with
  attention dropout, and for decoding against a KV cache (one query: memory-bound, SDPA).

Dispatch looks at the tensors' device (``q.is_cuda``), never at ``torch.cuda.is_available()``.
This module imports Triton only on first use (through :mod:`codekiln.kernels`), so a CPU-only
install without Triton works. :class:`KVCache` lives here too: it is what decoding feeds to
attention, and generation code uses it without touching the model's internals.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from functools import lru_cache
from types import ModuleType
from typing import Literal

import torch
from torch.nn import functional as F

from codekiln.attention_auto import AutoChooser, auto_key, candidate_names

__all__ = [
    "AUTO_CHOOSER",
    "AttentionBackend",
    "KVCache",
    "ResolvedBackend",
    "attend",
    "naive_attention",
    "resolve_backend",
    "run_candidate",
]

AttentionBackend = Literal["auto", "triton", "sdpa", "naive"]
#: What :func:`resolve_backend` returns: a backend, or one of ``"auto"``'s measured candidates.
ResolvedBackend = Literal[
    "triton", "sdpa", "naive", "triton-single-pass", "triton-tma", "triton-tma-single-pass",
    "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "flash-attn-3",
]  # fmt: skip

#: The process-wide chooser behind ``attention="auto"`` on CUDA.
AUTO_CHOOSER = AutoChooser()


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


def _sdpa_backends() -> dict[str, object]:
    from torch.nn.attention import SDPBackend

    return {
        "sdpa-flash": SDPBackend.FLASH_ATTENTION,
        "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
        "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
    }


@lru_cache(maxsize=1)
def _flash_attn_3() -> ModuleType | None:
    """FlashAttention-3's Hopper interface (``flash_attn_interface``), if installed."""
    try:
        return importlib.import_module("flash_attn_interface")
    except ImportError:
        return None


#: The kernel's candidates: name -> (deterministic backward, TMA descriptors).
_TRITON_VARIANTS = {
    "triton": (True, False),
    "triton-single-pass": (False, False),
    "triton-tma": (True, True),
    "triton-tma-single-pass": (False, True),
}


def run_candidate(
    name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool
) -> torch.Tensor:
    """Self-attention (``Tq == Tk``, no dropout) on one named implementation (see
    :mod:`codekiln.attention_auto`); ``(B, nh, T, hs)`` in and out."""
    if name in _TRITON_VARIANTS:
        kernels = _triton_or_raise(q, k, v)
        deterministic, tma = _TRITON_VARIANTS[name]
        return kernels.attention(q, k, v, causal=causal, deterministic=deterministic, tma=tma)
    if name in ("sdpa-flash", "sdpa-cudnn", "sdpa-efficient"):
        from torch.nn.attention import sdpa_kernel

        with sdpa_kernel(_sdpa_backends()[name]):  # type: ignore[arg-type]
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if name == "flash-attn-3":
        fa3 = _flash_attn_3()
        if fa3 is None:
            raise RuntimeError("flash-attn-3 needs the flash_attn_interface module (flash-attn)")
        # FlashAttention takes (B, T, nh, hs); some versions also return the log-sum-exp.
        out = fa3.flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                  causal=causal)  # fmt: skip
        out = out[0] if isinstance(out, tuple) else out
        return out.transpose(1, 2)
    raise ValueError(f"unknown attention implementation {name!r}")


#: (device, dtype, head dim, causal, length bucket, grad, deterministic, kernel ok) -> choice:
#: spares each later call the device queries and the string key (once per layer and step).
_AUTO_SEEN: dict[tuple[object, ...], str] = {}


def _auto_choice(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> str:
    """``attention="auto"`` on CUDA: the measured winner for this call's key."""
    kernels = _kernels()
    kernel_ok = kernels is not None and kernels.unsupported_reason(q, k, v) is None
    fallback = "triton" if kernel_ok else "sdpa"
    if torch.compiler.is_compiling() or torch.cuda.is_current_stream_capturing():
        return fallback  # no measuring while tracing or capturing a graph
    grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    deterministic = torch.are_deterministic_algorithms_enabled()
    T = q.size(-2)
    seen = (q.device, q.dtype, q.size(-1), causal, 1 << max(0, T - 1).bit_length(), grad,
            deterministic, kernel_ok, AUTO_CHOOSER)  # fmt: skip
    if seen in _AUTO_SEEN:
        return _AUTO_SEEN[seen]
    major, minor = torch.cuda.get_device_capability(q.device)
    names = candidate_names(
        kernel_ok=kernel_ok,
        single_pass_ok=not deterministic,
        sdpa_backends=tuple(_sdpa_backends()),
        fa3_ok=major == 9 and _flash_attn_3() is not None,
        tma_ok=kernel_ok and kernels is not None and kernels.tma_supported(q.device),
    )
    device = f"{torch.cuda.get_device_name(q.device)} sm_{major}{minor}"
    key = auto_key(device, q.dtype, q.size(-1), causal, T, grad, names)
    choice = AUTO_CHOOSER.cached(key)
    if choice is None:
        runners = {name: _measure_runner(name, q, causal, grad) for name in names}
        choice = AUTO_CHOOSER.choose(key, runners, fallback)
    _AUTO_SEEN[seen] = choice
    return choice


def _measure_runner(name: str, like: torch.Tensor, causal: bool, grad: bool) -> Callable[[], None]:
    """One forward (and backward) of ``name`` on fresh tensors shaped like ``like``."""

    def run() -> None:
        with torch.enable_grad() if grad else torch.no_grad():
            q, k, v = (
                torch.randn(like.shape, dtype=like.dtype, device=like.device, requires_grad=grad)
                for _ in range(3)
            )
            o = run_candidate(name, q, k, v, causal)
            if grad:
                o.backward(torch.ones_like(o))

    return run


def resolve_backend(
    backend: AttentionBackend,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float,
    causal: bool = True,
) -> ResolvedBackend:
    """The implementation that :func:`attend` will use for these tensors (raises for impossible
    asks). ``"auto"`` on CUDA may measure the candidates (once per key, see
    :mod:`codekiln.attention_auto`)."""
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
    return _auto_choice(q, k, v, causal)  # type: ignore[return-value]


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
    chosen = resolve_backend(backend, q, k, v, dropout_p, causal)
    if chosen == "naive":
        return naive_attention(q, k, v, causal=causal, dropout_p=dropout_p)
    if chosen != "sdpa":  # a kernel (only self-attention without dropout gets here)
        return run_candidate(chosen, q, k, v, causal)
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
