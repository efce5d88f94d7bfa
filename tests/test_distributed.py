"""Counting on Ray (``codekiln.distributed``), on a local Ray with 2 CPUs: the tokenizer must
be the one a single-process run trains. Ray's start-up is slow on 2 cores, so one module-wide
Ray serves every test here."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest
from codekiln import Tokenizer
from codekiln.cli import main

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
