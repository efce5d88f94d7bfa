"""Count files: count per shard, merge, train once == one pass over all the input."""

from __future__ import annotations

import itertools
import json
import pathlib
import random

import pytest
from codekiln import Tokenizer, _core
from codekiln.cli import main
from codekiln.tokenizer.counts import (
    count_pieces,
    inspect_counts,
    merge_counts,
    train_from_counts,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def _shards(directory: pathlib.Path, n: int = 3) -> list[pathlib.Path]:
    rng = random.Random(3)
    words = ["def", "return", "self", "x", "value", "items", "for", "in", "if", "None", "é"]
    paths = []
    for s in range(n):
        lines = []
        for d in range(40):
            body = "\n".join(
                "    " + " ".join(rng.choice(words) + str(rng.randrange(20)) for _ in range(6))
                for _ in range(8)
            )
            lines.append(json.dumps({"content": f"def f{s}_{d}():\n{body}\n"}))
        p = directory / f"shard-{s}.jsonl"
        p.write_text("\n".join(lines) + "\n")
        paths.append(p)
    return paths


@pytest.mark.parametrize(
    ("pattern", "newline", "rule"),
    [("code", "<N>", "merged"), ("code", "<N>", "strict"), ("gpt2", None, "merged")],
)
def test_merged_counts_train_the_one_pass_tokenizer(
    tmp_path: pathlib.Path, pattern: str, newline: str | None, rule: str
) -> None:
    shards = _shards(tmp_path)
    settings = dict(pattern=pattern, newline=newline, newline_rule=rule)
    one_pass = Tokenizer.train(shards, vocab_size=320, progress=False, **settings)
    files = []
    for i, shard in enumerate(shards):
        out = tmp_path / f"counts-{i:03d}.bin"
        # One shard counted under a tiny budget: spilled counts write the same file.
        budget = "1MiB" if i == 0 else None
        stats = count_pieces(shard, out, progress=False, max_memory=budget, **settings)
        assert stats["documents"] == 40 and stats["files"] == 1
        files.append(out)
    merged = tmp_path / "all.bin"
    info = merge_counts(files, merged)
    assert info == inspect_counts(merged)
    assert info["documents"] == 120 and info["pattern"] == pattern
    assert info["distinct_pieces"] == one_pass.train_report["unique_pieces"]
    assert info["pieces"] == one_pass.train_report["pieces"]
    assert (info["newline"], info["newline_rule"]) == (newline, rule)
    for source in (files, [merged], files[::-1]):
        tok = train_from_counts(source, vocab_size=320, progress=False)
        assert tok.fingerprint == one_pass.fingerprint
        assert (tok.newline, tok.newline_rule) == (newline, rule)
        assert tok.train_report["documents"] == 120
    # Merging is associative: ((a + b) + c) is the same file as (a + b + c).
    ab = tmp_path / "ab.bin"
    merge_counts(files[:2], ab)
    abc = tmp_path / "abc.bin"
    merge_counts([ab, files[2]], abc)
    assert abc.read_bytes() == merged.read_bytes()


def test_count_file_errors(tmp_path: pathlib.Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    count_pieces(["x = 1\n"] * 3, a, progress=False)
    count_pieces(["x = 1\n"] * 3, b, pattern="gpt2", progress=False)
    with pytest.raises(ValueError, match=r"different settings.*b\.bin"):
        merge_counts([a, b], tmp_path / "m.bin")
    with pytest.raises(ValueError, match="different settings"):
        train_from_counts([a, b], vocab_size=300, progress=False)
    assert not (tmp_path / "m.bin").exists()
    bad = tmp_path / "bad.bin"
    data = bytearray(a.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(OSError, match=r"bad\.bin"):
        inspect_counts(bad)
    with pytest.raises(OSError, match=r"bad\.bin"):
        train_from_counts([a, bad], vocab_size=300, progress=False)
    bad.write_bytes(a.read_bytes()[:-5])
    with pytest.raises(OSError, match="truncated"):
        inspect_counts(bad)
    bad.write_bytes(b'{"not": "counts"}')
    with pytest.raises(OSError, match="not a codekiln count file"):
        inspect_counts(bad)
    bad.write_bytes(a.read_bytes()[:8] + (9).to_bytes(4, "little") + a.read_bytes()[12:])
    with pytest.raises(OSError, match="version 9 is not supported"):
        inspect_counts(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.bin"):
        merge_counts([a, tmp_path / "missing.bin"], tmp_path / "m.bin")
    with pytest.raises(ValueError, match="no count files"):
        merge_counts([], tmp_path / "m.bin")
    with pytest.raises(ValueError, match="vocab_size=10 is too small"):
        train_from_counts(a, vocab_size=10, progress=False)
    empty = tmp_path / "empty.bin"
    assert count_pieces(["", ""], empty, progress=False)["documents"] == 2
    assert merge_counts([a, empty], tmp_path / "m.bin")["documents"] == 5
    with pytest.raises(ValueError, match="hold no text"):
        train_from_counts([empty], vocab_size=300, progress=False)


def test_cli_count_merge_train(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    shards = _shards(tmp_path, n=2)
    files = []
    for i, shard in enumerate(shards):
        out = tmp_path / "counts" / f"counts-{i:03d}.bin"
        assert (
            main(["tokenizer", "count", "--input", str(shard), "--out", str(out), "--no-progress"])
            == 0
        )
        files.append(str(out))
    merged = tmp_path / "all.bin"
    assert main(["tokenizer", "merge-counts", "--input", *files, "--out", str(merged)]) == 0
    assert "80 documents" in capsys.readouterr().out
    direct, counted = tmp_path / "direct.json", tmp_path / "counted.json"
    train = ["tokenizer", "train", "--vocab-size", "400", "--no-progress"]
    assert main([*train, "--input", *map(str, shards), "--out", str(direct)]) == 0
    assert main([*train, "--from-counts", str(merged), "--out", str(counted)]) == 0
    assert Tokenizer.load(direct).fingerprint == Tokenizer.load(counted).fingerprint
    capsys.readouterr()
    assert (
        main([*train, "--from-counts", str(merged), "--pattern", "gpt2", "--out", str(counted)])
        == 1
    )
    assert "--pattern gpt2 does not match the count files" in capsys.readouterr().err
    assert (
        main([*train, "--from-counts", str(merged), "--newline", "none", "--out", str(counted)])
        == 1
    )
    assert (
        main([*train, "--from-counts", str(merged), "--max-memory", "1GB", "--out", str(counted)])
        == 1
    )
    # --input and --from-counts are exclusive: a usage error.
    assert (
        main([*train, "--from-counts", str(merged), "--input", str(shards[0]), "--out", "x"]) == 2
    )


@settings(max_examples=20, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="ab_x1 \n(é", max_size=25), min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=3),
)
def test_any_split_into_count_files_trains_the_same(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str], cuts: list[int]
) -> None:
    d = tmp_path_factory.mktemp("counts")
    bounds = [0, *sorted(min(c, len(texts)) for c in cuts), len(texts)]
    files = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        if a == b:
            continue
        files.append(d / f"c{i}.bin")
        count_pieces(texts[a:b], files[-1], progress=False)
    counter = _core.Counter("code", False)  # the default merged <N> rule: newlines not isolated
    counter.add_texts(texts, 1)
    want, _, _ = counter.train(50, 1, 1, 1)
    stats, got, _, _ = _core.train_count_files([str(f) for f in files], 50, 1, 1, 2)
    assert got == want
    assert stats["documents"] == len(texts)
    assert stats["bytes"] == sum(len(t.encode()) for t in texts)


def test_newline_rules_do_not_mix(tmp_path: pathlib.Path) -> None:
    """Merged <N> and no <N> count the same pieces but train different tokenizers; strict
    counts other pieces: files of different rules are never merged."""
    texts = ["def f():\n    return 1\n"] * 3
    merged, none, strict = (tmp_path / f"{n}.bin" for n in ("merged", "none", "strict"))
    count_pieces(texts, merged, progress=False)
    count_pieces(texts, none, newline=None, progress=False)
    count_pieces(texts, strict, newline_rule="strict", progress=False)
    for other in (none, strict):
        with pytest.raises(ValueError, match=r"different settings.*newline=<N> merged"):
            merge_counts([merged, other], tmp_path / "x.bin")
    assert train_from_counts([none], vocab_size=260, progress=False).newline is None
