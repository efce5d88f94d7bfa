"""The corpus pipeline: read, clean, deduplicate, redact, split, tokenize and pack source
code into memory-mapped training shards, and read them back for training.

>>> from codekiln.data import PackConfig, FilterConfig
>>> PackConfig(dedup="near", filters=FilterConfig.none()).dedup
'near'

* :func:`pack` -- the packer (Rust pipeline, parallel, resumable; ``codekiln data pack``);
* :class:`PackedDataset`, :class:`BlockSampler` -- blocks and documents for training;
* :func:`inspect_pack` -- counts, histogram, sample, checksums (``codekiln data inspect``);
* :func:`redact`, :func:`find_near_duplicates`, :func:`check_document`, :func:`dedup_key` --
  the cleaning steps on their own.

Details and the shard format: ``docs/data.md``.
"""

from __future__ import annotations

from codekiln.data.clean import (
    check_document,
    dedup_key,
    find_near_duplicates,
    python_syntax_ok,
    redact,
    redaction_spans,
    split_of,
)
from codekiln.data.config import FilterConfig, PackConfig
from codekiln.data.dataset import BlockSampler, PackedDataset
from codekiln.data.inspect import inspect_pack
from codekiln.data.pack import PackError, load_manifest, pack
from codekiln.data.shards import ShardError

__all__ = [
    "BlockSampler",
    "FilterConfig",
    "PackConfig",
    "PackError",
    "PackedDataset",
    "ShardError",
    "check_document",
    "dedup_key",
    "find_near_duplicates",
    "inspect_pack",
    "load_manifest",
    "pack",
    "python_syntax_ok",
    "redact",
    "redaction_spans",
    "split_of",
]
