"""codekiln: train GPT models on source code from scratch.

The pieces, each importable on its own:

* :class:`codekiln.Tokenizer` -- byte-level BPE with a Rust core (train, encode, decode, export);
  the package :mod:`codekiln.tokenizer` also holds its statistics, interop and CLI;
* :mod:`codekiln.corpus` -- what an input is (paths, texts, records; the directory walk), one
  rule for the tokenizer, its statistics and the packer;
* :mod:`codekiln.data` -- cleaning, deduplication, the shard packer and shard reading;
* :mod:`codekiln.model` and :mod:`codekiln.kernels` -- the GPT model and its Triton attention;
* :mod:`codekiln.train` -- training (``codekiln train``), :mod:`codekiln.checkpoint` -- run
  directories, :func:`codekiln.load` and :mod:`codekiln.generate` -- completions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Tokenizer", "__version__", "load"]

if TYPE_CHECKING:
    from codekiln.generate import load
    from codekiln.tokenizer import Tokenizer


def __getattr__(name: str) -> Any:
    # Lazy so that `import codekiln` stays cheap (no torch, no extension load until needed).
    if name == "Tokenizer":
        from codekiln.tokenizer import Tokenizer

        return Tokenizer
    if name == "load":  # (model, tokenizer) of a training run; imports torch
        from codekiln.generate import load

        return load
    raise AttributeError(f"module 'codekiln' has no attribute {name!r}")
