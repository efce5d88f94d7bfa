"""The one input rule (codekiln.corpus): the tokenizer, its statistics and the packer read the
same documents from the same input, through the API and through the command line; files that
are not regular (FIFOs) are skipped, never waited on."""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
from codekiln import Tokenizer
from codekiln.cli import main
from codekiln.corpus import DEFAULT_INCLUDE, resolve, walk
from codekiln.data import FilterConfig, PackConfig, PackedDataset, pack
from codekiln.tokenizer.stats import compute_stats

HAS_FIFO = hasattr(os, "mkfifo")

DOCS = {
    "a.py": "def add(a, b):\n    return a + b\n" * 3,
    "sub/b.py": "class Point:\n    def __init__(self, x, y):\n        self.x = x\n" * 2,
    "c.jsonl#0": "for i in range(10):\n\tprint(i)\n",
    "c.jsonl#1": "while True:\n    break\n",
    "d.jsonl.gz#0": "import os\nprint(os.getcwd())\n",
    "e.parquet#0": "x = [1, 2, 3]\ny = {k: k for k in x}\n",
}


@pytest.fixture()
def tree(tmp_path: pathlib.Path) -> pathlib.Path:
    """DOCS spread over every kind of file the default include takes, plus what the walk must
    leave out: other suffixes, hidden entries, __pycache__, node_modules, a FIFO, a broken link."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text(DOCS["a.py"])
    (root / "sub" / "b.py").write_text(DOCS["sub/b.py"])
    rows = [{"content": DOCS["c.jsonl#0"]}, {"other": 1}, {"content": DOCS["c.jsonl#1"]}]
    (root / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with gzip.open(root / "d.jsonl.gz", "wt") as f:
        f.write(json.dumps({"content": DOCS["d.jsonl.gz#0"]}) + "\n")
    pq.write_table(pa.table({"content": [DOCS["e.parquet#0"]]}), root / "e.parquet")
    (root / "notes.txt").write_text("not in the default include\n")
    (root / ".hidden.py").write_text("hidden = 1\n")
    for skipped_dir in (".git", "__pycache__", "node_modules"):
        (root / skipped_dir).mkdir()
        (root / skipped_dir / "x.py").write_text("skipped = 1\n")
    (root / "broken.py").symlink_to(root / "missing.py")
    if HAS_FIFO:
        os.mkfifo(root / "pipe.py")
    return root


def expected_texts() -> list[str]:
    return sorted(DOCS.values())


def raw_config(**kw: object) -> PackConfig:
    base = dict(filters=FilterConfig.none(), dedup="none", redact=False, valid_fraction=0.0)
    base.update(kw)
    return PackConfig(**base)  # type: ignore[arg-type]


def packed_texts(directory: pathlib.Path, tok: Tokenizer) -> list[str]:
    ds = PackedDataset(directory, "train", block_size=4, as_numpy=True)
    return sorted(tok.decode(ds.document_tokens(i).tolist()) for i in range(ds.num_documents))


def test_walk_skips_what_it_must(tree: pathlib.Path) -> None:
    found, skipped = walk(tree)
    assert found == ["a.py", "c.jsonl", "d.jsonl.gz", "e.parquet", "sub/b.py"]
    reasons = dict(skipped)
    assert "broken symbolic link" in reasons[str(tree / "broken.py")]
    if HAS_FIFO:
        assert "FIFO" in reasons[str(tree / "pipe.py")]
    assert walk(tree, include=["*.py"], exclude=["sub"])[0] == ["a.py"]
    assert walk(tree, include=["*.txt"])[0] == ["notes.txt"]


def test_same_documents_for_train_stats_and_pack(
    tree: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    want = expected_texts()
    n_bytes = sum(len(t.encode()) for t in want)
    n_skipped = 1 + HAS_FIFO  # the broken link and the FIFO

    tok = Tokenizer.train(tree, vocab_size=300, min_frequency=1, progress=False)
    r = tok.train_report
    assert (r["documents"], r["bytes"]) == (len(want), n_bytes)
    assert r["skipped_documents"] == 1  # the JSON line without "content"
    assert r["skipped_files"] == n_skipped
    assert (
        tok.merges == Tokenizer.train(want, vocab_size=300, min_frequency=1, progress=False).merges
    )

    stats = compute_stats(tok, tree)
    assert (stats.documents, stats.bytes) == (len(want), n_bytes)
    assert stats.skipped_files == n_skipped and stats.skipped_documents == 1

    m = pack(tree, tok, tmp_path / "packed", raw_config(), progress=False)
    assert packed_texts(tmp_path / "packed", tok) == want
    assert m["report"]["bytes_in"] == n_bytes
    assert len(m["report"]["skipped_files"]) == n_skipped

    # The same input given as a list of paths, and the same documents given as texts.
    assert (
        pack([tree], tok, tmp_path / "list", raw_config(), progress=False)["inputs"] == m["inputs"]
    )
    pack(want, tok, tmp_path / "texts", raw_config(), progress=False)
    assert packed_texts(tmp_path / "texts", tok) == want


def test_same_documents_through_the_command_line(
    tree: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tok_file = tmp_path / "tok.json"
    flags = ["--input", str(tree), "--include", "*.py", "*.jsonl", "--exclude", "sub"]
    want = sorted([DOCS["a.py"], DOCS["c.jsonl#0"], DOCS["c.jsonl#1"]])
    train = ["tokenizer", "train", *flags, "--vocab-size", "290", "--out", str(tok_file)]
    assert main([*train, "--no-progress"]) == 0
    tok = Tokenizer.load(tok_file)
    assert tok.train_report["documents"] == len(want)
    capsys.readouterr()
    assert main(["tokenizer", "stats", "--tokenizer", str(tok_file), *flags, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == len(want)
    out = tmp_path / "packed"
    pack_args = ["data", "pack", "--tokenizer", str(tok_file), *flags, "--out", str(out)]
    pack_args += ["--filters", "none", "--dedup", "none", "--no-redact", "--valid-fraction", "0"]
    assert main([*pack_args, "--no-progress"]) == 0
    assert packed_texts(out, tok) == want
    # Without the flags both commands take the default include, so the same documents again.
    assert set(PackConfig().include) == set(DEFAULT_INCLUDE)


def test_texts_that_name_files_are_a_clear_error(
    tree: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """pack(["a.py"]) read a path in older versions; now a list of str is texts, everywhere,
    and a list that names existing files says what to pass instead."""
    tok = Tokenizer.from_merges([])
    files = [str(tree / "a.py"), str(tree / "sub" / "b.py")]
    for call in (
        lambda: pack(files, tok, tmp_path / "o", raw_config()),
        lambda: Tokenizer.train(files, vocab_size=260, progress=False),
        lambda: compute_stats(tok, files),
    ):
        with pytest.raises(ValueError, match=r"to read files pass pathlib\.Path objects"):
            call()
    assert len(resolve([pathlib.Path(f) for f in files]).inputs) == 2


@pytest.mark.skipif(not HAS_FIFO, reason="needs os.mkfifo")
def test_fifo_in_an_input_directory_never_hangs(tree: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """Issue 13: a FIFO in the input is skipped (reported), never opened, so nothing blocks on
    it; run in a child process with a timeout so that a regression fails instead of hanging."""
    script = textwrap.dedent(
        """
        import sys
        from codekiln.cli import main
        tree, out = sys.argv[1], sys.argv[2]
        tok = out + "/tok.json"
        glob = tree + "/*.py"
        assert main(["tokenizer", "train", "--input", tree, glob, "--vocab-size", "270",
                     "--out", tok, "--no-progress"]) == 0
        assert main(["tokenizer", "stats", "--tokenizer", tok, "--input", tree]) == 0
        assert main(["data", "pack", "--tokenizer", tok, "--input", tree, tree + "/pipe.py",
                     "--out", out + "/packed", "--filters", "none", "--no-progress"]) == 0
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(tree), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "pipe.py: skipped: a FIFO" in run.stdout
    assert "skipped: 1 invalid records, 2 files" in run.stdout  # FIFO, broken link
