"""The tokenizer file format and its constants: the format name and version, the special-token
names, GPT-2 byte-level token strings, merge parsing, reading and checking a file's header, and
the error type. :meth:`codekiln.Tokenizer.save` / ``load`` assemble them; the format is
described in ``docs/tokenizer.md``. A leaf: it imports nothing from codekiln.

>>> token_str_to_bytes(bytes_to_token_str(b" def\\n"))
b' def\\n'
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

__all__ = [
    "ENDOFTEXT",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_VOCAB_SIZE",
    "NEWLINE_RULES",
    "NEWLINE_TOKEN",
    "TokenizerFileError",
    "bytes_to_token_str",
    "bytes_to_unicode",
    "check_header",
    "parse_merges",
    "read_json",
    "token_str_to_bytes",
]

FORMAT_NAME = "codekiln-tokenizer"
FORMAT_VERSION = 2
"""The newest version written: 2 adds ``"newline_rule"`` (written only when it is
``"merged"`` with ``<N>``; every other tokenizer is still written as version 1)."""

NEWLINE_TOKEN = "<N>"
"""In ``newline="<N>"`` mode every newline is this token, which *is* id 10 (the byte ``\\n``)."""
ENDOFTEXT = "<|endoftext|>"
"""The document separator (the packer requires it)."""
NEWLINE_ID = 10
NEWLINE_RULES = ("merged", "strict")
"""``newline_rule`` values: in ``<N>`` mode, newlines merge with the indentation after them
(``"merged"``) or are always a token of their own (``"strict"``, the only rule of version 1)."""
MAX_VOCAB_SIZE = 2**32 - 1
"""Ids are ``u32`` in the Rust core and shards, with ``2**32 - 1`` reserved (no merge)."""


class TokenizerFileError(ValueError):
    """A tokenizer file is corrupt, truncated, of another format or of a newer version."""


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON content of ``path``; :class:`TokenizerFileError` naming the file when it is not
    UTF-8 JSON (``FileNotFoundError`` when it does not exist)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise TokenizerFileError(f"{path}: not a tokenizer file (not UTF-8 text: {e})") from None
    except json.JSONDecodeError as e:
        raise TokenizerFileError(
            f"{path}: not valid JSON, the file is corrupt or truncated ({e})"
        ) from None


def check_header(obj: object) -> dict[str, Any]:
    """``obj`` if it is a codekiln tokenizer file of a version this codekiln reads, else
    ``ValueError`` saying what it is instead."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise ValueError(f'not a codekiln tokenizer file (no "format": "{FORMAT_NAME}")')
    version = obj.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f'"version" must be an int, got {version!r}')
    if version > FORMAT_VERSION:
        raise ValueError(
            f"format version {version} was written by a newer codekiln (this one reads "
            f"version {FORMAT_VERSION}); upgrade codekiln"
        )
    if version < 1:
        raise ValueError(f"unsupported format version {version}")
    return obj


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (the "byte-level" alphabet).

    >>> bytes_to_unicode()[ord(" ")], bytes_to_unicode()[ord("\\n")], bytes_to_unicode()[ord("a")]
    ('Ġ', 'Ċ', 'a')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return dict(sorted(table.items()))


@functools.cache
def _to_token_str_table() -> dict[int, str]:
    # str.translate table for latin-1-decoded bytes: chr(b) -> the byte's printable character.
    return dict(bytes_to_unicode())


@functools.cache
def _to_bytes_table() -> dict[int, str]:
    # The inverse, mapping every character of the alphabet to chr(byte); characters below
    # U+0100 that are not in the alphabet map to U+FFFF so that the latin-1 encode rejects them
    # (characters above U+00FF outside the alphabet are rejected by the encode as they are).
    inverse = {ord(c): chr(b) for b, c in bytes_to_unicode().items()}
    for cp in range(256):
        inverse.setdefault(cp, "\uffff")
    return inverse


def bytes_to_token_str(data: bytes) -> str:
    """The byte-level unicode form of ``data`` (as in HF ``vocab.json``/``merges.txt``)."""
    return data.decode("latin-1").translate(_to_token_str_table())


def token_str_to_bytes(token: str) -> bytes:
    """Inverse of :func:`bytes_to_token_str`; ``ValueError`` for a character outside the table."""
    try:
        return token.translate(_to_bytes_table()).encode("latin-1")
    except UnicodeEncodeError:
        bad = next(c for c in token if ord(c) not in _unicode_to_byte_codes())
        raise ValueError(f"{token!r} is not a byte-level token string (bad char {bad!r})") from None


@functools.cache
def _unicode_to_byte_codes() -> frozenset[int]:
    return frozenset(ord(c) for c in bytes_to_unicode().values())


def parse_merges(raw: object) -> list[tuple[int, int]]:
    """The ``"merges"`` of a file (``"left right"`` token strings or ``[left_id, right_id]``)
    as id pairs; ``ValueError`` naming the first bad entry."""
    if not isinstance(raw, list):
        raise ValueError('"merges" must be a list')
    # Token strings by id: a merged token's string is its operands' strings concatenated.
    contents = [bytes_to_token_str(bytes([b])) for b in range(256)]
    table: dict[str, int] = {s: b for b, s in enumerate(contents)}
    merges: list[tuple[int, int]] = []
    for i, entry in enumerate(raw):
        if isinstance(entry, str):
            parts = entry.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"merge {i} {entry!r} is not two tokens separated by one space")
            try:
                left, right = table[parts[0]], table[parts[1]]
            except KeyError as e:
                raise ValueError(
                    f"merge {i} {entry!r} uses {e}, which is not a token yet"
                ) from None
        elif (
            isinstance(entry, list)
            and len(entry) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in entry)
        ):
            left, right = entry
            if not (0 <= left < len(contents) and 0 <= right < len(contents)):
                raise ValueError(f"merge {i} {entry!r} refers to an id that does not exist yet")
        else:
            raise ValueError(
                f'merge {i} must be "left right" or [left_id, right_id], got {entry!r}'
            )
        merges.append((left, right))
        contents.append(contents[left] + contents[right])
        table.setdefault(contents[-1], 256 + i)
    return merges
