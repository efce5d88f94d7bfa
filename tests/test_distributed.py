"""Counting and packing on Ray (``codekiln.distributed``), on a local Ray with 2 CPUs: the
tokenizer must be the one a single-process run trains, the shards and manifest the ones a
single-process pack writes. Ray's start-up is slow on 2 cores, so one module-wide Ray serves
every test here."""

from __future__ import annotations

import gzip
import json
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from codekiln import Tokenizer
from codekiln.cli import main
from codekiln.data import FilterConfig, PackConfig, pack
from data_helpers import make_docs, manifest, shard_bytes, write_jsonl_gz

ray = pytest.importorskip("ray", reason="the optional extra 'ray' is not installed")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _inputs(directory: pathlib.Path) -> list[pathlib.Path]:
    paths = []
    for s in range(3):
        lines = [
            json.dumps({"content": f"def f{s}_{d}(x):\n    return x * {d} + y{s}\n" * 3})
            for d in range(30)
        ]
        p = directory / f"shard-{s}.jsonl"
        p.write_text("\n".join(lines) + "\n")
        paths.append(p)
    (directory / "extra.py").write_text("class A:\n    pass\n")
    return paths


@pytest.mark.slow
def test_train_on_ray_equals_one_process(
    local_ray: None, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codekiln.distributed import count_on_ray, train_on_ray

    data = tmp_path / "data"
    data.mkdir()
    _inputs(data)
    want = Tokenizer.train(data, vocab_size=300, progress=False)
    got = train_on_ray(data, vocab_size=300, progress=False, max_memory="1MiB")
    assert got.fingerprint == want.fingerprint
    assert got.train_report["documents"] == want.train_report["documents"] == 91
    files = count_on_ray(data, tmp_path / "counts")
    assert [pathlib.Path(f).name for f in files] == [f"counts-{i:06d}.bin" for i in range(4)]
    # The CLI: --ray with the already running Ray, keeping the count files.
    out = tmp_path / "tok.json"
    args = ["tokenizer", "train", "--input", str(data), "--vocab-size", "300", "--no-progress"]
    assert main([*args, "--out", str(out), "--ray", "--counts-dir", str(tmp_path / "c2")]) == 0
    assert Tokenizer.load(out).fingerprint == want.fingerprint
    assert len(list((tmp_path / "c2").iterdir())) == 4
    capsys.readouterr()
    with pytest.raises(ValueError, match="Ray tasks read files"):
        train_on_ray(["x = 1\n"], vocab_size=300, progress=False)
    assert main([*args, "--out", str(out), "--counts-dir", str(tmp_path)]) == 1
    assert "--counts-dir is used with --ray only" in capsys.readouterr().err


# ------------------------------------------------------------------------------ packing


def _pack_inputs(directory: pathlib.Path) -> list[dict[str, str]]:
    """Four input files with what the decider must see across files: exact duplicates and
    near duplicates of documents in other files, secrets, filtered documents, a bad record,
    and a gzip file cut short (read up to the cut, then skipped and named)."""
    docs = make_docs(48, seed=3)
    docs[30]["content"] = docs[2]["content"]  # exact duplicate, another file
    near = docs[5]["content"].replace("import os", "import sys")
    docs[40]["content"] = near  # near duplicate, another file
    docs[9]["content"] += "ADMIN = 'admin@example.com'  # 10.1.2.3\n"
    docs[25]["content"] += "token = 'ghp_" + "a1B2" * 9 + "'\n"
    docs[33]["content"] = "x" * 2000 + "\n"  # a line too long for the default filters
    for i in range(4):
        part = docs[i * 12 : (i + 1) * 12]
        if i == 1:
            (directory / "part-1.jsonl").write_text(
                "".join(json.dumps(d) + "\n" for d in part) + "not json\n"
            )
        else:
            write_jsonl_gz(directory / f"part-{i}.jsonl.gz", part)
    blob = gzip.compress("".join(json.dumps(d) + "\n" for d in make_docs(30, 9)).encode())
    (directory / "part-4-cut.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    return docs


def _without_run(m: dict[str, Any]) -> dict[str, Any]:
    m = json.loads(json.dumps(m))
    del m["report"]["this_run"]
    return m


@pytest.fixture(scope="module")
def pack_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Inputs, tokenizer and the one-machine pack every Ray pack must equal."""
    root = tmp_path_factory.mktemp("raypack")
    data = root / "data"
    data.mkdir()
    docs = _pack_inputs(data)
    tok = Tokenizer.train([d["content"] for d in docs[:20]], vocab_size=400, progress=False)
    cfg = PackConfig(
        dedup="near", valid_fraction=0.25, shard_tokens=4_000, num_threads=2, batch_bytes=4096
    )
    want = pack(data, tok, root / "want", cfg, progress=False)
    return {"root": root, "data": data, "tok": tok, "cfg": cfg, "want": want}


@pytest.mark.slow
def test_pack_on_ray_equals_one_machine(local_ray: None, pack_case: dict[str, Any]) -> None:
    from codekiln.distributed import pack_on_ray

    root, data, tok, cfg, want = (pack_case[k] for k in ("root", "data", "tok", "cfg", "want"))
    r = want["report"]
    # The case exercises every cross-file decision (or the comparison proves little).
    assert r["removed"]["exact_duplicate"] == 1 and r["removed"]["near_duplicate"] == 1
    assert r["removed"]["max_line_length"] == 1
    assert r["redactions"]["email"] == 1 and r["redactions"]["github_token"] == 1
    assert [p for p, _ in r["skipped_files"]] == [str(data / "part-4-cut.jsonl.gz")]
    assert r["invalid_records"] == 1
    assert want["splits"]["valid"]["documents"] > 0 and len(want["splits"]["train"]["shards"]) > 2
    for threads in (1, 2):
        out = root / f"ray-{threads}"
        got = pack_on_ray(
            data,
            tok,
            out,
            cfg,
            progress=False,
            work_dir=root / f"work-{threads}",
            task_threads=threads,
        )
        assert shard_bytes(out) == shard_bytes(root / "want"), threads
        assert _without_run(got) == _without_run(want) == _without_run(manifest(out))
        assert (out / "tokenizer.json").read_bytes() == (root / "want/tokenizer.json").read_bytes()
        ray_run = got["report"]["this_run"]["ray"]
        assert ray_run["tasks"] == 5 and ray_run["reused"] == 0
        # Duplicates are tokenized in pass 1: the encoded documents include them.
        kept = sum(want["splits"][s]["documents"] for s in ("train", "valid"))
        assert ray_run["encoded_documents"] == kept + 2


@pytest.mark.slow
def test_pack_on_ray_resumes_and_redoes_damaged_prepared_files(
    local_ray: None, pack_case: dict[str, Any]
) -> None:
    from codekiln.distributed import pack_on_ray

    root, data, tok, cfg, want = (pack_case[k] for k in ("root", "data", "tok", "cfg", "want"))
    work = root / "work-resume"
    pack_on_ray(data, tok, root / "first", cfg, progress=False, work_dir=work)
    prepared = sorted(work.iterdir())
    assert len(prepared) == 5
    prepared[0].unlink()  # deleted
    blob = bytearray(prepared[1].read_bytes())
    blob[100] ^= 0xFF  # corrupted
    prepared[1].write_bytes(bytes(blob))
    prepared[2].write_bytes(prepared[2].read_bytes()[:-10])  # truncated
    got = pack_on_ray(data, tok, root / "again", cfg, progress=False, work_dir=work)
    assert got["report"]["this_run"]["ray"]["reused"] == 2
    assert shard_bytes(root / "again") == shard_bytes(root / "want")
    assert _without_run(got) == _without_run(want)
    # The same command on a complete pack resumes it (every shard kept): the same manifest.
    got = pack_on_ray(data, tok, root / "again", cfg, progress=False, work_dir=work)
    assert got["report"]["this_run"]["ray"]["reused"] == 5
    assert _without_run(got) == _without_run(want)
    # Other settings: the prepared files are stale, not reused.
    other = PackConfig(**{**cfg.__dict__, "redact": False})
    got = pack_on_ray(data, tok, root / "other", other, progress=False, work_dir=work)
    assert got["report"]["this_run"]["ray"]["reused"] == 0
    assert _without_run(got) == _without_run(
        pack(data, tok, root / "other1", other, progress=False)
    )


@pytest.mark.slow
def test_pack_on_ray_with_the_python_syntax_filter(
    local_ray: None, pack_case: dict[str, Any]
) -> None:
    """The ast.parse filter runs in Python: the tasks read their file in Python too."""
    from codekiln.distributed import pack_on_ray

    root, tok, cfg = (pack_case[k] for k in ("root", "tok", "cfg"))
    data = root / "syntax-data"
    shutil.copytree(pack_case["data"], data)
    with (data / "part-1.jsonl").open("a") as f:
        f.write(json.dumps({"content": "def broken(:\n    pass\n" * 20}) + "\n")
    syntax = PackConfig(**{**cfg.__dict__, "filters": FilterConfig(python_syntax="py3")})
    want = pack(data, tok, root / "syntax-want", syntax, progress=False)
    assert want["report"]["removed"]["python_syntax"] == 1
    assert [p for p, _ in want["report"]["skipped_files"]] == [str(data / "part-4-cut.jsonl.gz")]
    got = pack_on_ray(data, tok, root / "syntax", syntax, progress=False, task_threads=2)
    assert shard_bytes(root / "syntax") == shard_bytes(root / "syntax-want")
    assert _without_run(got) == _without_run(want)


@pytest.mark.slow
def test_pack_on_ray_errors_and_cli(
    local_ray: None,
    pack_case: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from codekiln.distributed import pack_on_ray

    root, data, tok, cfg = (pack_case[k] for k in ("root", "data", "tok", "cfg"))
    strict = PackConfig(**{**cfg.__dict__, "strict": True})
    with pytest.raises(OSError, match=r"part-4-cut\.jsonl\.gz"):
        pack_on_ray(data, tok, root / "strict", strict, progress=False)
    with pytest.raises(ValueError, match="Ray tasks read files"):
        pack_on_ray(["x = 1\n"], tok, root / "texts", cfg, progress=False)
    with pytest.raises(ValueError, match="task_threads"):
        pack_on_ray(data, tok, root / "threads", cfg, progress=False, task_threads=0)
    # The CLI: --ray with the running Ray and the same flags gives the same shards and
    # manifest, with a relative input path (the workers get absolute ones; the manifest names
    # the damaged file as given).
    tok_file = root / "tok.json"
    tok.save(tok_file)
    monkeypatch.chdir(root)
    args = ["data", "pack", "--tokenizer", str(tok_file), "--input", "data", "--no-progress"]
    args += ["--dedup", "near", "--valid-fraction", "0.3", "--shard-tokens", "3000"]
    assert main([*args, "--out", str(root / "cli")]) == 0
    ray_args = ["--ray", "--work-dir", str(root / "cli-work"), "--ray-task-threads", "1"]
    assert main([*args, "--out", str(root / "cli-ray"), *ray_args]) == 0
    assert shard_bytes(root / "cli-ray") == shard_bytes(root / "cli")
    assert "Ray: 5 input files prepared" in capsys.readouterr().out
    assert _without_run(manifest(root / "cli-ray")) == _without_run(manifest(root / "cli"))
    skipped = manifest(root / "cli-ray")["report"]["skipped_files"]
    assert [p for p, _ in skipped] == [str(pathlib.Path("data/part-4-cut.jsonl.gz"))]
    capsys.readouterr()
    assert main([*args, "--out", str(root / "cli2"), "--work-dir", str(root / "w")]) == 1
    assert "--work-dir and --ray-task-threads are used with --ray only" in capsys.readouterr().err
