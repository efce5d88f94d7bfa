"""The tokenizer file format's building blocks: GPT-2 byte-level token strings, merge parsing,
atomic writes and the error type. :meth:`codekiln.Tokenizer.save` / ``load`` assemble them; the
format is described in ``docs/tokenizer.md``.
"""

from __future__ import annotations

import functools

FORMAT_NAME = "codekiln-tokenizer"
FORMAT_VERSION = 1


class TokenizerFileError(ValueError):
    """A tokenizer file is corrupt, truncated, of another format or of a newer version."""


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
