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


@settings(max_examples=100, deadline=None)
@given(
    st.text(max_size=200),
    st.lists(st.sampled_from([" ", "\t", "\n", "\r\n", "\u3000"]), max_size=10),
    st.randoms(),
)
def test_exact_key_ignores_whitespace(text, spaces, rnd):
    chars = list(text)
    for sp in spaces:
        chars.insert(rnd.randint(0, len(chars)), sp)
    assert dedup_key("".join(chars)) == dedup_key(text)


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
