"""The Rust pre-tokenizer, trainer and encoder against the slow oracle in reference_bpe.py."""

from __future__ import annotations

import reference_bpe as ref
from codekiln import Tokenizer, _core
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

MODES = [("code", True), ("code", False), ("gpt2", True), ("gpt2", False)]

# Characters the pre-tokenizer rules care about, and text with all planes mixed in.
SNIPPETS = [
    "\n", "\r\n", "\r", "\t", "\t\t", " ", "  ", "    ", "\x00", "\x0b", "\x0c", "\x1c", "\x85",
    "\xa0", "\u2028", "\u3000", "<N>", "<|endoftext|>", "'s", "'ll", "_", "__init__", "x1",
    "123456", "٣٤", "½", "é", "e\u0301", "日本", "😀", "def", " self", ".append", "#", "()",
]  # fmt: skip
any_text = st.lists(st.one_of(st.text(), st.sampled_from(SNIPPETS)), max_size=12).map("".join)
# For comparisons with the `regex` module: only characters assigned in Python's unicodedata.
# The `regex` module ships newer Unicode tables (17 in 2026.x) than the Rust core's (16, like
# tiktoken's fancy-regex and HF's Oniguruma, which agree with it on every code point: see
# test_export.py); characters assigned in between, e.g. U+088F, are classified differently.
assigned_text = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(exclude_categories=("Cs", "Cn"))),
        st.sampled_from(SNIPPETS),
    ),
    max_size=12,
).map("".join)
# Small alphabets make many pairs with equal counts, exercising the tie-break.
small_text = st.text(alphabet="ab \n\t\xe9_1.", max_size=16)
small_corpus = st.lists(small_text, min_size=1, max_size=8)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rust_train(texts: list[str], pattern: str, newline: bool, num_merges: int, min_freq: int):
    counter = _core.Counter(pattern, newline)
    counter.add_texts(texts, 2)
    merges, _, _ = counter.train(num_merges, min_freq, 1, 2)
    return [tuple(m) for m in merges]


def ref_pieces(texts: list[str], pattern: str, newline: bool) -> list[str]:
    return [p for t in texts for p in _core.pretokenize(t, pattern, newline)]


# ------------------------------------------------------------------------ the oracle itself


def test_byte_order_puts_printable_bytes_first() -> None:
    order = ref.byte_order()
    assert order[ord("!")] == 0 and order[ord("~")] == 93
    assert order[0xA1] == 94 and order[0xFF] == 187
    assert order[0x00] == 188 and order[ord(" ")] == 188 + 32 and order[0xAD] == 255


def test_reference_counts_overlapping_pairs_and_merges_left_to_right() -> None:
    # "aaa" holds (a, a) twice: 3 occurrences give count 6 > the 5 of (b, c).
    merges = ref.train(["aaa"] * 3 + ["bc"] * 5, 1, 1)
    assert merges == [(97, 97)]
    assert ref.apply_merge([97, 97, 97], (97, 97), 256) == [256, 97]
    assert ref.encode_piece(b"aaaa", [(97, 97), (256, 256)]) == [257]


def test_reference_tie_break_uses_byte_level_order() -> None:
    # Equal counts: (a, b) beats (b, c) because order(a) < order(b).
    assert ref.train(["ab", "bc"], 1, 1) == [(97, 98)]
    # ' ' maps to 'Ġ' (U+0120), which sorts after every printable byte: (x, y) beats (' ', x).
    assert ref.train([" x", "xy"], 1, 1) == [(120, 121)]
    # A merged token orders after every byte.
    assert ref.train(["abab", "cd", "cd"], 2, 1)[1] == (99, 100)


def test_reference_stops_below_min_frequency() -> None:
    assert ref.train(["ab", "ab", "cd"], 10, 2) == [(97, 98)]


# ------------------------------------------------------------------------ pre-tokenizer


@SETTINGS
@given(text=assigned_text)
def test_pattern_regex_splits_like_pretokenize(text: str) -> None:
    for pattern, newline in MODES:
        pieces = _core.pretokenize(text, pattern, newline)
        assert "".join(pieces) == text
        assert ref.split(text, _core.pattern_regex(pattern, newline)) == pieces, (pattern, newline)


@SETTINGS
@given(text=any_text)
def test_newline_mode_makes_every_newline_a_piece(text: str) -> None:
    for pattern in ("code", "gpt2"):
        for piece in _core.pretokenize(text, pattern, True):
            assert piece == "\n" or "\n" not in piece


def test_code_pattern_examples() -> None:
    text = "    if x:\n        y = self._a[10000]\n"
    assert _core.pretokenize(text, "code", True) == [
        "    ", "if", " x", ":", "\n", "        ", "y", " =", " self", "._a", "[100", "00", "]",
        "\n",
    ]  # fmt: skip


# ------------------------------------------------------------------------ trainer


@SETTINGS
@given(corpus=small_corpus, num_merges=st.integers(0, 30), min_freq=st.integers(1, 3))
def test_rust_trainer_matches_reference(corpus: list[str], num_merges: int, min_freq: int) -> None:
    for pattern, newline in MODES:
        got = rust_train(corpus, pattern, newline, num_merges, min_freq)
        want = ref.train(ref_pieces(corpus, pattern, newline), num_merges, min_freq)
        assert got == want, (pattern, newline)


@SETTINGS
@given(corpus=st.lists(any_text, min_size=1, max_size=6), num_merges=st.integers(0, 40))
def test_rust_trainer_matches_reference_on_any_text(corpus: list[str], num_merges: int) -> None:
    got = rust_train(corpus, "code", True, num_merges, 1)
    assert got == ref.train(ref_pieces(corpus, "code", True), num_merges, 1)


def test_rust_trainer_matches_reference_on_python_source() -> None:
    import inspect

    import codekiln.tokenizer.core

    corpus = [inspect.getsource(codekiln.tokenizer.core)]
    pieces = ref_pieces(corpus, "code", True)
    assert rust_train(corpus, "code", True, 120, 2) == ref.train(pieces, 120, 2)


# ------------------------------------------------------------------------ encoder


@st.composite
def merge_lists(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Arbitrary valid merge lists over the bytes of the small alphabet (not only trained
    ones): the encoder must apply any merge list in order."""
    ids = [*list(b"ab \n\t_1."), 195, 169]
    merges: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(0, 25))):
        pair = (draw(st.sampled_from(ids)), draw(st.sampled_from(ids)))
        if pair in merges:
            continue
        merges.append(pair)
        ids.append(255 + len(merges))
    return merges


@SETTINGS
@given(merges=merge_lists(), texts=st.lists(small_text, max_size=4))
def test_rust_encoder_matches_reference(merges: list[tuple[int, int]], texts: list[str]) -> None:
    for pattern, newline in MODES:
        # `newline` here is the scanner's flag: isolated newlines are the strict <N> rule.
        tok = Tokenizer.from_merges(
            merges,
            pattern=pattern,
            newline="<N>" if newline else None,
            newline_rule="strict",
            special_tokens=[],
        )
        for text in texts:
            want = ref.encode(_core.pretokenize(text, pattern, newline), merges)
            assert tok.encode(text) == want, (pattern, newline, text)


@SETTINGS
@given(corpus=small_corpus, text=assigned_text)
def test_trained_encoder_matches_reference(corpus: list[str], text: str) -> None:
    merges = ref.train(ref_pieces(corpus, "code", True), 30, 1)
    tok = Tokenizer.from_merges(merges, newline_rule="strict")
    regex_ = tok.pattern_regex
    assert tok.encode(text) == ref.encode(ref.split(text, regex_), merges)
    want = ref.encode_with_specials(
        text, lambda t: ref.split(t, regex_), merges, tok.special_tokens
    )
    assert tok.encode(text, allowed_special="all") == want


@SETTINGS
@given(merges=merge_lists(), text=any_text)
def test_encode_then_decode_is_identity_for_any_merges(merges, text: str) -> None:
    assume(text)
    for pattern, newline in MODES:
        tok = Tokenizer.from_merges(
            merges, pattern=pattern, newline="<N>" if newline else None, newline_rule="strict"
        )
        assert tok.decode(tok.encode(text)) == text
        # Recognised <|endoftext|> decodes to its name; a recognised "<N>" would become "\n".
        assert tok.decode(tok.encode(text, allowed_special=["<|endoftext|>"])) == text
