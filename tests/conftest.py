"""Shared pytest setup.

TRITON_INTERPRET must be set before any module that defines a ``@triton.jit`` kernel is
imported, so it is set here, at collection time, unless a CUDA device is present (then the
real kernels are tested).
"""

from __future__ import annotations

import os
import pathlib


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


if not _has_cuda():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

SHARED_CORPUS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def shared_corpus() -> pathlib.Path:
    """The ``../shared/corpus`` directory; tests that need it are skipped when it is absent."""
    if not (SHARED_CORPUS / "valid-00000.jsonl.gz").exists():
        pytest.skip(f"optional corpus not found at {SHARED_CORPUS}")
    return SHARED_CORPUS
