"""The ``codekiln`` command line, through ``main([...])`` and once through the installed script."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest
from codekiln import Tokenizer, __version__
from codekiln.cli import main
from codekiln.data import PackedDataset, redact, split_of
from codekiln.quickstart import stdlib_files

CODE = "def add(a, b):\n    return a + b\n\n\nclass Point:\n    x: int = 0\n    y: int = 0\n"


@pytest.fixture()
def corpus(tmp_path: pathlib.Path) -> pathlib.Path:
    d = tmp_path / "src"
    d.mkdir()
    for i in range(5):
        (d / f"m{i}.py").write_text(CODE * (i + 1))
    (d / "latin1.py").write_bytes("s = 'café'\n".encode("latin-1"))  # not UTF-8: skipped
    return d


@pytest.fixture()
def tok_file(corpus: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    out = tmp_path / "out" / "tok.json"
    args = ["tokenizer", "train", "--input", str(corpus), "--vocab-size", "280", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    return out


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("codekiln: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"codekiln {__version__}"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["tokenizer", "train", "--input", "x"]) == 2  # --vocab-size, --out missing
    assert "required" in capsys.readouterr().err


def test_train(
    corpus: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tok_file = tmp_path / "new" / "tok.json"  # parent directories are created
    args = ["tokenizer", "train", "--input", str(corpus), "--vocab-size", "280"]
    assert main([*args, "--out", str(tok_file)]) == 0
    captured = capsys.readouterr()
    assert "merging" in captured.err  # progress bars on stderr by default
    out = captured.out
    assert "skipped 1 files" in out and "latin1.py" in out and "not valid UTF-8" in out
    tok = Tokenizer.load(tok_file)
    assert tok.vocab_size == 280 and tok.pattern == "code" and tok.newline == "<N>"
    assert tok.train_report["skipped_files"] == 1


def test_train_options(corpus: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "t.json"
    args = ["tokenizer", "train", "--input", str(corpus / "m1.py"), str(corpus / "m2.py")]
    args += ["--vocab-size", "270", "--out", str(out), "--pattern", "gpt2", "--newline", "none"]
    args += ["--threads", "1", "--min-frequency", "3", "--special", "<a>", "<b>", "--no-progress"]
    assert main(args) == 0
    tok = Tokenizer.load(out)
    assert tok.pattern == "gpt2" and tok.newline is None
    assert tok.special_tokens == {"<a>": 268, "<b>": 269}
    assert tok.train_report["min_frequency"] == 3 and tok.train_report["num_threads"] == 1
    assert main([*args[:-4], "--special", "--no-progress"]) == 0  # no special tokens
    assert Tokenizer.load(out).special_tokens == {}


def test_train_errors(
    corpus: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["tokenizer", "train", "--out", str(tmp_path / "t.json"), "--no-progress"]
    assert main([*base, "--input", str(corpus), "--vocab-size", "100"]) == 1
    assert "vocab_size=100 is too small" in error_line(capsys)
    assert main([*base, "--input", str(tmp_path / "missing"), "--vocab-size", "300"]) == 1
    assert error_line(capsys).endswith(f"input path not found: {tmp_path / 'missing'}")
    assert main([*base, "--input", str(corpus / "latin1.py"), "--vocab-size", "300"]) == 1
    assert "empty corpus" in error_line(capsys)
    assert main([*base, "--input", f"{tmp_path}/*.rs", "--vocab-size", "300"]) == 1
    assert "no files match the glob" in error_line(capsys)
    assert main([*base, "--input", str(corpus), "--vocab-size", "300", "--threads", "0"]) == 1
    assert "num_threads must be at least 1" in error_line(capsys)
    assert not (tmp_path / "t.json").exists()


def test_train_warns_when_the_corpus_runs_out(
    corpus: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["tokenizer", "train", "--input", str(corpus / "m0.py"), "--vocab-size", "5000"]
    assert main([*args, "--out", str(tmp_path / "t.json"), "--no-progress"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("codekiln: warning: learned only")


def test_encode_and_decode(tok_file: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    tok = Tokenizer.load(tok_file)
    capsys.readouterr()
    text = "def f(x):\n    return x<|endoftext|>"
    assert main(["tokenizer", "encode", "--tokenizer", str(tok_file), "--text", text]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"{len(tok.encode(text))} tokens, {len(text)} bytes")
    assert out[0].split()[0] == str(tok.encode(text)[0])
    args = ["tokenizer", "encode", "--tokenizer", str(tok_file), "--text", text, "--ids-only"]
    assert main(args) == 0
    ids = capsys.readouterr().out.split()
    assert [int(i) for i in ids] == tok.encode(text)
    assert main([*args, "--allowed-special", "all"]) == 0
    assert capsys.readouterr().out.split()[-1] == str(tok.eot_id)
    assert main(["tokenizer", "decode", "--tokenizer", str(tok_file), *ids]) == 0
    assert capsys.readouterr().out == text


def test_encode_file_and_stdin(
    tok_file: pathlib.Path,
    corpus: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tok = Tokenizer.load(tok_file)
    capsys.readouterr()
    args = ["tokenizer", "encode", "--tokenizer", str(tok_file), "--ids-only"]
    assert main([*args, "--input", str(corpus / "m0.py")]) == 0
    assert [int(i) for i in capsys.readouterr().out.split()] == tok.encode(CODE)
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("x = 1\n"))
    assert main(args) == 0
    assert [int(i) for i in capsys.readouterr().out.split()] == tok.encode("x = 1\n")
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("97 98\n10"))
    assert main(["tokenizer", "decode", "--tokenizer", str(tok_file)]) == 0
    assert capsys.readouterr().out == "ab\n"
    assert main(["tokenizer", "decode", "--tokenizer", str(tok_file), "99999"]) == 1
    assert "unknown token id 99999" in error_line(capsys)
    assert main([*args, "--input", str(corpus / "latin1.py")]) == 1
    assert error_line(capsys).endswith("latin1.py: not valid UTF-8 (byte offset 8)")


def test_stats(
    tok_file: pathlib.Path, corpus: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    args = ["tokenizer", "stats", "--tokenizer", str(tok_file), "--input", str(corpus)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "bytes per token" in out and "Python keywords" in out and "longest tokens" in out
    assert "skipped              1 files" in out
    assert main([*args, "--json", "--longest", "3"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["documents"] == 5 and stats["skipped_files"] == 1
    assert stats["bytes_per_token"] > 1.5
    assert len(stats["longest_tokens"]) == 3
    assert {k["keyword"] for k in stats["keywords"]} >= {"def", "class", "return"}
    single = stats["keywords_single_token"]
    assert set(single["bare"]) == {k["keyword"] for k in stats["keywords"] if k["bare_tokens"] == 1}
    assert 0 <= stats["unused_share"] <= 1


def test_info_and_export(
    tok_file: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tok = Tokenizer.load(tok_file)
    assert main(["tokenizer", "info", "--tokenizer", str(tok_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["fingerprint"] == tok.fingerprint and info["vocab_size"] == 280
    assert main(["tokenizer", "info", "--tokenizer", str(tok_file)]) == 0
    assert tok.fingerprint in capsys.readouterr().out
    for fmt in ("hf", "tiktoken"):
        out = tmp_path / fmt
        assert main(["tokenizer", "export", "--tokenizer", str(tok_file), "--format", fmt, "--out", str(out)]) == 0  # fmt: skip
    assert (tmp_path / "hf" / "tokenizer.json").exists()
    assert (tmp_path / "tiktoken" / "tokenizer.tiktoken").exists()


def test_bad_tokenizer_file(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "codekiln-tokenizer", "version": 99}')
    assert main(["tokenizer", "encode", "--tokenizer", str(bad), "--text", "x"]) == 1
    assert "version 99 was written by a newer codekiln" in error_line(capsys)
    assert main(["tokenizer", "info", "--tokenizer", str(tmp_path / "nope.json")]) == 1
    assert "No such file or directory" in error_line(capsys)


def test_quickstart(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "qs"
    args = ["quickstart", "--out-dir", str(out), "--vocab-size", "1024", "--max-mb", "0.5"]
    args += ["--train-steps", "0"]  # the training steps: tests/test_quickstart.py
    assert main([*args, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "standard-library files" in text and "bytes per token" in text
    tok = Tokenizer.load(out / "tokenizer.json")
    assert tok.vocab_size == 1024
    stats = json.loads((out / "tokenizer_stats.json").read_text())
    assert stats["bytes_per_token"] > 2.0
    # The stdlib is packed (and redacted: smtplib has e-mail addresses); the validation split
    # is exactly the held-out files (those the statistics used), none of them is in training.
    assert "shards: train" in text
    manifest = json.loads((out / "data" / "MANIFEST.json").read_text())
    assert manifest["status"] == "complete"
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    holdout = set()
    for f in stdlib_files(root):
        if split_of(0.1, path=f.relative_to(root).as_posix()) == "valid":
            holdout.add(redact(f.read_text(encoding="utf-8", errors="replace"))[0])
    for split, n_min in (("train", 1), ("valid", 1)):
        ds = PackedDataset(out / "data", split, block_size=16, as_numpy=True)
        assert ds.num_documents == manifest["splits"][split]["documents"] >= n_min
        for i in range(ds.num_documents):
            doc = tok.decode(ds.document_tokens(i).tolist())
            assert (doc in holdout) == (split == "valid")
    assert main([*args, "--max-mb", "0"]) == 2  # a usage error naming the flag
    err = capsys.readouterr().err
    assert "argument --max-mb: must be a finite number in (0, inf]" in err


def test_installed_entry_point(tok_file: pathlib.Path) -> None:
    exe = shutil.which("codekiln")
    if exe is None:
        pytest.skip("the codekiln script is not installed (pip install -e .)")
    run = subprocess.run(
        [exe, "tokenizer", "encode", "--tokenizer", str(tok_file), "--text", "a\nb", "--ids-only"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["97", "10", "98"]
    run = subprocess.run(
        [exe, "tokenizer", "train", "--input", "/nonexistent", "--vocab-size", "300", "--out", "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr == "codekiln: error: input path not found: /nonexistent\n"


def test_one_tokenizer_loader_for_every_command(
    tok_file: pathlib.Path, corpus: pathlib.Path, tmp_path: pathlib.Path, capsys
) -> None:
    """`--tokenizer` is read by codekiln.tokenizer.load_tokenizer in every group: the same
    errors, and a directory holding tokenizer.json (a pack) works everywhere."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = str(tmp_path / "packed")
    commands = [
        ["tokenizer", "info", "--tokenizer"],
        ["tokenizer", "stats", "--input", str(corpus), "--tokenizer"],
        ["data", "pack", "--input", str(corpus), "--out", out, "--no-progress", "--tokenizer"],
    ]
    for cmd in commands:
        assert main([*cmd, str(bad)]) == 1
        assert "bad.json: not valid JSON, the file is corrupt or truncated" in error_line(capsys)
        assert main([*cmd, str(tmp_path / "none.json")]) == 1
        assert (
            error_line(capsys)
            == f"codekiln: error: No such file or directory: {tmp_path / 'none.json'}"
        )
        assert main([*cmd, str(tmp_path)]) == 1
        assert "a directory without tokenizer.json" in error_line(capsys)
    assert main([*commands[2], str(tok_file), "--filters", "none"]) == 0
    capsys.readouterr()
    for cmd in commands[:2]:
        assert main([*cmd, out]) == 0  # the pack directory holds tokenizer.json


def _numeric_flags() -> list[tuple[list[str], str, object]]:
    """(subcommand path, option string or positional dest, type) of every numeric argument."""
    import argparse

    from codekiln._cliargs import Float, Int
    from codekiln.cli import build_parser

    found: list[tuple[list[str], str, object]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
                continue
            if action.type in (int, float):
                raise AssertionError(
                    f"codekiln {' '.join(path)} {action.option_strings or action.dest}: a bare "
                    f"{action.type.__name__} type; use codekiln._cliargs.Int/Float"
                )
            if isinstance(action.type, (Int, Float)):
                name = action.option_strings[-1] if action.option_strings else action.dest
                found.append((path, name, action.type))

    walk(build_parser(), [])
    return found


def test_every_numeric_flag_is_range_checked(capsys: pytest.CaptureFixture[str]) -> None:
    """A huge or negative number is a usage error naming the flag, never a traceback."""
    flags = _numeric_flags()
    names = {(" ".join(p), n) for p, n, _ in flags}
    assert {("data pack", "--shard-tokens"), ("tokenizer train", "--min-frequency")} <= names
    assert ("data inspect", "--sample") in names and len(flags) > 30
    for path, name, kind in flags:
        huge = "1" + "0" * 40
        if not name.startswith("-"):  # positional: the type itself rejects the value
            with pytest.raises(Exception, match=r"must be"):
                kind(huge)  # type: ignore[operator]
            continue
        from codekiln._cliargs import Int

        for bad in (huge, "-" + huge) if isinstance(kind, Int) else ("nan", "inf", "-inf"):
            assert main([*path, name, bad]) == 2, (path, name, bad)
            err = capsys.readouterr().err
            assert f"argument {name}" in err and "Traceback" not in err, err
