"""Tokenizer.train: sources (texts vs paths), readers, errors, progress, determinism, parity with
HF tokenizers' BpeTrainer, and what a code tokenizer learns about indentation."""

from __future__ import annotations

import gzip
import json
import pathlib
import subprocess
import sys

import pytest
import reference_bpe as ref
from codekiln import Tokenizer, _core
from codekiln.corpus import DEFAULT_INCLUDE, resolve
from codekiln.quickstart import stdlib_files

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n",
    "for i in range(10):\n\tprint(i)\n",
] * 4


def train(source: object, **kwargs: object) -> Tokenizer:
    kwargs.setdefault("vocab_size", 290)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("min_frequency", 1)
    return Tokenizer.train(source, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stdlib_texts() -> list[str]:
    """~1.5 MB of the standard library, read as text (fixed pseudo-random file order)."""
    texts, size = [], 0
    for path in stdlib_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        texts.append(text)
        size += len(text)
        if size > 1_500_000:
            break
    assert size > 1_000_000, "the standard library .py files were not found"
    return texts


@pytest.fixture()
def corpus_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """TEXTS spread over every supported file kind, plus files a directory walk must skip."""
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text(TEXTS[0] * 4)
    (tmp_path / "pkg" / "sub" / "b.txt").write_text(TEXTS[1] * 4)
    lines = [json.dumps({"content": TEXTS[2]}), json.dumps({"other": "x"}), "{not json"]
    (tmp_path / "pkg" / "c.jsonl").write_text("\n".join(lines * 4) + "\n")
    with gzip.open(tmp_path / "pkg" / "d.jsonl.gz", "wt") as f:
        f.write(json.dumps({"content": TEXTS[0]}) + "\n")
    (tmp_path / "pkg" / "bad.py").write_bytes(b"x = '\xff\xfe'\n")  # not UTF-8: skipped
    (tmp_path / "pkg" / "notes.md").write_text("ignored: not a corpus suffix")
    (tmp_path / "pkg" / "node_modules").mkdir()
    (tmp_path / "pkg" / "node_modules" / "n.py").write_text("ignored = 2\n")
    (tmp_path / "pkg" / ".hidden").mkdir()
    (tmp_path / "pkg" / ".hidden" / "h.py").write_text("ignored = 1\n")
    return tmp_path / "pkg"


# ------------------------------------------------------------------------ sources


def paths(source: object, **kwargs: object) -> list[str]:
    return [i.path for i in resolve(source, **kwargs).inputs]  # type: ignore[arg-type]


def texts(source: object) -> list[object]:
    return [t for i in resolve(source).inputs for t in i.source]


def test_source_rule_texts_vs_paths(corpus_dir: pathlib.Path) -> None:
    a = str(corpus_dir / "a.py")
    assert paths(a) == [a]  # a single str is a path
    assert paths(pathlib.Path(a)) == [a]
    assert texts(["x = 1", "y = 2"]) == ["x = 1", "y = 2"]  # a list of str is texts
    assert paths([pathlib.Path(a)]) == [a]
    assert texts(t for t in ["x", "y"]) == ["x", "y"]
    with pytest.raises(TypeError, match=r"item 1 is a str, which is a text.*pathlib\.Path"):
        resolve([pathlib.Path(a), a])
    with pytest.raises(TypeError, match=r"item 0 is a str.*pathlib\.Path"):
        resolve([a, pathlib.Path(a)])
    with pytest.raises(TypeError, match="item 1 is a path but item 0 is a text"):
        texts(iter(["x", pathlib.Path(a)]))
    # A str that names an existing file is a text by the rule, but surely meant as a path.
    for source in ([a], iter([a]), [f"{corpus_dir}/*.py", "x"]):
        with pytest.raises(ValueError, match=r"names existing files: to read files pass pathlib"):
            resolve(source)
    with pytest.raises(TypeError, match="not bytes"):
        resolve(b"abc")
    with pytest.raises(TypeError, match="not int"):
        resolve(3)


def test_directory_walk_and_globs(corpus_dir: pathlib.Path) -> None:
    # Default include: Python and corpus dumps; hidden, __pycache__ and node_modules skipped.
    names = [pathlib.Path(p).name for p in paths(corpus_dir)]
    assert names == ["a.py", "bad.py", "c.jsonl", "d.jsonl.gz"]
    assert "*.txt" not in DEFAULT_INCLUDE
    wider = paths(corpus_dir, include=[*DEFAULT_INCLUDE, "*.txt"], exclude=["bad.py"])
    assert [pathlib.Path(p).name for p in wider] == ["a.py", "c.jsonl", "d.jsonl.gz", "b.txt"]
    assert paths(corpus_dir, include=["*.py"], exclude=["sub"]) == paths(corpus_dir / "*.py")
    assert [pathlib.Path(p).name for p in paths(f"{corpus_dir}/**/*.txt")] == ["b.txt"]
    # An explicitly named file is read whatever its suffix; duplicates are read once.
    md = corpus_dir / "notes.md"
    assert paths([md, md, corpus_dir / "a.py"]) == [str(md), str(corpus_dir / "a.py")]
    assert len(paths([corpus_dir, corpus_dir / "a.py"])) == 4
    with pytest.raises(FileNotFoundError, match="no files match"):
        resolve(f"{corpus_dir}/*.rs")


def test_train_on_files_reads_every_kind_and_counts_skips(corpus_dir: pathlib.Path) -> None:
    tok = train(corpus_dir, include=[*DEFAULT_INCLUDE, "*.txt"])
    r = tok.train_report
    assert r is not None
    assert r["files"] == 5 and r["skipped_files"] == 1  # files counts skipped ones too
    assert r["documents"] == 1 + 1 + 4 + 1
    assert r["skipped_documents"] == 8  # 4 lines without "content", 4 invalid JSON lines
    assert any("bad.py" in path for path, _ in r["skipped"])
    # Same merges as training on the same documents given as texts.
    texts = [TEXTS[0] * 4, TEXTS[2], TEXTS[2], TEXTS[2], TEXTS[2], TEXTS[0], TEXTS[1] * 4]
    assert tok.merges == train(texts).merges


def test_text_field(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"code": "abcabc abcabc"}) + "\n")
    tok = train(path, text_field="code", vocab_size=260)
    assert tok.train_report["documents"] == 1
    with pytest.raises(ValueError, match="empty corpus"):
        train(path)  # no "content" field: nothing to train on


def test_bom_and_json_array_like_the_rust_reader(tmp_path: pathlib.Path) -> None:
    from codekiln._readers import iter_documents

    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (json.dumps({"content": "abcabc abcabc"}) + "\n").encode())
    assert train(bom, vocab_size=260).train_report["documents"] == 1  # the Rust reader
    assert list(iter_documents([str(bom)])) == ["abcabc abcabc"]  # the Python one
    array = tmp_path / "rows.json"
    array.write_text(json.dumps([{"content": "abcabc abcabc"}], indent=1))
    for read in (lambda: train(array), lambda: list(iter_documents([str(array)]))):
        with pytest.raises(ValueError, match=r"rows\.json: a JSON array, not JSON lines"):
            read()


def test_missing_path_names_it(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.py"
    with pytest.raises(FileNotFoundError, match=r"nope\.py"):
        train(missing)
    with pytest.raises(FileNotFoundError, match="a single str is read as a path"):
        train("def f(): pass")


def test_empty_corpus_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="empty corpus"):
        train([])
    with pytest.raises(ValueError, match="empty corpus"):
        train(["", ""])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no file matching include=\['\*\.py'"):
        train(tmp_path / "empty")
    (tmp_path / "bad.py").write_bytes(b"\xff\xfe\xfd")
    with pytest.raises(ValueError, match="empty corpus"):
        train(tmp_path / "bad.py")


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"vocab_size=256 is too small: it must be at least 257"):
        train(TEXTS, vocab_size=256)
    with pytest.raises(ValueError, match="at least 258"):
        train(TEXTS, vocab_size=257, special_tokens=["<a>", "<b>"])
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        train(TEXTS, vocab_size=300.0)
    with pytest.raises(ValueError, match="min_frequency"):
        train(TEXTS, min_frequency=0)
    with pytest.raises(ValueError, match="num_threads"):
        train(TEXTS, num_threads=0)
    with pytest.raises(ValueError, match="unknown pattern"):
        train(TEXTS, pattern="rust")
    with pytest.raises(ValueError, match="text_field"):
        train(TEXTS, text_field="")


def test_huge_vocab_size_is_a_clear_error_not_an_abort(tmp_path: pathlib.Path) -> None:
    """Issue 13: vocab_size=2**32 aborted the interpreter (Rust allocated room for 2**32 merges
    up front). Sizes above the 32-bit id range are refused before anything is read; the
    largest allowed one trains (into a small vocabulary) instead of aborting. The runs that
    aborted are in a child process so that a regression fails this test, not the session."""
    for bad in (2**32, 2**64):
        with pytest.raises(ValueError, match=r"vocab_size=\d+ is too large.*4,294,967,295"):
            train(TEXTS, vocab_size=bad)
    largest = (
        "import warnings; from codekiln import Tokenizer\n"
        "with warnings.catch_warnings(record=True):\n"
        "    warnings.simplefilter('always')\n"
        f"    tok = Tokenizer.train({TEXTS!r}, vocab_size=2**32 - 1, progress=False)\n"
        "print(tok.vocab_size)\n"
    )
    run = subprocess.run([sys.executable, "-c", largest], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 257 < int(run.stdout) < 1000
    src = tmp_path / "a.py"
    src.write_text(TEXTS[0])
    cli = [sys.executable, "-m", "codekiln", "tokenizer", "train", "--input", str(src)]
    run = subprocess.run(
        [*cli, "--vocab-size", str(2**32), "--out", str(tmp_path / "t.json"), "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "vocab_size=4294967296 is too large" in run.stderr
    assert not (tmp_path / "t.json").exists()


def test_cli_newline_rule(tmp_path: pathlib.Path) -> None:
    from codekiln.cli import main

    src = tmp_path / "a.py"
    src.write_text(TEXTS[0] * 5)
    args = ["tokenizer", "train", "--input", str(src), "--vocab-size", "260", "--no-progress"]
    for extra, rule in (([], "merged"), (["--newline-rule", "strict"], "strict")):
        out = tmp_path / f"{rule}.json"
        assert main([*args, "--out", str(out), *extra]) == 0
        tok = Tokenizer.load(out)
        assert tok.newline == "<N>" and tok.newline_rule == rule


def test_smallest_vocab_learns_no_merges() -> None:
    tok = train(TEXTS, vocab_size=257)
    assert tok.merges == [] and tok.vocab_size == 257
    assert tok.decode(tok.encode(TEXTS[0])) == TEXTS[0]


def test_too_few_pairs_warns_and_shrinks_the_vocabulary() -> None:
    with pytest.warns(UserWarning, match=r"learned only 2 of 43 merges.*vocab_size is 259"):
        tok = train(["abc"] * 3, vocab_size=300, min_frequency=2)
    assert tok.vocab_size == 259 and len(tok.merges) == 2
    assert tok.special_tokens["<|endoftext|>"] == 258
    assert tok.train_report["merges_learned"] == 2
    assert tok.train_report["merges_requested"] == 43


def test_generator_source_is_drained_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    import codekiln.tokenizer.trainer as training_module

    monkeypatch.setattr(training_module, "TEXT_BATCH_CHARS", 100)
    calls = []
    real = _core.Counter

    class Spy:
        def __init__(self, *args: object) -> None:
            self.inner = real(*args)

        def add_texts(self, texts: list[str], num_threads: int) -> int:
            calls.append(len(texts))
            return self.inner.add_texts(texts, num_threads)

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    monkeypatch.setattr(training_module._core, "Counter", Spy)
    tok = train(t for t in TEXTS)
    assert len(calls) > 1 and sum(calls) == len(TEXTS)
    monkeypatch.undo()
    assert tok.merges == train(TEXTS).merges


def test_progress_bars(capsys: pytest.CaptureFixture[str], corpus_dir: pathlib.Path) -> None:
    train(TEXTS, progress=True)
    err = capsys.readouterr().err
    assert "counting" in err and "merging" in err
    train(corpus_dir, progress=True, vocab_size=270)
    assert "reading" in capsys.readouterr().err
    train(TEXTS, progress=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------ determinism


def test_thread_count_does_not_change_the_result(
    stdlib_texts: list[str], tmp_path: pathlib.Path
) -> None:
    texts = stdlib_texts[:40]
    results = [train(texts, vocab_size=1200, num_threads=n).merges for n in (1, 2, 4)]
    assert results[0] == results[1] == results[2]
    for i, text in enumerate(texts):
        name = f"f{i}.py" if i % 3 else f"f{i}.jsonl.gz"
        if name.endswith(".py"):
            (tmp_path / name).write_text(text)
        else:
            with gzip.open(tmp_path / name, "wt") as f:
                f.write(json.dumps({"content": text}) + "\n")
    from_files = [train(tmp_path, vocab_size=1200, num_threads=n).merges for n in (1, 2, 4)]
    assert from_files[0] == from_files[1] == from_files[2]
    assert len(from_files[0]) == len(results[0])  # same documents, maybe another order
    assert sorted(from_files[0]) == sorted(results[0])


def test_same_merges_as_hf_bpe_trainer(stdlib_texts: list[str]) -> None:
    """In pattern="gpt2", newline=None mode codekiln's trainer is HF's BpeTrainer (GPT-2
    ByteLevel pre-tokenizer, full byte alphabet): same merges in the same order."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    texts = stdlib_texts[:60]
    n = 1500
    ours = train(
        texts, vocab_size=256 + n, pattern="gpt2", newline=None, special_tokens=[], min_frequency=2
    )
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=256 + n,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator(texts, trainer)
    hf_merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
        for m in json.loads(hf.to_str())["model"]["merges"]
    ]
    assert ref.merges_as_strings(ours.merges) == hf_merges


# ------------------------------------------------------------------------ what it learns


def test_indentation_runs_are_single_tokens(stdlib_texts: list[str]) -> None:
    """Trained on Python with the strict <N> rule, every common indentation is one token
    after <N> (the merged rule's newline + indentation pieces: test_tokenizer.py).

    The standard library indents with spaces only, so tab runs are never learned from it; a
    quarter of the files are re-indented with tabs (as tab-indented code would be) so that
    one corpus supports both."""

    def tabify(text: str) -> str:
        out = []
        for line in text.split("\n"):
            stripped = line.lstrip(" ")
            out.append("\t" * ((len(line) - len(stripped)) // 4) + stripped)
        return "\n".join(out)

    texts = [tabify(t) if i % 4 == 0 else t for i, t in enumerate(stdlib_texts)]
    tok = train(texts, vocab_size=4096, min_frequency=2, newline_rule="strict")
    for indent in [" " * 2, " " * 4, " " * 8, " " * 12, " " * 16, "\t", "\t\t", "\t\t\t"]:
        ids = tok.encode(f"if x:\n{indent}pass\n")
        assert tok.decode([ids[ids.index(10) + 1]]) == indent, repr(indent)


def test_texts_without_a_utf8_form_are_skipped_and_counted() -> None:
    """A str with a lone surrogate (from surrogateescape decoding, say) cannot be UTF-8: it is
    skipped and counted like an undecodable line of a file, not fatal to the training."""
    bad = ["x = '\ud800'\n", "\udcff"]
    tok = train([*TEXTS[:3], bad[0], *TEXTS[3:], bad[1]])
    assert tok.train_report["skipped_documents"] == 2
    assert tok.train_report["documents"] == len(TEXTS)
    assert tok.merges == train(TEXTS).merges
    with pytest.raises(ValueError, match="empty corpus"):
        train(bad)
