"""Token ids in every form a user has them, checked once: the one input rule for ids.

Every :class:`~codekiln.Tokenizer` API that takes ids (``decode``, ``decode_bytes``,
``decode_batch``, ``token_bytes``, ``id_to_token``) goes through here. Accepted:

* a list, tuple or any iterable of integers, including numpy integer scalars, 0-d arrays and
  anything else with ``__index__`` (``bool`` is refused: ``True`` is not a token id);
* a 1-D numpy array of any integer dtype (``uint16``/``uint32`` shards, ``int64``, ...),
  checked and converted without making Python ints;
* a 1-D torch tensor of an integer dtype (on any device; it is copied to the CPU).

A 2-D array or tensor is a ``ValueError`` that points to ``decode_batch``; floats, strings and
bytes are a ``TypeError``; an id outside ``0 .. vocab_size - 1`` is a ``ValueError`` naming it.

>>> import numpy as np
>>> as_id_array([1, np.uint16(2)], 300).tolist()
[1, 2]
>>> as_id_array(np.array([7, 8], dtype=np.int8), 300).dtype
dtype('uint32')
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["as_id", "as_id_array", "is_2d"]


def _is_torch_tensor(value: object) -> bool:
    # Duck-typed so that decoding never imports torch.
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def is_2d(value: object) -> bool:
    """Whether ``value`` is an array or tensor with two dimensions (a batch of rows)."""
    return getattr(value, "ndim", None) == 2


def as_id(value: object, vocab_size: int, name: str = "id") -> int:
    """One token id as a Python int, checked against ``vocab_size``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        i = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if not 0 <= i < vocab_size:
        raise ValueError(f"unknown token id {i} (vocab_size is {vocab_size})")
    return i


def _check_array(arr: np.ndarray, vocab_size: int, name: str) -> np.ndarray:
    if arr.ndim != 1:
        hint = "; for a batch of sequences use decode_batch" if arr.ndim == 2 else ""
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(arr.shape)}{hint}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got an array of dtype {arr.dtype}")
    if arr.size:
        low, high = arr.min(), arr.max()
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"unknown token id {int(bad)} (vocab_size is {vocab_size})")
    return np.ascontiguousarray(arr, dtype=np.uint32)


def as_id_array(ids: Iterable[Any], vocab_size: int, name: str = "ids") -> np.ndarray:
    """``ids`` as a contiguous 1-D ``uint32`` numpy array, every id checked."""
    if isinstance(ids, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be a sequence of integers, not {type(ids).__name__}")
    if _is_torch_tensor(ids):
        t = ids.detach()  # type: ignore[attr-defined]
        if t.is_floating_point() or t.is_complex() or str(t.dtype) == "torch.bool":
            raise TypeError(f"{name} must hold integers, got a tensor of dtype {t.dtype}")
        if t.dim() != 1:
            hint = "; for a batch of sequences use decode_batch" if t.dim() == 2 else ""
            raise ValueError(f"{name} must be one-dimensional, got shape {tuple(t.shape)}{hint}")
        # numpy has no view of every torch integer dtype (uint32 needs torch >= 2.3), and
        # int64 holds every one of them.
        return _check_array(t.cpu().long().numpy(), vocab_size, name)
    if isinstance(ids, np.ndarray):
        return _check_array(ids, vocab_size, name)
    if not isinstance(ids, Iterable):
        raise TypeError(f"{name} must be a sequence of integers, not {type(ids).__name__}")
    out: list[int] = []
    for pos, value in enumerate(ids):
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name}[{pos}] must be an integer, not bool")
        try:
            out.append(operator.index(value))
        except TypeError:
            raise TypeError(
                f"{name}[{pos}] must be an integer, not {type(value).__name__} ({value!r})"
            ) from None
    if out:
        low, high = min(out), max(out)
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"unknown token id {bad} (vocab_size is {vocab_size})")
    return np.array(out, dtype=np.uint32)
