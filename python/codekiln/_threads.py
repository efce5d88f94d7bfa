"""One meaning of ``num_threads``, for every API and ``--threads`` flag.

* ``None`` (the default everywhere): the CPUs this process may use -- its CPU affinity
  (``os.sched_getaffinity``, which honours ``taskset`` and container CPU sets) where the
  platform has it, else ``os.cpu_count()``;
* ``N >= 1``: at most ``N`` cores busy, reading included (the Rust readers run on the same
  ``N`` threads as the counting, tokenizing and packing);
* values above the CPU count are capped to it (more threads than cores only add switching),
  and work on ``k`` items never uses more than ``k`` threads;
* ``0``, negative numbers and anything that is not an int are a ``ValueError`` naming the
  argument.

Results never depend on the thread count. The Rust core takes the resolved int; it has no
defaults of its own.

>>> resolve_threads(1)
1
>>> resolve_threads(10_000) == available_cpus()
True
>>> resolve_threads(8, work_items=3) <= 3
True
"""

from __future__ import annotations

import os

__all__ = ["THREADS_HELP", "available_cpus", "resolve_threads"]

THREADS_HELP = "cores busy, reading included (default: the CPUs this process may use)"
"""The help of every ``--threads`` flag."""


def available_cpus() -> int:
    """The number of CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:  # pragma: no cover - some sandboxes refuse the call
            pass
    return os.cpu_count() or 1


def resolve_threads(
    num_threads: object, name: str = "num_threads", *, work_items: int | None = None
) -> int:
    """``num_threads`` as the int the Rust core takes (see the module docstring); ``name`` is
    the argument named in the error, ``work_items`` the number of independent items (texts)
    when known, which also caps the result."""
    if num_threads is None:
        threads = available_cpus()
    elif isinstance(num_threads, bool) or not isinstance(num_threads, int):
        raise ValueError(
            f"{name} must be an int >= 1 or None (all CPUs this process may use), "
            f"not {type(num_threads).__name__} {num_threads!r}"
        )
    elif num_threads < 1:
        raise ValueError(
            f"{name} must be at least 1 (or None for all CPUs this process may use), "
            f"got {num_threads}"
        )
    else:
        threads = min(num_threads, available_cpus())
    if work_items is not None:
        threads = min(threads, max(1, work_items))
    return threads
