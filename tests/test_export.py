"""Exact interop: HF tokenizers, transformers and tiktoken give codekiln's ids."""

from __future__ import annotations

import json
import pathlib

import pytest
from codekiln import Tokenizer, _core
from codekiln.quickstart import stdlib_files
from codekiln.tokenizer.interop import (
    GPT2_REGEX,
    ExportError,
    load_tiktoken,
    save_tiktoken,
    to_huggingface,
    to_tiktoken,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# (pattern, newline, newline_rule); gpt2 with the merged <N> rule splits like gpt2/None.
MODES = [
    ("code", "<N>", "merged"),
    ("code", "<N>", "strict"),
    ("code", None, "merged"),
    ("gpt2", "<N>", "strict"),
    ("gpt2", None, "merged"),
]
SNIPPETS = [
    "\n", "\r\n", "\r", "\t", "\t\t", " ", "    ", "        ", "\x00", "\x0b", "\x1c", "\x85",
    "\xa0", "\u2028", "\u3000", "<N>", "<|endoftext|>", "<|endoftext|", "'s", "'ll", "é",
    "e\u0301", "日本", "😀", "def", " self", ".append", "__init__", "123456", "٣٤", "½",
]  # fmt: skip
any_text = st.lists(st.one_of(st.text(), st.sampled_from(SNIPPETS)), max_size=12).map("".join)
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def sample_texts() -> list[str]:
    texts = []
    for path in stdlib_files()[:25]:
        texts.append(path.read_text(encoding="utf-8"))
    texts.append("x = '<N>' + \"<|endoftext|>\"\r\n\tif a:\r\n\t\treturn 'é😀'\n" * 20)
    return texts


@pytest.fixture(scope="module", params=MODES, ids=lambda m: "-".join(map(str, m)))
def trio(request: pytest.FixtureRequest, sample_texts: list[str]):  # type: ignore[no-untyped-def]
    pattern, newline, rule = request.param
    tok = Tokenizer.train(
        sample_texts,
        vocab_size=1500,
        pattern=pattern,
        newline=newline,
        newline_rule=rule,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        progress=False,
    )
    return tok, to_huggingface(tok), to_tiktoken(tok)


def check_same_ids(tok: Tokenizer, hf, tt, text: str) -> None:  # type: ignore[no-untyped-def]
    want = tok.encode(text)
    assert hf.encode(text, add_special_tokens=False).ids == want
    assert tt.encode_ordinary(text) == want
    assert tt.encode(text, disallowed_special=()) == want
    allowed = {"<|endoftext|>", "<|pad|>"}
    with_specials = tok.encode(text, allowed_special=allowed)
    assert tt.encode(text, allowed_special=allowed, disallowed_special=()) == with_specials
    # Issue 13: literal "<N>" with allowed_special="all" is id 10 in both.
    assert tt.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")


@SETTINGS
@given(text=any_text)
def test_same_ids_on_generated_text(trio, text: str) -> None:  # type: ignore[no-untyped-def]
    check_same_ids(*trio, text)


def test_same_ids_on_source_code(trio, sample_texts: list[str]) -> None:  # type: ignore[no-untyped-def]
    tok, hf, tt = trio
    held_out = [p.read_text(encoding="utf-8") for p in stdlib_files()[100:110]]
    for text in [*sample_texts[-3:], *held_out]:
        check_same_ids(tok, hf, tt, text)
    assert tok.decode(tok.encode(held_out[0])) == hf.decode(hf.encode(held_out[0]).ids)


def test_same_ids_across_unicode(trio) -> None:  # type: ignore[no-untyped-def]
    """The pattern's character classes (\\p{L}, \\p{N}, \\s...) agree between the Rust core,
    Oniguruma and fancy-regex on a sweep of code points, including recently assigned ones
    (U+088F, U+0C5C, U+1ACF, U+A7CE, U+10940) where Unicode versions differ."""
    tok, hf, tt = trio
    recent = [0x88F, 0xC5C, 0x1ACF, 0xA7CE, 0x10940, 0x1F6D8, 0x2EBF0, 0x31350]
    points = [*range(0, 0x3000), *range(0x3000, 0x110000, 251), *recent]
    chars = [chr(c) for c in points if not 0xD800 <= c < 0xE000]
    for i in range(0, len(chars), 256):
        text = "".join(f"a{c}b {c}1 _{c}\n{c}  {c}" for c in chars[i : i + 256])
        check_same_ids(tok, hf, tt, text)


def test_special_tokens_keep_their_ids(trio) -> None:  # type: ignore[no-untyped-def]
    tok, hf, tt = trio
    for name, i in tok.special_tokens.items():
        if name == "<N>":
            assert i == 10 and hf.id_to_token(10) == "Ċ"
            assert tt.encode_single_token(name) == 10 and tt.decode([10]) == "\n"
        else:
            assert hf.token_to_id(name) == i
            assert tt.encode_single_token(name) == i
    assert hf.get_vocab_size() == tok.vocab_size
    assert tt.n_vocab == tok.vocab_size
    assert hf.encode_special_tokens is True


def test_gpt2_pattern_exports_the_standard_gpt2_layout(trio) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 part 3: tokie does not run a tokenizer.json's regex, it recognises layouts;
    the gpt2 pattern without <N> is exported in GPT-2's own layout (plain ByteLevel), the one
    layout it can read as what it is. The ids stay exact (the other tests of this trio)."""
    tok, hf, _ = trio
    pre = json.loads(hf.to_str())["pre_tokenizer"]
    assert _core.pattern_regex("gpt2", False) == GPT2_REGEX
    if tok.pattern == "gpt2" and tok.pattern_regex == _core.pattern_regex("gpt2", False):
        assert pre == {**pre, "type": "ByteLevel", "use_regex": True, "add_prefix_space": False}
    else:
        assert pre["type"] == "Sequence"
        assert pre["pretokenizers"][0]["pattern"] == {"Regex": tok.pattern_regex}


@pytest.mark.parametrize("newline", ["<N>", None])
def test_transformers_loads_the_saved_directory(
    tmp_path: pathlib.Path, sample_texts: list[str], newline: str | None
) -> None:
    transformers = pytest.importorskip("transformers")
    tok = Tokenizer.train(sample_texts[:5], vocab_size=600, newline=newline, progress=False)
    tok.save_huggingface(tmp_path / "hf")
    assert {p.name for p in (tmp_path / "hf").iterdir()} == {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    for cls in (transformers.PreTrainedTokenizerFast, transformers.AutoTokenizer):
        loaded = cls.from_pretrained(tmp_path / "hf")
        assert loaded.eos_token == loaded.bos_token == "<|endoftext|>"
        assert loaded.eos_token_id == tok.eot_id
        for text in [sample_texts[0][:3000], "a<|endoftext|>b\r\n<N>\t😀"]:
            ids = loaded.encode(text, add_special_tokens=False)
            assert ids == tok.encode(text)
            assert loaded.decode(ids) == text
        assert len(loaded) == tok.vocab_size


def test_tiktoken_files_round_trip(tmp_path: pathlib.Path, sample_texts: list[str]) -> None:
    tok = Tokenizer.train(sample_texts[:5], vocab_size=600, progress=False)
    save_tiktoken(tok, tmp_path / "tt")
    enc = load_tiktoken(tmp_path / "tt")
    text = sample_texts[3][:5000]
    assert enc.encode_ordinary(text) == tok.encode(text)
    assert enc.n_vocab == tok.vocab_size
    marked = "a<N>b\n<|endoftext|>"
    assert enc.encode(marked, allowed_special="all") == tok.encode(marked, allowed_special="all")


@pytest.mark.parametrize("newline", ["<N>", None])
def test_tiktoken_literal_newline_token_parity(newline: str | None) -> None:
    """Issue 13: with allowed_special="all" codekiln turned literal "<N>" into id 10 while the
    tiktoken export spelled it out as "<", "N", ">"."""
    tok = Tokenizer.train(["x = Vec<N>\n"] * 4, vocab_size=262, newline=newline, progress=False)
    tt = to_tiktoken(tok)
    for text in ["Vec<N>\n", "<N><N>", "a<N<N>>", "<|endoftext|><N>"]:
        for allowed in ("all", {"<|endoftext|>"}):
            want = tok.encode(text, allowed_special=allowed)
            assert tt.encode(text, allowed_special=allowed, disallowed_special=()) == want
        assert tt.encode_ordinary(text) == tok.encode(text)
    if newline == "<N>":
        assert tok.encode("<N>", allowed_special="all") == [10]
        assert tt.encode("<N>", allowed_special={"<N>"}) == [10]
        with pytest.raises(ValueError, match="disallowed special token"):
            tt.encode("Vec<N>")  # tiktoken's check, documented in codekiln.tokenizer.interop
    else:
        assert "<N>" not in tt.special_tokens_set


@st.composite
def merge_lists(draw: st.DrawFn) -> list[tuple[int, int]]:
    ids = list(b"ab \n\t_1.")
    merges: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(0, 20))):
        pair = (draw(st.sampled_from(ids)), draw(st.sampled_from(ids)))
        if pair not in merges:
            merges.append(pair)
            ids.append(255 + len(merges))
    return merges


@SETTINGS
@given(merges=merge_lists(), text=st.text(alphabet="ab \n\t_1.", max_size=30))
def test_any_merge_list_exports_exactly_or_refuses(merges, text: str) -> None:  # type: ignore[no-untyped-def]
    """HF applies merge lists like codekiln, so any list without duplicate tokens exports;
    tiktoken only agrees for proper lists and must refuse the others."""
    tok = Tokenizer.from_merges(merges, special_tokens=[])
    try:
        hf = to_huggingface(tok)
    except ExportError as e:
        assert "same bytes" in str(e)
        return
    assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text)
    try:
        tt = to_tiktoken(tok)
    except ExportError as e:
        assert "not how BPE splits" in str(e)
        return
    assert tt.encode_ordinary(text) == tok.encode(text)


def test_refuses_tokens_with_equal_bytes() -> None:
    tok = Tokenizer.from_merges([(97, 98), (256, 99), (98, 99), (97, 258)], special_tokens=[])
    with pytest.raises(ExportError, match=r"tokens 257 and 259 have the same bytes b'abc'"):
        to_huggingface(tok)
    with pytest.raises(ExportError, match="same bytes"):
        to_tiktoken(tok)


def test_refuses_an_improper_merge_list_for_tiktoken() -> None:
    # (b, c) comes first, so BPE splits "abc" as a|bc and never uses the merge (ab, c); tiktoken
    # would still merge ab|c into "abc" because that string is in its vocabulary.
    tok = Tokenizer.from_merges([(98, 99), (97, 98), (257, 99)], special_tokens=[])
    assert tok.encode("abc") == [97, 256]
    with pytest.raises(ExportError, match=r"merge 2 \(257, 99\) -> b'abc' is not how BPE splits"):
        to_tiktoken(tok)
    assert to_huggingface(tok).encode("abc").ids == [97, 256]


def test_refuses_a_special_token_that_is_also_an_ordinary_token() -> None:
    tok = Tokenizer.from_merges([(97, 98)], special_tokens=["ab"])
    with pytest.raises(ExportError, match="special token 'ab' is also"):
        to_huggingface(tok)
