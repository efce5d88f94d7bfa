"""Reading codekiln token shards (format version 1, written by the Rust packer).

A shard is one little-endian file: a 256-byte header, the tokens (``uint16`` when the
vocabulary has at most 65,536 ids, else ``uint32``), then ``documents + 1`` ``uint64`` token
offsets. Document ``i`` is ``tokens[off[i] : off[i+1] - 1]``; the token at ``off[i+1] - 1`` is
the ``<|endoftext|>`` separator. The full layout is in ``docs/data.md`` and the Rust writer (``rust/pack/shard.rs``).

>>> # Shard("train-000000.bin").document(0) -> the tokens of its first document
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

import numpy as np

__all__ = [
    "HEADER_BYTES",
    "MAGIC",
    "VERSION",
    "Shard",
    "ShardError",
    "ShardHeader",
    "read_header",
    "sha256_file",
]

MAGIC = b"CKSHARD\0"
VERSION = 1
HEADER_BYTES = 256
# magic, version, header size, token bytes, vocab size, tokens, documents, index offset, eot
_HEADER = struct.Struct("<8sIIIIQQQI4x32s")


class ShardError(ValueError):
    """A file is not a valid shard (foreign, truncated, corrupt); the message names it."""


@dataclass(frozen=True)
class ShardHeader:
    version: int
    token_bytes: int
    vocab_size: int
    token_count: int
    doc_count: int
    eot_id: int
    fingerprint: str
    """The tokenizer fingerprint (hex SHA-256)."""

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("<u2") if self.token_bytes == 2 else np.dtype("<u4")

    @property
    def index_offset(self) -> int:
        return HEADER_BYTES + self.token_count * self.token_bytes

    @property
    def file_size(self) -> int:
        return self.index_offset + (self.doc_count + 1) * 8


def read_header(path: str | os.PathLike[str]) -> ShardHeader:
    """Read and validate the header of ``path``, including the exact file size."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise ShardError(f"{path}: cannot read shard: {e.strerror or e}") from e
    if len(raw) < HEADER_BYTES:
        raise ShardError(
            f"{path}: {len(raw)} bytes, shorter than the {HEADER_BYTES}-byte shard header "
            "(truncated, or not a codekiln shard)"
        )
    magic, version, hsize, tbytes, vocab, tokens, docs, index_off, eot, fp = _HEADER.unpack_from(
        raw
    )
    if magic != MAGIC:
        raise ShardError(f"{path}: not a codekiln shard (magic bytes {magic!r}, want {MAGIC!r})")
    if version != VERSION:
        raise ShardError(f"{path}: shard format version {version}; this reader knows {VERSION}")
    if hsize != HEADER_BYTES or tbytes not in (2, 4):
        raise ShardError(f"{path}: corrupt header (header size {hsize}, token bytes {tbytes})")
    h = ShardHeader(version, tbytes, vocab, tokens, docs, eot, fp.hex())
    if not 0 < vocab <= 256**tbytes or eot >= vocab:
        raise ShardError(
            f"{path}: corrupt header (vocabulary size {vocab}, separator id {eot}, "
            f"{tbytes}-byte tokens)"
        )
    if index_off != h.index_offset:
        raise ShardError(f"{path}: corrupt header (index offset {index_off} != {h.index_offset})")
    if size != h.file_size:
        raise ShardError(
            f"{path}: {size} bytes but its header promises {h.file_size} "
            f"({tokens} tokens, {docs} documents): the file is truncated or corrupt"
        )
    return h


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _reopen(path: str, header: ShardHeader) -> Shard:
    shard = Shard(path)
    if shard.header != header:
        raise ShardError(f"{path}: the shard changed on disk since it was opened")
    return shard


class Shard:
    """A memory-mapped shard: ``tokens`` and ``offsets`` are read-only numpy arrays.

    Opening checks the header, the exact file size and the document index (offsets start at
    0, increase, end at the token count), so a corrupt index cannot produce documents that
    run past the file. Token ids are checked against the vocabulary size when they are read
    (:meth:`document`, :meth:`checked_tokens`); the full SHA-256 check is
    :func:`sha256_file` against the manifest (``PackedDataset(verify=True)``). A ``Shard``
    pickles as its path (worker processes reopen the memory map; nothing is copied).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.header = read_header(self.path)
        h = self.header
        if h.token_count:
            self.tokens = np.memmap(
                self.path, dtype=h.dtype, mode="r", offset=HEADER_BYTES, shape=(h.token_count,)
            )
        else:
            self.tokens = np.zeros(0, dtype=h.dtype)
        self.offsets = np.memmap(
            self.path, dtype="<u8", mode="r", offset=h.index_offset, shape=(h.doc_count + 1,)
        )
        if self.offsets[0] != 0 or int(self.offsets[-1]) != h.token_count:
            raise ShardError(f"{self.path}: corrupt document index (first/last offsets)")
        if h.doc_count and not np.all(self.offsets[1:] > self.offsets[:-1]):
            raise ShardError(f"{self.path}: corrupt document index (offsets do not increase)")

    def __reduce__(self) -> tuple[object, tuple[str, ShardHeader]]:
        return _reopen, (self.path, self.header)

    def checked_tokens(self, start: int, end: int) -> np.ndarray:
        """``tokens[start:end]``, after checking every id is below the vocabulary size (a
        flipped byte in the token area would otherwise reach the model as an id it has no
        embedding for)."""
        part = self.tokens[start:end]
        if part.size and int(part.max()) >= self.header.vocab_size:
            bad = start + int(np.argmax(part >= self.header.vocab_size))
            raise ShardError(
                f"{self.path}: token {bad} has id {int(self.tokens[bad])}, not below the "
                f"vocabulary size {self.header.vocab_size}: the shard is corrupt "
                "(inspect it with `codekiln data inspect`)"
            )
        return part

    def __len__(self) -> int:
        return self.header.doc_count

    def document(self, i: int) -> np.ndarray:
        """The tokens of document ``i`` (without its separator)."""
        if not 0 <= i < self.header.doc_count:
            raise IndexError(f"document {i} out of range ({self.header.doc_count} in {self.path})")
        return self.checked_tokens(int(self.offsets[i]), int(self.offsets[i + 1]) - 1)

    def check_index(self) -> None:
        """Full index check: offsets increase and every document ends with the separator."""
        off = np.asarray(self.offsets, dtype=np.int64)
        if np.any(np.diff(off) < 1):
            raise ShardError(f"{self.path}: corrupt document index (offsets do not increase)")
        if len(off) > 1 and np.any(self.tokens[off[1:] - 1] != self.header.eot_id):
            raise ShardError(f"{self.path}: a document does not end with the separator")
