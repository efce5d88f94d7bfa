"""Counting and packing on many machines with Ray (optional extra ``ray``:
``pip install codekiln[ray]``).

* :mod:`~codekiln.distributed.count` -- :func:`count_on_ray` maps piece counting over the
  input files as Ray tasks (each writes a count file, ``codekiln.tokenizer.counts``) and
  :func:`train_on_ray` reduces them into a tokenizer: the same tokenizer as one
  :meth:`codekiln.Tokenizer.train` pass (``codekiln tokenizer train --ray [ADDRESS]``).
* :mod:`~codekiln.distributed.pack` -- :func:`pack_on_ray` prepares every input file in a Ray
  task (filters, dedup keys, signatures, redaction, tokenization) and takes the ordered
  decisions and writes the shards here: the shards and manifest of
  :func:`codekiln.data.pack` (``codekiln data pack --ray [ADDRESS]``).

Inputs, the counts directory and the pack's work directory must be paths every worker can
open (a shared filesystem); see ``docs/scale.md``. Importing this package does not import
Ray; the functions do.
"""

from __future__ import annotations

from codekiln.distributed.count import count_on_ray, train_on_ray
from codekiln.distributed.pack import pack_on_ray

__all__ = ["count_on_ray", "pack_on_ray", "train_on_ray"]
