"""The tokenizer file: round trip, format, fingerprint, and every error path of load."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import pickle
import stat

import pytest
from codekiln import Tokenizer
from codekiln.tokenizer import TokenizerFileError

TEXTS = ["def add(a, b):\n    return a + b\n", "x = [1, 2, 3]\n\tprint(x)  # é 😀\n"] * 10


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train(
        TEXTS, vocab_size=290, special_tokens=["<|endoftext|>", "<pad>"], progress=False
    )


@pytest.fixture()
def saved(tok: Tokenizer, tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "tok.json"
    tok.save(path)
    return path


def edit(path: pathlib.Path, **changes: object) -> pathlib.Path:
    obj = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            obj.pop(key)
        else:
            obj[key] = value
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


@pytest.mark.parametrize("pattern", ["code", "gpt2"])
@pytest.mark.parametrize(
    ("newline", "rule"), [("<N>", "merged"), ("<N>", "strict"), (None, "merged")]
)
def test_round_trip(tmp_path: pathlib.Path, pattern: str, newline: str | None, rule: str) -> None:
    tok = Tokenizer.train(
        TEXTS, vocab_size=280, pattern=pattern, newline=newline, newline_rule=rule, progress=False
    )
    tok.save(tmp_path / "t.json")
    back = Tokenizer.load(tmp_path / "t.json")
    assert back == tok
    assert back.merges == tok.merges and back.special_tokens == tok.special_tokens
    assert back.pattern == pattern and back.newline == newline and back.newline_rule == rule
    assert json.loads((tmp_path / "t.json").read_text())["version"] == (
        2 if (newline, rule) == ("<N>", "merged") else 1
    )
    assert pickle.loads(pickle.dumps(tok)) == tok
    assert back.train_report == json.loads(json.dumps(tok.train_report))
    for text in TEXTS[:2]:
        assert back.encode(text) == tok.encode(text)


def test_file_content_is_readable_json(tok: Tokenizer, saved: pathlib.Path) -> None:
    text = saved.read_text(encoding="utf-8")
    obj = json.loads(text)
    assert list(obj)[:9] == [
        "format", "version", "pattern", "pattern_regex", "newline", "newline_rule", "vocab_size",
        "special_tokens", "fingerprint",
    ]  # fmt: skip
    assert obj["format"] == "codekiln-tokenizer" and obj["version"] == 2
    assert obj["newline"] == "<N>" and obj["newline_rule"] == "merged"
    assert obj["special_tokens"] == {"<N>": 10, "<|endoftext|>": 288, "<pad>": 289}
    assert obj["vocab_size"] == 290 and len(obj["merges"]) == 32
    assert obj["training"]["documents"] == 20
    assert f'  "{obj["merges"][0]}",' in text.splitlines()  # one merge per line, unescaped
    for merge, (a, b) in zip(obj["merges"], tok.merges):
        left, right = merge.split(" ")
        assert (tok.token_to_id(left), tok.token_to_id(right)) == (a, b)


def test_fingerprint_is_the_hash_of_the_canonical_content(tok: Tokenizer) -> None:
    canonical = {
        "format": "codekiln-tokenizer",
        "version": 2,
        "pattern": tok.pattern,
        "pattern_regex": tok.pattern_regex,
        "newline": tok.newline,
        "newline_rule": "merged",
        "vocab_size": tok.vocab_size,
        "special_tokens": tok.special_tokens,
        "merges": [list(m) for m in tok.merges],
    }
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert tok.fingerprint == hashlib.sha256(payload.encode()).hexdigest()


def test_save_is_atomic_and_leaves_no_temporary_files(
    tok: Tokenizer, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "tok.json"
    path.write_text("old content")
    tok.save(str(path))  # str paths too; overwrites
    assert Tokenizer.load(path) == tok
    assert os.listdir(tmp_path) == ["tok.json"]
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o644 == 0o644 or os.name != "posix"  # umask-governed, not 0600


def test_save_failure_keeps_the_old_file(
    tok: Tokenizer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tok.json"
    path.write_text("old content")

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        tok.save(path)
    assert path.read_text() == "old content"
    assert os.listdir(tmp_path) == ["tok.json"]


def test_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        Tokenizer.load(tmp_path / "nope.json")


def test_truncated_file(saved: pathlib.Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(TokenizerFileError, match=r"tok\.json: not valid JSON.*truncated"):
        Tokenizer.load(saved)
    saved.write_bytes(b"")
    with pytest.raises(TokenizerFileError, match="not valid JSON"):
        Tokenizer.load(saved)


def test_not_utf8(saved: pathlib.Path) -> None:
    saved.write_bytes(b"\xff\xfe{}")
    with pytest.raises(TokenizerFileError, match="not UTF-8"):
        Tokenizer.load(saved)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "something-else"}, "not a codekiln tokenizer file"),
        ({"format": None}, "not a codekiln tokenizer file"),
        ({"version": 3}, "version 3 was written by a newer codekiln"),
        ({"newline_rule": "loose"}, "newline_rule must be one of"),
        ({"version": "1"}, "must be an int"),
        ({"version": 0}, "unsupported format version 0"),
        ({"merges": None}, "missing key 'merges'"),
        ({"pattern": None}, "missing key 'pattern'"),
        ({"pattern": "rust"}, "unknown pattern 'rust'"),
        ({"newline": "\n"}, "newline must be"),
        ({"vocab_size": 300}, 'vocab_size" is 300'),
        ({"special_tokens": {"<N>": 10, "<|endoftext|>": 5}}, "do not follow the layout"),
        ({"special_tokens": ["<N>"]}, "must be an object"),
        ({"merges": "a b"}, "must be a list"),
        ({"merges": ["a  b"]}, "not two tokens separated by one space"),
        ({"merges": ["ab c"]}, "uses 'ab', which is not a token yet"),
        ({"merges": [[97, 999]]}, "refers to an id that does not exist yet"),
        ({"merges": [3]}, "merge 0 must be"),
        ({"fingerprint": "0" * 64}, "does not match the content"),
        ({"pattern_regex": "x"}, "splits text differently"),
    ],
)
def test_corrupt_content(saved: pathlib.Path, changes: dict[str, object], message: str) -> None:
    edit(saved, **changes)
    with pytest.raises(TokenizerFileError, match=message) as info:
        Tokenizer.load(saved)
    assert str(saved) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_not_an_object(saved: pathlib.Path) -> None:
    saved.write_text("[1, 2]")
    with pytest.raises(TokenizerFileError, match="not a codekiln tokenizer file"):
        Tokenizer.load(saved)


def test_hand_edited_file_loads_without_fingerprint(saved: pathlib.Path) -> None:
    obj = json.loads(saved.read_text(encoding="utf-8"))
    obj.pop("fingerprint")
    obj.pop("training")
    obj["merges"] = obj["merges"][:-1]
    obj["special_tokens"] = {"<N>": 10, "<|endoftext|>": 287, "<pad>": 288}
    obj["vocab_size"] = 289
    saved.write_text(json.dumps(obj), encoding="utf-8")
    tok = Tokenizer.load(saved)
    assert tok.vocab_size == 289 and tok.train_report is None


def test_tokens_with_equal_bytes_are_saved_by_id(tmp_path: pathlib.Path) -> None:
    # "abc" is made twice: (ab, c) -> 257 and (a, bc) -> 259; the merge (259, d) can only be
    # written unambiguously with ids.
    merges = [(97, 98), (256, 99), (98, 99), (97, 258), (259, 100), (257, 100)]
    tok = Tokenizer.from_merges(merges, special_tokens=[])
    tok.save(tmp_path / "t.json")
    written = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))["merges"]
    assert written[:4] == ["a b", "ab c", "b c", "a bc"]
    assert written[4] == [259, 100] and written[5] == "abc d"
    assert Tokenizer.load(tmp_path / "t.json").merges == merges


DATA = pathlib.Path(__file__).with_name("data")


def test_a_file_saved_before_the_merged_rule_loads_and_encodes_as_before() -> None:
    """tests/data/tokenizer_v1_code_N.json and its expected ids were written by codekiln before
    the merged <N> rule existed (commit 1509b97): version 1, "newline": "<N>", no
    "newline_rule". It must still mean the strict rule, with the same fingerprint and ids."""
    expected = json.loads((DATA / "tokenizer_v1_code_N.expected.json").read_text())
    old = Tokenizer.load(DATA / "tokenizer_v1_code_N.json")
    assert old.newline == "<N>" and old.newline_rule == "strict"
    assert old.fingerprint == expected["fingerprint"]
    for text, ids, with_specials in expected["samples"]:
        assert old.encode(text) == ids
        assert old.encode(text, allowed_special="all") == with_specials
        assert old.decode(ids) == text
    # Saved again it is the same version-1 file (older codekiln can still read it).
    again = old.to_dict()
    assert again["version"] == 1 and "newline_rule" not in again
    # The rule is part of the identity: the same merges under the merged rule are another
    # tokenizer (another fingerprint), even where the ids happen to agree.
    merged = Tokenizer.from_merges(old.merges, special_tokens=["<|endoftext|>"])
    assert merged.fingerprint != old.fingerprint and merged.newline_rule == "merged"
