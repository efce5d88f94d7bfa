"""codekiln.Tokenizer: the encoding API, special tokens, <N> mode, errors."""

from __future__ import annotations

import doctest
import functools
import pickle

import codekiln
import codekiln.tokenizer
import numpy as np
import pytest
import reference_bpe as ref
from codekiln import Tokenizer, _core
from codekiln.tokenizer import bytes_to_token_str, bytes_to_unicode, token_str_to_bytes
from hypothesis import assume, given, settings
from hypothesis import strategies as st

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "for i in range(10):\n\tprint(i, 'it\\'s', \"<N>\")\r\n",
    "# comment é 日本語 😀\nimport os\nprint(os.path.join('a', 'b'))\n",
] * 5

SNIPPETS = [
    "\n", "\r\n", "\t", " ", "    ", "\x00", "\x1f", "\x85", "\u2028", "<N>", "<|endoftext|>",
    "<|endoftext|", "é", "😀", "def", " self", "\n\n", "   \n",
]  # fmt: skip
any_text = st.lists(st.one_of(st.text(), st.sampled_from(SNIPPETS)), max_size=10).map("".join)


@pytest.fixture(
    scope="module", params=[("code", "<N>"), ("code", None), ("gpt2", "<N>"), ("gpt2", None)]
)
def tok(request: pytest.FixtureRequest) -> Tokenizer:
    pattern, newline = request.param
    return Tokenizer.train(
        CORPUS, vocab_size=330, pattern=pattern, newline=newline, min_frequency=1, progress=False
    )


@pytest.fixture(scope="module")
def code_tok() -> Tokenizer:
    return Tokenizer.train(CORPUS, vocab_size=330, min_frequency=1, progress=False)


@pytest.fixture(scope="module")
def strict_tok() -> Tokenizer:
    return Tokenizer.train(
        CORPUS, vocab_size=330, min_frequency=1, newline_rule="strict", progress=False
    )


def test_public_import() -> None:
    assert codekiln.Tokenizer is Tokenizer


def test_doctests() -> None:
    import codekiln._readers
    import codekiln._threads
    import codekiln.corpus
    import codekiln.tokenizer.core
    import codekiln.tokenizer.format
    import codekiln.tokenizer.ids
    import codekiln.tokenizer.stats

    modules = (
        codekiln.tokenizer.core,
        codekiln.tokenizer.stats,
        codekiln.corpus,
        codekiln._threads,
        codekiln._readers,
        codekiln.tokenizer.format,
        codekiln.tokenizer.ids,
    )
    for module in modules:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__


def test_vocabulary_layout(tok: Tokenizer) -> None:
    n = len(tok.merges)
    assert n == 330 - 256 - 1
    assert tok.vocab_size == len(tok) == 330
    if tok.newline == "<N>":
        assert tok.special_tokens == {"<N>": 10, "<|endoftext|>": 256 + n}
    else:
        assert tok.special_tokens == {"<|endoftext|>": 256 + n}
    assert tok.eot_id == 256 + n
    for i in range(256):
        assert tok.token_bytes(i) == bytes([i])
    for i, (a, b) in enumerate(tok.merges):
        assert tok.token_bytes(256 + i) == tok.token_bytes(a) + tok.token_bytes(b)
    assert tok.token_bytes(256 + n) == b"<|endoftext|>"
    assert repr(tok).startswith(f"Tokenizer(vocab_size=330, pattern={tok.pattern!r}")


@settings(max_examples=40, deadline=None)
@given(text=any_text)
def test_round_trip(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.eot_id not in ids  # literal "<|endoftext|>" is ordinary text by default


@settings(max_examples=40, deadline=None)
@given(text=any_text)
def test_strict_rule_every_newline_is_id_10(strict_tok: Tokenizer, text: str) -> None:
    ids = strict_tok.encode(text)
    assert ids.count(10) == text.count("\n")
    for i in ids:
        assert i == 10 or b"\n" not in strict_tok.token_bytes(i)


def test_no_merged_token_contains_a_newline_with_the_strict_rule(strict_tok: Tokenizer) -> None:
    for i in range(256, 256 + len(strict_tok.merges)):
        assert b"\n" not in strict_tok.token_bytes(i)
    assert strict_tok.decode([10]) == "\n"
    assert strict_tok.token_to_id("<N>") == 10
    assert strict_tok.newline_rule == "strict" and "strict" in repr(strict_tok)


@settings(max_examples=40, deadline=None)
@given(text=any_text)
def test_merged_rule_splits_like_newline_none_and_keeps_n(code_tok: Tokenizer, text: str) -> None:
    """The default <N> rule (issue 12): a newline run and the next line's indentation are one
    piece, exactly the pieces of newline=None; <N> is still id 10, decode stays exact and
    literal "<N>" is ordinary text unless allowed."""
    assert code_tok.newline == "<N>" and code_tok.newline_rule == "merged"
    assert code_tok.pattern_regex == _core.pattern_regex("code", False)
    # The newline=None scanner (checked against the regex in test_reference_bpe.py).
    splitter = functools.partial(_core.pretokenize, pattern="code", newline=False)
    ids = code_tok.encode(text)
    assert code_tok.decode(ids) == text
    assert ids == ref.encode(splitter(text), code_tok.merges)
    want = ref.encode_with_specials(text, splitter, code_tok.merges, {"<N>": 10})
    assert code_tok.encode(text, allowed_special=["<N>"]) == want


def test_merged_rule_learns_newline_with_indentation(code_tok: Tokenizer) -> None:
    ids = code_tok.encode("def f(a):\n    return a\n")
    pieces = [code_tok.decode([i]) for i in ids]
    assert "\n    " in pieces, pieces  # one token: the newline and the indentation after it
    assert code_tok.special_tokens["<N>"] == 10 and code_tok.token_to_id("<N>") == 10
    assert code_tok.encode("<N>", allowed_special="all") == [10]
    assert 10 not in code_tok.encode("<N>")


def test_newline_none_has_no_newline_token() -> None:
    tok = Tokenizer.train(CORPUS, vocab_size=330, newline=None, min_frequency=1, progress=False)
    assert "<N>" not in tok.special_tokens
    assert any(b"\n" in tok.token_bytes(i) and len(tok.token_bytes(i)) > 1 for i in range(330 - 1))
    with pytest.raises(ValueError, match="unknown special token '<N>'"):
        tok.encode("<N>", allowed_special=["<N>"])


def test_allowed_special(code_tok: Tokenizer) -> None:
    eot = code_tok.eot_id
    text = "a<|endoftext|>b<N>c"
    assert eot not in code_tok.encode(text)
    assert code_tok.decode(code_tok.encode(text)) == text
    ids = code_tok.encode(text, allowed_special={"<|endoftext|>"})
    assert ids.count(eot) == 1 and 10 not in ids
    ids = code_tok.encode(text, allowed_special="all")
    assert ids.count(eot) == 1 and ids.count(10) == 1
    assert code_tok.decode(ids) == "a<|endoftext|>b\nc"
    assert code_tok.encode(text, allowed_special=["<N>"]).count(10) == 1
    with pytest.raises(ValueError, match="unknown special token '<x>'"):
        code_tok.encode("x", allowed_special=["<x>"])
    with pytest.raises(ValueError, match="did you mean"):
        code_tok.encode("x", allowed_special="<|endoftext|>")


def test_encode_batch_matches_encode(code_tok: Tokenizer) -> None:
    texts = [*CORPUS, "", "<|endoftext|>"]
    want = [code_tok.encode(t) for t in texts]
    for threads in (None, 1, 3):
        assert code_tok.encode_batch(texts, num_threads=threads) == want
    assert code_tok.encode_batch(texts, allowed_special="all")[-1] == [code_tok.eot_id]
    assert code_tok.encode_batch([]) == []
    with pytest.raises(TypeError, match="for one text use encode"):
        code_tok.encode_batch("abc")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        code_tok.encode_batch(["a", 1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="num_threads"):
        code_tok.encode_batch(["a"], num_threads=0)


def test_decode_errors_and_partial_utf8(code_tok: Tokenizer) -> None:
    assert code_tok.decode(code_tok.encode("😀")[:1]) == "\ufffd"
    assert code_tok.decode(np.array(code_tok.encode("abc"))) == "abc"
    for bad in (-1, 330, 2**40):
        with pytest.raises(ValueError, match=f"unknown token id {bad}"):
            code_tok.decode([97, bad])
        with pytest.raises(ValueError, match=f"unknown token id {bad}"):
            code_tok.token_bytes(bad)
        with pytest.raises(ValueError, match=f"unknown token id {bad}"):
            code_tok.id_to_token(bad)
    with pytest.raises(TypeError):
        code_tok.decode(["a"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        code_tok.encode(b"abc")  # type: ignore[arg-type]


def test_token_strings(code_tok: Tokenizer) -> None:
    assert code_tok.id_to_token(10) == "Ċ" and code_tok.id_to_token(32) == "Ġ"
    assert code_tok.id_to_token(code_tok.eot_id) == "<|endoftext|>"
    for i in range(code_tok.vocab_size):
        assert code_tok.token_to_id(code_tok.id_to_token(i)) == i
    with pytest.raises(ValueError, match="not a token"):
        code_tok.token_to_id("not a token")


def test_byte_level_table() -> None:
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord("!")] == "!" and table[0] == "Ā" and table[ord(" ")] == "Ġ"
    data = bytes(range(256))
    assert token_str_to_bytes(bytes_to_token_str(data)) == data
    with pytest.raises(ValueError, match="not a byte-level token string"):
        token_str_to_bytes(" ")


@given(st.binary(max_size=64))
def test_token_strings_match_the_table(data: bytes) -> None:
    # The fast (str.translate) conversions against the table applied byte by byte.
    table = bytes_to_unicode()
    text = "".join(table[b] for b in data)
    assert bytes_to_token_str(data) == text
    assert token_str_to_bytes(text) == data


@given(st.text(max_size=16), st.text(min_size=1, max_size=4))
def test_token_str_to_bytes_rejects_characters_outside_the_alphabet(
    prefix: str, other: str
) -> None:
    alphabet = set(bytes_to_unicode().values())
    assume(any(c not in alphabet for c in other))
    with pytest.raises(ValueError, match="not a byte-level token string"):
        token_str_to_bytes(prefix + other)


def test_from_merges() -> None:
    tok = Tokenizer.from_merges([(97, 98), (256, 99)], special_tokens=["<a>", "<b>"])
    assert tok.encode("abc ab") == [257, 32, 256]
    assert tok.special_tokens == {"<N>": 10, "<a>": 258, "<b>": 259}
    assert tok.vocab_size == 260
    tok2 = Tokenizer.from_merges([(97, 98)], newline=None, special_tokens=[])
    assert tok2.special_tokens == {} and tok2.vocab_size == 257
    with pytest.raises(ValueError, match="does not exist yet"):
        Tokenizer.from_merges([(97, 256)])
    with pytest.raises(ValueError, match="pair of ints"):
        Tokenizer.from_merges([(97,)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown pattern"):
        Tokenizer.from_merges([], pattern="nope")
    with pytest.raises(ValueError, match="newline must be"):
        Tokenizer.from_merges([], newline="\n")
    with pytest.raises(ValueError, match="listed twice"):
        Tokenizer.from_merges([], special_tokens=["<a>", "<a>"])
    with pytest.raises(ValueError, match="use newline="):
        Tokenizer.from_merges([], newline=None, special_tokens=["<N>"])
    with pytest.raises(TypeError, match="not one str"):
        Tokenizer.from_merges([], special_tokens="<a>")
    # "<N>" listed explicitly in <N> mode is the same as not listing it.
    assert Tokenizer.from_merges([], special_tokens=["<N>", "<a>"]).special_tokens == {
        "<N>": 10,
        "<a>": 256,
    }


def test_equality_hash_and_pickle(code_tok: Tokenizer) -> None:
    clone = pickle.loads(pickle.dumps(code_tok))
    assert clone == code_tok and hash(clone) == hash(code_tok)
    assert clone.train_report == code_tok.train_report
    assert clone.encode("def f(): pass\n") == code_tok.encode("def f(): pass\n")
    other = Tokenizer.from_merges(code_tok.merges[:-1])
    assert other != code_tok and other.fingerprint != code_tok.fingerprint


def test_fingerprint_is_stable() -> None:
    tok = Tokenizer.from_merges([(97, 98)], special_tokens=["<|endoftext|>"])
    assert len(tok.fingerprint) == 64
    assert tok.fingerprint == Tokenizer.from_merges([(97, 98)]).fingerprint
    assert tok.fingerprint != Tokenizer.from_merges([(97, 98)], newline=None).fingerprint
    assert tok.fingerprint != Tokenizer.from_merges([(97, 98)], pattern="gpt2").fingerprint
    assert tok.fingerprint != Tokenizer.from_merges([(98, 97)]).fingerprint
    assert tok.fingerprint != Tokenizer.from_merges([(97, 98)], special_tokens=[]).fingerprint
