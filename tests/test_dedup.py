"""Exact and near deduplication on their own."""

from __future__ import annotations

import random

from codekiln.data import dedup_key, find_near_duplicates
from hypothesis import given, settings
from hypothesis import strategies as st


def source(seed: int, lines: int = 150) -> str:
    rng = random.Random(seed)
    return "".join(
        f"    result_{rng.randint(0, 9999)} = helper_{rng.randint(0, 9999)}(arg_{i})\n"
        for i in range(lines)
    )


def oracle_key(text: str) -> str:
    """The documented key, the slow way: per non-blank line, newline + leading spaces/tabs +
    the line's other non-whitespace characters; SHA-256, first 16 bytes (little-endian)."""
    import hashlib

    parts = []
    for line in text.split("\n"):
        body = line.lstrip(" \t")
        indent = line[: len(line) - len(body)]
        rest = "".join(c for c in body if not c.isspace())
        if rest:
            parts.append("\n" + indent + rest)
    digest = hashlib.sha256("".join(parts).encode("utf-8", "surrogatepass")).digest()
    return f"{int.from_bytes(digest[:16], 'little'):032x}"  # the key as a 128-bit integer


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab=( \t\n\r\x0b\x1c\u3000\u00a0é日"), max_size=80))
def test_exact_key_matches_the_oracle(text):
    assert dedup_key(text) == oracle_key(text)


@settings(max_examples=100, deadline=None)
@given(
    # Any text a file can hold (a lone surrogate has no UTF-8 form: dedup_key raises on it).
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
            max_size=30,
        ),
        max_size=8,
    ),
    st.lists(st.sampled_from([" ", "\t", "\r", "\u3000"]), max_size=10),
    st.randoms(),
)
def test_exact_key_ignores_whitespace_but_indentation(lines, spaces, rnd):
    """Whitespace inserted after a line's first non-blank character, trailing CRs and blank
    lines do not change the key; changing a line's indentation does."""
    text = "\n".join(f"x{line}" for line in lines)
    chars = list(text)
    for sp in spaces:
        pos = rnd.randint(0, len(chars))
        if pos == 0 or chars[pos - 1] == "\n":
            continue  # that would be indentation
        chars.insert(pos, sp)
    assert dedup_key("".join(chars) + "\n\n  \n") == dedup_key(text)
    if lines:
        assert dedup_key("    " + text) != dedup_key(text)


def test_python_files_differing_in_indentation_are_not_duplicates():
    a = "for x in xs:\n    f(x)\n    g(x)\n"
    b = "for x in xs:\n    f(x)\ng(x)\n"  # g runs once: another program
    assert dedup_key(a) != dedup_key(b)
    assert dedup_key(a) == dedup_key("for x in xs :\r\n    f( x )\r\n\n    g(x)  \r\n")


def test_exact_key_sees_content():
    assert dedup_key("a = 1") != dedup_key("a = 2")
    assert len(dedup_key("x")) == 32


def test_planted_near_duplicates_found_distinct_kept():
    originals = [source(s) for s in range(20)]
    texts = list(originals)
    planted = {}
    for k in (2, 9, 15):
        lines = originals[k].splitlines(keepends=True)
        lines[10] = "    # edited\n"
        lines.insert(40, "    extra = 1\n")
        planted[len(texts)] = k
        texts.append("".join(lines).replace("    ", "  "))
    for threads in (1, 2):
        dups = find_near_duplicates(texts, num_threads=threads)
        assert {(d, k) for d, k, _ in dups} == set(planted.items())
        assert all(est >= 0.85 for _, _, est in dups)


def test_threshold_is_respected():
    a = source(1)
    half = "".join(a.splitlines(keepends=True)[:75]) + source(2, 75)
    assert find_near_duplicates([a, half]) == []
    assert [(d, k) for d, k, _ in find_near_duplicates([a, half], threshold=0.2)] == [(1, 0)]
