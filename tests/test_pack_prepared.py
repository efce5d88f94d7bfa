"""Prepared files (``rust/pack/prepared.rs``, the Ray packer's pass 1) without Ray: preparing
each input file apart, in any order, then feeding the prepared files in input order must give
the shards of :func:`codekiln.data.pack` over the same files, whatever the documents, their
spread over files, the dedup mode and the thread counts."""

from __future__ import annotations

import json
import pathlib
import random

import pytest
from codekiln import Tokenizer, _core
from codekiln.data import PackConfig, pack
from codekiln.data.pack import core_settings
from data_helpers import make_docs, shard_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

POOL = make_docs(40, seed=5)
POOL[7]["content"] += "contact = 'dev@example.org'\n"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train([d["content"] for d in POOL[:12]], vocab_size=330, progress=False)


def _prepare_all(
    tok: Tokenizer, files: list[pathlib.Path], work: pathlib.Path, cfg: PackConfig, threads: int
) -> list[tuple[str, bytes]]:
    """Prepare every file (in a shuffled order: tasks finish in any order) with the
    per-file key the Ray packer would use; return the (path, key) pairs in input order."""
    order = list(range(len(files)))
    random.Random(len(files)).shuffle(order)
    out: list[tuple[str, bytes]] = [("", b"")] * len(files)
    for i in order:
        key = bytes([i]) * 32
        path = str(work / f"prepared-{i}.bin")
        prep = _core.Preparer(
            path,
            key,
            tok.core_encoder(),
            tok.eot_id,
            bytes.fromhex(tok.fingerprint),
            **core_settings(cfg, threads),
        )
        prep.add_file(str(files[i]), files[i].name, str(files[i]))
        prep.finish()
        out[i] = (path, key)
    return out


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    picks=st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=30),
    cuts=st.lists(st.integers(1, 29), max_size=4),
    dedup=st.sampled_from(["exact", "near", "none"]),
    valid=st.sampled_from([0.0, 0.3]),
    threads=st.sampled_from([(1, 2), (2, 1)]),
)
def test_prepared_files_give_the_packers_shards(
    tok: Tokenizer,
    tmp_path_factory: pytest.TempPathFactory,
    picks: list[int],
    cuts: list[int],
    dedup: str,
    valid: float,
    threads: tuple[int, int],
) -> None:
    root = tmp_path_factory.mktemp("prep")
    docs = [dict(POOL[i]) for i in picks]  # repeated picks: exact duplicates across files
    for j, d in enumerate(docs):
        if j % 5 == 4:  # a near duplicate of the pool document
            d["content"] = d["content"].replace("import os", "import sys")
    bounds = sorted({c for c in cuts if c < len(docs)})
    parts = [docs[a:b] for a, b in zip([0, *bounds], [*bounds, len(docs)], strict=True)]
    files = []
    for i, part in enumerate(parts):
        f = root / f"in-{i}.jsonl"
        f.write_text("".join(json.dumps(d) + "\n" for d in part))
        files.append(f)
    prep_threads, pack_threads = threads
    cfg = PackConfig(
        dedup=dedup, valid_fraction=valid, shard_tokens=2_500, num_threads=pack_threads
    )
    want = pack(files, tok, root / "want", cfg, progress=False)
    work = root / "work"
    work.mkdir()
    prepared = _prepare_all(tok, files, work, cfg, prep_threads)
    packer = _core.Packer(
        str(root / "got"),
        tok.core_encoder(),
        tok.eot_id,
        bytes.fromhex(tok.fingerprint),
        shard_tokens=cfg.shard_tokens,
        resume=None,
        on_shard=None,
        **core_settings(cfg, pack_threads),
    )
    packer.add_prepared(prepared)
    report = packer.finish()
    assert shard_bytes(root / "got") == shard_bytes(root / "want")
    got_removed = report["removed"]
    assert got_removed == want["report"]["removed"]
    for s in ("train", "valid"):
        assert report[s]["documents"] == want["splits"][s]["documents"]


def test_prepared_file_errors(tok: Tokenizer, tmp_path: pathlib.Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps(d) + "\n" for d in POOL[:5]))
    cfg = PackConfig()
    (path, key) = _prepare_all(tok, [f], tmp_path, cfg, 1)[0]
    summary = _core.check_prepared(path, key)
    assert summary["documents_in"] == 5 and summary["encoded_documents"] == 5
    with pytest.raises(OSError, match="stale") as e:
        _core.check_prepared(path, b"x" * 32)
    assert path in str(e.value)
    with pytest.raises(ValueError, match="32 bytes"):
        _core.check_prepared(path, b"short")
    data = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(data[:-1])
    with pytest.raises(OSError, match="truncated or corrupt"):
        _core.check_prepared(path, key)
    pathlib.Path(path).write_bytes(b"")
    with pytest.raises(OSError, match="not a valid prepared file"):
        _core.check_prepared(path, key)
    with pytest.raises(FileNotFoundError):
        _core.check_prepared(str(tmp_path / "missing.bin"), key)
    prep = _core.Preparer(
        str(tmp_path / "p.bin"),
        key,
        tok.core_encoder(),
        tok.eot_id,
        bytes.fromhex(tok.fingerprint),
        **core_settings(cfg, 1),
    )
    prep.finish()
    with pytest.raises(ValueError, match="already finished"):
        prep.finish()
