"""Evaluation of trained models: perplexity and bits per byte, HumanEval pass@k in a sandbox.

* :mod:`codekiln.evaluate.perplexity` -- loss, perplexity and bits per byte on packed shards
  or raw files (:func:`evaluate_packed`, :func:`evaluate_files`, :func:`bits_per_byte_on_files`);
* :mod:`codekiln.evaluate.humaneval` -- :func:`humaneval_problems`, :func:`pass_at_k`,
  :func:`evaluate_humaneval` / :func:`run_humaneval`;
* :mod:`codekiln.evaluate.sandbox` -- :func:`run_sandboxed`, the process sandbox that runs
  model-written code;
* :mod:`codekiln.evaluate.cli` -- ``codekiln eval perplexity|humaneval``.

Names are re-exported lazily: ``import codekiln.evaluate`` imports neither torch nor the
sandbox until one is used. Models are loaded through :mod:`codekiln.checkpoint`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "humaneval_problems": "humaneval",
    "pass_at_k": "humaneval",
    "evaluate_humaneval": "humaneval",
    "run_humaneval": "humaneval",
    "HumanEvalResult": "humaneval",
    "run_sandboxed": "sandbox",
    "run_many": "sandbox",
    "SandboxResult": "sandbox",
    "evaluate_packed": "perplexity",
    "evaluate_files": "perplexity",
    "bits_per_byte_on_files": "perplexity",
    "PerplexityResult": "perplexity",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"codekiln.evaluate.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'codekiln.evaluate' has no attribute {name!r}")
