"""A slow, obviously-correct byte-level BPE: the oracle for the Rust trainer and encoder.

Merge-list BPE with codekiln's documented rules, written for clarity, not speed:

* training counts pairs with overlaps (the word ``aaa`` holds the pair ``(a, a)`` twice);
* the winner is the pair with the highest count, ties broken by the smallest
  ``(order(left), order(right))`` where ``order(byte)`` is the byte's position in GPT-2's
  byte-level alphabet sorted by code point and ``order(256 + i) = 256 + i``;
* training stops when the best count is below ``min_frequency``;
* a merge is applied left to right without overlap in every word; encoding applies the merges
  in list order the same way.

Pieces come either from ``codekiln._core.pretokenize`` or from :func:`split`, this module's
own splitter (the ``regex`` module with ``_core.pattern_regex``).
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence

import regex


@functools.cache
def byte_level_alphabet() -> dict[int, str]:
    """GPT-2's ``bytes_to_unicode``, written out independently of codekiln's copy."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars = list(keep)
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


@functools.cache
def byte_order() -> tuple[int, ...]:
    """``byte_order()[b]`` = rank of byte ``b``'s byte-level char among all 256, by code point."""
    alphabet = byte_level_alphabet()
    ranked = sorted(range(256), key=lambda b: ord(alphabet[b]))
    order = [0] * 256
    for rank, b in enumerate(ranked):
        order[b] = rank
    return tuple(order)


def order(token: int) -> int:
    return byte_order()[token] if token < 256 else token


def split(text: str, pattern_regex: str) -> list[str]:
    """Pieces by the ``regex`` module: the matches of ``pattern_regex``, left to right."""
    return regex.findall(pattern_regex, text)


def apply_merge(word: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace the occurrences of ``pair`` in ``word``, left to right, without overlap."""
    out: list[int] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train(pieces: Iterable[str], num_merges: int, min_frequency: int = 2) -> list[tuple[int, int]]:
    """Learn up to ``num_merges`` merges from ``pieces`` (each an occurrence of a word)."""
    words = {tuple(piece.encode("utf-8")): count for piece, count in Counter(pieces).items()}
    merges: list[tuple[int, int]] = []
    while len(merges) < num_merges:
        counts: Counter[tuple[int, int]] = Counter()
        for word, count in words.items():
            for pair in itertools.pairwise(word):
                counts[pair] += count
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], order(p[0]), order(p[1])))
        if counts[best] < min_frequency:
            break
        new_id = 256 + len(merges)
        merges.append(best)
        merged: Counter[tuple[int, ...]] = Counter()
        for word, count in words.items():
            merged[tuple(apply_merge(word, best, new_id))] += count
        words = dict(merged)
    return merges


def encode_piece(piece: bytes, merges: Sequence[tuple[int, int]]) -> list[int]:
    """BPE-encode one piece: apply the merges in list order (equivalent to "lowest-index
    adjacent pair first, leftmost first", since a merge's output only feeds later merges)."""
    word = list(piece)
    rank = {}
    for i, pair in enumerate(merges):
        rank.setdefault(pair, i)
    while len(word) > 1:
        best = min(rank.get(p, len(merges)) for p in itertools.pairwise(word))
        if best == len(merges):
            break
        word = apply_merge(word, merges[best], 256 + best)
    return word


def encode(
    pieces: Iterable[str],
    merges: Sequence[tuple[int, int]],
) -> list[int]:
    """Encode pre-split ``pieces`` (ordinary text only)."""
    out: list[int] = []
    for piece in pieces:
        out.extend(encode_piece(piece.encode("utf-8"), merges))
    return out


def encode_with_specials(
    text: str,
    splitter,  # Callable[[str], list[str]]
    merges: Sequence[tuple[int, int]],
    specials: dict[str, int],
) -> list[int]:
    """Encode ``text`` where occurrences of the ``specials`` names (leftmost, then longest)
    become their ids and the text between them is encoded as ordinary text."""
    if not specials:
        return encode(splitter(text), merges)
    names = sorted(specials, key=len, reverse=True)
    alternation = "|".join(regex.escape(n) for n in names)
    out: list[int] = []
    pos = 0
    for m in regex.finditer(alternation, text):
        out.extend(encode(splitter(text[pos : m.start()]), merges))
        out.append(specials[m.group()])
        pos = m.end()
    out.extend(encode(splitter(text[pos:]), merges))
    return out


def token_bytes(merges: Sequence[tuple[int, int]]) -> list[bytes]:
    table = [bytes([b]) for b in range(256)]
    for a, b in merges:
        table.append(table[a] + table[b])
    return table


def merges_as_strings(merges: Sequence[tuple[int, int]]) -> list[tuple[str, str]]:
    """The merges in GPT-2 byte-level form, as in HF ``merges.txt``."""
    alphabet = byte_level_alphabet()
    table = token_bytes(merges)

    def s(i: int) -> str:
        return "".join(alphabet[b] for b in table[i])

    return [(s(a), s(b)) for a, b in merges]
