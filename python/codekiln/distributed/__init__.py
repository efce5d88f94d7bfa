"""Counting on many machines with Ray (optional extra ``ray``: ``pip install codekiln[ray]``).

* :mod:`~codekiln.distributed.count` -- :func:`count_on_ray` maps piece counting over the
  input files as Ray tasks (each writes a count file, ``codekiln.tokenizer.counts``) and
  :func:`train_on_ray` reduces them into a tokenizer: the same tokenizer as one
  :meth:`codekiln.Tokenizer.train` pass (``codekiln tokenizer train --ray [ADDRESS]``).

Inputs and the counts directory must be paths every worker can open (a shared filesystem);
see ``docs/scale.md``. Packing on Ray is not implemented yet (``docs/scale.md`` says why and
what it needs). Importing this package does not import Ray; the functions do.
"""

from __future__ import annotations

from codekiln.distributed.count import count_on_ray, train_on_ray

__all__ = ["count_on_ray", "train_on_ray"]
