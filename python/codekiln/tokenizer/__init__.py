"""The byte-level BPE tokenizer for source code.

* :mod:`~codekiln.tokenizer.core` -- the :class:`Tokenizer` class (encode, decode, save, load)
  and :func:`load_tokenizer`, the one loader behind every ``--tokenizer FILE``;
* :mod:`~codekiln.tokenizer.trainer` -- running the Rust trainer on a corpus (batches, progress,
  the training report);
* :mod:`~codekiln.tokenizer.counts` -- count files: count on many machines, merge, train
  once (``docs/scale.md``);
* :mod:`~codekiln.tokenizer.format` -- the file format and its constants (a leaf);
* :mod:`~codekiln.tokenizer.interop` -- exact Hugging Face / tiktoken equivalents (through the
  public API only);
* :mod:`~codekiln.tokenizer.stats` -- how well a tokenizer fits a corpus;
* :mod:`~codekiln.tokenizer.cli` -- ``codekiln tokenizer ...``.

Imports go one way: ``format`` <- ``trainer`` <- ``core`` <- ``counts``, ``interop``,
``stats`` <- ``cli``.
"""

from __future__ import annotations

from codekiln.tokenizer.core import Tokenizer, load_tokenizer
from codekiln.tokenizer.format import (
    ENDOFTEXT,
    FORMAT_NAME,
    FORMAT_VERSION,
    NEWLINE_TOKEN,
    TokenizerFileError,
    bytes_to_token_str,
    bytes_to_unicode,
    token_str_to_bytes,
)

__all__ = [
    "ENDOFTEXT",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "NEWLINE_TOKEN",
    "Tokenizer",
    "TokenizerFileError",
    "bytes_to_token_str",
    "bytes_to_unicode",
    "load_tokenizer",
    "token_str_to_bytes",
]
