"""Bounded-memory training: ``Tokenizer.train(max_memory=..., spill_dir=...)`` spills sorted
partial counts and merges them from disk; the result must be identical to training in memory.
"""

from __future__ import annotations

import json
import os
import pathlib
import random

import pytest
from codekiln import Tokenizer, _core
from codekiln.tokenizer.trainer import parse_memory
from hypothesis import given, settings
from hypothesis import strategies as st


def _many_pieces_corpus(directory: pathlib.Path, files: int = 3, docs: int = 120) -> list[str]:
    """JSONL files whose distinct pieces (~60k identifiers and numbers) need several MiB of
    tables: far above a 1 MiB budget."""
    rng = random.Random(5)
    texts = []
    for f in range(files):
        lines = []
        for d in range(docs):
            body = "\n".join(
                f"    v{rng.getrandbits(40):x} = f{f}_{d}_{i}({rng.randrange(10**6)}) + x_{i % 7}"
                for i in range(60)
            )
            text = f"def g{d}(x):\n{body}\n    return x\n"
            texts.append(text)
            lines.append(json.dumps({"content": text}))
        (directory / f"part-{f}.jsonl").write_text("\n".join(lines) + "\n")
    return texts


@pytest.mark.parametrize("threads", [1, 2])
def test_budget_training_is_identical_to_in_memory(tmp_path: pathlib.Path, threads: int) -> None:
    data = tmp_path / "data"
    data.mkdir()
    texts = _many_pieces_corpus(data)
    spill = tmp_path / "spill"
    spill.mkdir()
    common = dict(vocab_size=600, progress=False, num_threads=threads)
    ref = Tokenizer.train(data, **common)
    got = Tokenizer.train(data, max_memory="1MiB", spill_dir=spill, **common)
    assert got.fingerprint == ref.fingerprint
    r = got.train_report
    assert r["spill_runs"] >= 2, r
    assert r["unique_pieces"] == ref.train_report["unique_pieces"] > 40_000
    assert r["max_memory"] == 2**20
    assert list(spill.iterdir()) == []  # runs and their directory are removed
    # Texts (the Python-fed path) spill the same way.
    from_texts = Tokenizer.train(texts, max_memory=2**20, **common)
    assert from_texts.fingerprint == ref.fingerprint
    assert from_texts.train_report["spill_runs"] >= 2


@settings(max_examples=25, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="ab_xy1 \n\t(é", max_size=30), min_size=1, max_size=60),
    budget=st.integers(0, 3000),
    threads=st.integers(1, 3),
)
def test_any_budget_counts_like_memory(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str], budget: int, threads: int
) -> None:
    # The extension takes budgets far below the public 1 MiB minimum: every table spills.
    ref = _core.Counter("code", True)  # no budget: the in-memory tables
    ref.add_texts(texts, threads)
    want, distinct, _ = ref.train(100, 1, 1, threads)
    spill = tmp_path_factory.mktemp("spill")
    counter = _core.Counter("code", True, "content", budget, spill)
    half = len(texts) // 2
    counter.add_texts(texts[:half], threads)
    counter.add_texts(texts[half:], threads)
    merges, got_distinct, _ = counter.train(100, 1, 1, threads)
    assert merges == want
    assert got_distinct == distinct
    del counter
    assert os.listdir(spill) == []


def test_pruning_drops_rare_pieces(tmp_path: pathlib.Path) -> None:
    texts = _many_pieces_corpus(tmp_path, files=1, docs=60)
    full = Tokenizer.train(texts, vocab_size=400, progress=False)
    pruned = Tokenizer.train(texts, vocab_size=400, progress=False, min_piece_count=3)
    r = pruned.train_report
    assert r["min_piece_count"] == 3 and r["max_memory"] is None
    assert r["kept_pieces"] < r["unique_pieces"] / 2  # most random identifiers occur once
    assert pruned.fingerprint != full.fingerprint
    # Pruned training still encodes everything (bytes are always in the vocabulary).
    assert pruned.decode(pruned.encode(texts[0])) == texts[0]


def test_memory_arguments_are_checked(tmp_path: pathlib.Path) -> None:
    train = dict(vocab_size=300, progress=False)
    assert parse_memory("1.5GB") == 1_500_000_000
    assert parse_memory(" 2 gib ") == 2 * 2**30
    with pytest.raises(ValueError, match="max_memory='lots' is not a size"):
        Tokenizer.train(["x = 1\n"], max_memory="lots", **train)
    with pytest.raises(ValueError, match="too small"):
        Tokenizer.train(["x = 1\n"], max_memory=1000, **train)
    with pytest.raises(TypeError, match="max_memory"):
        Tokenizer.train(["x = 1\n"], max_memory=1.5, **train)
    with pytest.raises(ValueError, match="spill_dir is only used with max_memory"):
        Tokenizer.train(["x = 1\n"], spill_dir=tmp_path, **train)
    with pytest.raises(FileNotFoundError, match="nope"):
        Tokenizer.train(["x = 1\n"], max_memory="1GB", spill_dir=tmp_path / "nope", **train)
    with pytest.raises(ValueError, match="min_piece_count"):
        Tokenizer.train(["x = 1\n"], min_piece_count=0, **train)


def test_cli_max_memory(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    from codekiln.cli import main

    data = tmp_path / "data"
    data.mkdir()
    _many_pieces_corpus(data, files=2, docs=60)
    ref, got = tmp_path / "ref.json", tmp_path / "got.json"
    base = ["tokenizer", "train", "--input", str(data), "--vocab-size", "400", "--no-progress"]
    assert main([*base, "--out", str(ref)]) == 0
    assert (
        main([*base, "--out", str(got), "--max-memory", "1MiB", "--spill-dir", str(tmp_path)]) == 0
    )
    a, b = Tokenizer.load(ref), Tokenizer.load(got)
    assert a.fingerprint == b.fingerprint
    assert b.train_report["spill_runs"] >= 1
    capsys.readouterr()
    assert main([*base, "--out", str(got), "--max-memory", "4 bananas"]) == 1
    assert "max_memory='4 bananas' is not a size" in capsys.readouterr().err


def test_tables_stay_within_the_budget_and_progress_reports_them(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _many_pieces_corpus(data, files=2, docs=80)
    budget = 2**20
    seen: list[tuple[int, ...]] = []
    counter = _core.Counter("code", True, "content", budget, tmp_path)
    report = counter.add_files(sorted(data.iterdir()), 2, lambda *a: seen.append(a))
    assert report["documents"] == 160
    assert seen, "no progress reported"
    done, total = seen[-1][:2]
    assert done <= total and total == sum(p.stat().st_size for p in data.iterdir())
    assert max(s[3] for s in seen) <= budget  # table bytes as reported while counting
    # (these inputs are read in a blink, so the reports come before most counting: the
    # bound itself is checked on the counter below and, per insertion, in rust/bpe/train.rs)
    assert counter.table_bytes <= budget
    runs = [s[4] for s in seen]  # runs spilled so far (more may follow the last report)
    assert runs == sorted(runs) and runs[-1] <= counter.runs
    assert counter.runs >= 2
    assert all(len(s) == 5 for s in seen)  # (done, total, table entries, table bytes, runs)


def test_unwritable_spill_dir_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    texts = _many_pieces_corpus(tmp_path, files=1, docs=40)
    gone = tmp_path / "gone"
    gone.mkdir()
    counter = _core.Counter("code", True, "content", 2**16, gone)
    gone.rmdir()
    with pytest.raises(FileNotFoundError, match="gone"):
        counter.add_texts(texts, 2)
