"""``pack``: clean, deduplicate, split, redact, tokenize and write training shards.

The heavy lifting is one Rust pipeline (``codekiln._core.Packer``, GIL released): files are
decompressed and parsed in Rust; Parquet, ``datasets`` and Python iterables are fed to it in
batches. The output directory holds ``train-NNNNNN.bin`` / ``valid-NNNNNN.bin`` shards,
``tokenizer.json`` and ``MANIFEST.json`` (inputs, settings, filter report, per-shard SHA-256
and counts), written atomically after every shard.

Resuming: re-running the same command (same inputs, settings and tokenizer) on the same
directory keeps the shards the manifest lists whose SHA-256 still matches, and redoes the rest;
the result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from codekiln import __version__, _core, corpus
from codekiln._io import atomic_write_json, is_temp_file
from codekiln._readers import Record, iter_file_records
from codekiln._threads import resolve_threads
from codekiln.corpus import FileInput, RecordInput
from codekiln.data.clean import python_syntax_ok
from codekiln.data.config import FilterConfig, PackConfig
from codekiln.data.shards import ShardError, read_header, sha256_file

__all__ = ["MANIFEST", "PackError", "load_manifest", "pack"]

MANIFEST = "MANIFEST.json"
SHARD_FIELDS = (
    "file",
    "index",
    "documents",
    "tokens",
    "bytes",
    "sha256",
    "redactions",
    "redacted_documents",
)
"""What the manifest records per shard (redaction counts too: a resumed pack's totals are
the sums over its shards, kept and new, like an uninterrupted run's)."""
TOKENIZER_FILE = "tokenizer.json"
FORMAT = "codekiln-shards"
FORMAT_VERSION = 1
SPLITS = ("train", "valid")


_SHARD_NAME = re.compile(r"(train|valid)-[0-9]{6}\.bin")


def is_shard_name(name: str, split: str | None = None) -> bool:
    """Whether ``name`` is exactly a shard file name the packer writes (``train-000012.bin``);
    ``split`` restricts it to one split. A user's ``train-backup.bin`` is not.

    >>> is_shard_name("valid-000003.bin"), is_shard_name("train-old.bin")
    (True, False)
    """
    m = _SHARD_NAME.fullmatch(name)
    return m is not None and (split is None or m.group(1) == split)


class PackError(ValueError):
    """The output directory cannot be used as asked (e.g. it holds a different pack)."""


def load_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``MANIFEST.json`` of a pack directory."""
    path = os.path.join(os.fspath(out_dir), MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no manifest; is this a codekiln pack directory?"
        ) from None
    except ValueError as e:
        raise PackError(f"{path}: not valid JSON ({e})") from None


def _verified_prefix(out_dir: str, old: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per split, the leading shards of ``old`` that are on disk with a matching SHA-256."""
    kept: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        shards = sorted(
            old.get("splits", {}).get(split, {}).get("shards", []), key=lambda s: s["index"]
        )
        good: list[dict[str, Any]] = []
        for i, sh in enumerate(shards):
            path = os.path.join(out_dir, sh["file"])
            if sh["index"] != i or not os.path.isfile(path) or "redactions" not in sh:
                break
            try:
                read_header(path)
            except ShardError:
                break
            if os.path.getsize(path) != sh["bytes"] or sha256_file(path) != sh["sha256"]:
                break
            good.append(sh)
        kept[split] = good
    return kept


LOCK = ".codekiln-pack.lock"
"""The lock file a running pack holds (``flock``) in its output directory."""


@contextlib.contextmanager
def _locked(out_dir: str) -> Iterator[None]:
    """Hold the output directory's lock for the duration of a pack: a second pack into the
    same directory at the same time is a clear error instead of two writers mixing shards.
    The lock is an OS file lock, released when the process ends however it ends; the small
    lock file stays (removing it would race with a waiting pack)."""
    path = os.path.join(out_dir, LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; packs are not guarded
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                raise PackError(
                    f"{out_dir}: another pack is writing to this directory (process {holder}); "
                    "wait for it to finish or use another --out"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _owned_files(out_dir: str, old: dict[str, Any] | None) -> set[str]:
    """The files of ``out_dir`` that an earlier pack's manifest says it wrote: its shards
    (exact shard names only, so a damaged manifest cannot point elsewhere), shard-named files
    that are valid shards of the manifest's tokenizer (written just before a crash, not yet
    listed), and its ``tokenizer.json`` when that file still has the fingerprint the manifest
    recorded."""
    if old is None:
        return set()
    owned = {
        sh["file"]
        for split in old.get("splits", {}).values()
        for sh in split.get("shards", [])
        if isinstance(sh, dict) and is_shard_name(str(sh.get("file")))
    }
    recorded = (old.get("tokenizer") or {}).get("fingerprint")
    if not recorded:
        return owned
    # A crash between a shard's rename and the manifest update leaves a complete shard the
    # manifest does not list yet: a valid shard of this pack's tokenizer is the pack's own.
    for name in os.listdir(out_dir):
        if is_shard_name(name) and name not in owned:
            try:
                header = read_header(os.path.join(out_dir, name))
            except ShardError:
                continue
            if header.fingerprint == recorded:
                owned.add(name)
    if _tokenizer_fingerprint(os.path.join(out_dir, TOKENIZER_FILE)) == recorded:
        owned.add(TOKENIZER_FILE)
    return owned


def _tokenizer_fingerprint(path: str) -> str | None:
    """The fingerprint of the tokenizer file at ``path``; None when missing or unreadable."""
    if not os.path.isfile(path):
        return None
    from codekiln.tokenizer import load_tokenizer

    try:
        return load_tokenizer(path).fingerprint
    except (OSError, ValueError):
        return None


def _check_foreign_files(out_dir: str, owned: set[str], fingerprint: str) -> None:
    """Refuse to start when the directory holds files the pack would overwrite but did not
    write: shard-named files its manifest does not list, or another ``tokenizer.json``."""
    names = os.listdir(out_dir)
    foreign = sorted(n for n in names if is_shard_name(n) and n not in owned)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise PackError(
            f"{out_dir} holds shard files that no {MANIFEST} there lists ({shown}); the pack "
            "would overwrite them: move them away or use another --out"
        )
    if TOKENIZER_FILE in names and TOKENIZER_FILE not in owned:
        existing = _tokenizer_fingerprint(os.path.join(out_dir, TOKENIZER_FILE))
        if existing != fingerprint:
            raise PackError(
                f"{os.path.join(out_dir, TOKENIZER_FILE)} is a different tokenizer than the "
                "one packing (or not a tokenizer file); the pack would replace it: move it "
                "away or use another --out"
            )


def _clear_outputs(out_dir: str, owned: set[str], keep: set[str]) -> None:
    """Delete what an earlier pack wrote and this one does not keep: shards its manifest
    lists, the Rust writer's ``train-NNNNNN.bin.tmp`` files and the temporary files of
    :mod:`codekiln._io` (manifest, tokenizer). Nothing else in the directory is touched."""
    for name in os.listdir(out_dir):
        if name in keep or name == TOKENIZER_FILE:
            continue
        ours = name in owned or (name.endswith(".tmp") and is_shard_name(name[: -len(".tmp")]))
        if ours or is_temp_file(name, MANIFEST) or is_temp_file(name, TOKENIZER_FILE):
            os.remove(os.path.join(out_dir, name))


def _records_through_python(
    sources: list[FileInput | RecordInput],
    text_field: str,
    strict: bool,
    skipped: list[tuple[str, str]],
) -> Iterator[Record | None]:
    for src in sources:
        if isinstance(src, FileInput):
            yield from iter_file_records(
                src.path, src.name, text_field, strict=strict, skipped=skipped
            )
        else:
            yield from src.records()


def pack(
    inputs: object,
    tokenizer: Any,
    out_dir: str | os.PathLike[str],
    config: PackConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool | Callable[[int, int], None] = True,
) -> dict[str, Any]:
    """Pack ``inputs`` into token shards in ``out_dir`` and return the manifest.

    ``inputs`` follows the one input rule of :mod:`codekiln.corpus` (the same as
    :meth:`codekiln.Tokenizer.train`): one path (file, directory, glob), an iterable of
    :class:`os.PathLike` paths, an iterable of ``str`` texts, records (dicts), Hugging Face
    datasets, or a list mixing paths, datasets and nested iterables of records. Directories
    are walked for ``config.include`` minus ``config.exclude``. ``tokenizer``: a
    :class:`codekiln.Tokenizer` or the path of a saved one (read by
    :func:`codekiln.tokenizer.load_tokenizer`); it must have ``<|endoftext|>``.

    An existing pack in ``out_dir`` made with the same inputs, settings and tokenizer is
    resumed; a different one is an error unless ``overwrite=True``. The packer only ever
    deletes or replaces what a manifest in ``out_dir`` says a pack wrote: shard-named files
    no manifest lists, or a different ``tokenizer.json``, are an error (even with
    ``overwrite``), and every other file is left alone. A second pack into a directory that
    a running pack holds (its ``.codekiln-pack.lock``) is an error.
    ``progress``: a tqdm bar (``True``), nothing (``False``) or ``callback(documents, bytes)``.
    """
    plan = plan_pack(inputs, tokenizer, out_dir, config)
    return run_planned(plan, _feed_sources, overwrite=overwrite, progress=progress)


@dataclasses.dataclass
class PackPlan:
    """What a pack is, decided before anything in the output directory is read or written:
    the tokenizer, the settings, the resolved inputs and the key a resumable pack matches."""

    out: str
    tok: Any
    eot: int
    cfg: PackConfig
    sources: list[FileInput | RecordInput]
    walk_skipped: list[Any]
    described: list[dict[str, Any]]
    settings_key: str
    resumable: bool


Feed = Callable[
    [Any, "PackPlan", Callable[[int, int], None] | None], tuple[list[Any], dict[str, Any]]
]
"""Feeds a packer: ``feed(packer, plan, progress)`` returns the files skipped outside the Rust
readers and what this run adds to the manifest's ``report.this_run``."""


def plan_pack(
    inputs: object, tokenizer: Any, out_dir: str | os.PathLike[str], config: PackConfig | None
) -> PackPlan:
    """Load the tokenizer, resolve the inputs (the one input rule) and compute the settings
    key; creates ``out_dir`` if needed (see :func:`pack` for the arguments)."""
    cfg = config or PackConfig()
    from codekiln.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer)
    eot = tok.eot_id
    if eot is None:
        raise ValueError("the tokenizer has no <|endoftext|> special token to separate documents")
    resolved = corpus.resolve(
        inputs, include=cfg.include, exclude=cfg.exclude, text_field=cfg.text_field
    )
    sources = resolved.inputs
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    described = [s.describe() for s in sources]
    resumable = all(d.get("kind") == "file" or d.get("identity") for d in described)
    key_material = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tokenizer": tok.fingerprint,
        "settings": cfg.output_settings(),
        "inputs": described,
    }
    settings_key = hashlib.sha256(
        json.dumps(key_material, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return PackPlan(
        out, tok, eot, cfg, sources, resolved.skipped, described, settings_key, resumable
    )


def core_settings(cfg: PackConfig, num_threads: int) -> dict[str, Any]:
    """The settings every core packing call takes (``Packer``, ``Preparer``), in one
    place so that packing here and preparing on Ray cannot drift apart."""
    near = cfg.dedup == "near"
    return {
        "num_threads": num_threads,
        "filters": cfg.filters.to_core(),
        "exact_dedup": cfg.dedup != "none",
        "near_threshold": cfg.near_threshold if near else None,
        "near_num_perm": cfg.near_num_perm,
        "near_ngram": cfg.near_ngram,
        "redact": cfg.redact,
        "valid_fraction": cfg.valid_fraction,
        "text_field": cfg.text_field,
        "batch_bytes": cfg.batch_bytes,
        "strict": cfg.strict,
    }


def run_planned(
    plan: PackPlan,
    feed: Feed,
    *,
    overwrite: bool,
    progress: bool | Callable[[int, int], None],
) -> dict[str, Any]:
    """Run a planned pack with ``feed`` (:func:`pack` reads the sources here; packing on
    Ray feeds prepared files) under the output directory's lock: the same resume, overwrite
    and manifest rules for both."""
    with _locked(plan.out):
        return _run_locked(plan, feed, overwrite=overwrite, progress=progress)


def _run_locked(
    plan: PackPlan,
    feed: Feed,
    *,
    overwrite: bool,
    progress: bool | Callable[[int, int], None],
) -> dict[str, Any]:
    out, tok, eot, cfg = plan.out, plan.tok, plan.eot, plan.cfg
    settings_key = plan.settings_key
    # ---- resume or start over
    kept: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    manifest_path = os.path.join(out, MANIFEST)
    old = load_manifest(out) if os.path.exists(manifest_path) else None
    owned = _owned_files(out, old)
    _check_foreign_files(out, owned, tok.fingerprint)
    if old is not None:
        if old.get("settings_key") == settings_key and plan.resumable:
            kept = _verified_prefix(out, old)
        elif not overwrite:
            raise PackError(
                f"{out} already holds a pack made with different inputs, settings or tokenizer "
                "(or from inputs that cannot be resumed); use another directory or overwrite=True "
                "(--overwrite, which deletes only the files its manifest lists)"
            )
    _clear_outputs(out, owned, {sh["file"] for shards in kept.values() for sh in shards})

    threads = resolve_threads(cfg.num_threads)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "status": "running",
        "created_by": f"codekiln {__version__}",
        "settings_key": settings_key,
        "tokenizer": {
            "file": "tokenizer.json",
            "fingerprint": tok.fingerprint,
            "vocab_size": tok.vocab_size,
            "eot_id": eot,
            "token_dtype": "uint16" if tok.vocab_size <= 1 << 16 else "uint32",
        },
        "inputs": plan.described,
        "settings": {**cfg.output_settings(), "num_threads": threads},
        "splits": {s: {"shards": list(kept[s])} for s in SPLITS},
    }
    atomic_write_json(manifest_path, manifest)

    def on_shard(info: dict[str, Any]) -> None:
        entry = {k: info[k] for k in SHARD_FIELDS}
        manifest["splits"][info["split"]]["shards"].append(entry)
        atomic_write_json(manifest_path, manifest)

    packer = _core.Packer(
        out,
        tok.core_encoder(),
        eot,
        bytes.fromhex(tok.fingerprint),
        shard_tokens=cfg.shard_tokens,
        resume=[(len(kept[s]), sum(sh["documents"] for sh in kept[s])) for s in SPLITS],
        on_shard=on_shard,
        **core_settings(cfg, threads),
    )
    bar, callback = _progress(progress)
    t0 = time.perf_counter()
    # The tokenizer file (~30 ms to serialize and fsync at 32k) is written while the Rust
    # threads pack; the manifest only says "complete" once it is in place.
    with concurrent.futures.ThreadPoolExecutor(1, "codekiln-save-tokenizer") as saver:
        saved = saver.submit(tok.save, os.path.join(out, TOKENIZER_FILE))
        try:
            python_skipped, run_facts = feed(packer, plan, callback)
            report = packer.finish()
        except BaseException:
            packer.abort()
            raise
        finally:
            if bar is not None:
                bar.close()
        saved.result()
    seconds = time.perf_counter() - t0

    resumed = {}
    for s in SPLITS:
        shards = manifest["splits"][s]["shards"]
        rep = report.pop(s)
        resumed[s] = rep["resumed_documents"]
        manifest["splits"][s] = {
            "documents": rep["documents"],
            "source_bytes": rep["bytes"],
            "tokens": sum(sh["tokens"] for sh in shards),
            "shards": shards,
        }
    # Redaction totals are sums over the shards (kept ones included) so that a resumed pack's
    # manifest equals an uninterrupted one's; what describes this run only is in "this_run".
    every = [sh for s in SPLITS for sh in manifest["splits"][s]["shards"]]
    report["redactions"] = {
        k: sum(sh["redactions"].get(k, 0) for sh in every) for k in report["redactions"]
    }
    report["redacted_documents"] = sum(sh["redacted_documents"] for sh in every)
    # Files skipped by the Rust readers, by the Python reader (the ast.parse path) and while
    # walking directories (FIFOs, broken links, never opened): one list, one policy.
    extra = [*python_skipped, *plan.walk_skipped]
    if extra:
        report["skipped_files"] = [*report["skipped_files"], *extra]
    report["this_run"] = {
        "seconds": round(seconds, 3),
        "mb_per_second": round(report["bytes_in"] / 1e6 / seconds, 3) if seconds else None,
        "resumed_documents": resumed,
        **run_facts,
    }
    manifest["report"] = report
    manifest["status"] = "complete"
    atomic_write_json(manifest_path, manifest)
    return manifest


def _progress(
    progress: bool | Callable[[int, int], None],
) -> tuple[Any, Callable[[int, int], None] | None]:
    if callable(progress):
        return None, progress
    if not progress:
        return None, None
    from tqdm.auto import tqdm

    # Counts are cumulative per reader (Rust files, each Python source); the bar shows the
    # decompressed source bytes read, so it has no total.
    bar = tqdm(unit="B", unit_scale=True, desc="packing", dynamic_ncols=True)
    last = [0]

    def update(_docs: int, nbytes: int) -> None:
        bar.update(nbytes - last[0] if nbytes >= last[0] else nbytes)
        last[0] = nbytes

    return bar, update


def _feed_sources(
    packer: Any, plan: PackPlan, callback: Callable[[int, int], None] | None
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Feed every source to the packer; returns the files the Python reader skipped."""
    sources, cfg = plan.sources, plan.cfg
    skipped: list[tuple[str, str]] = []
    syntax = cfg.filters.python_syntax
    if syntax == "off":
        pending_files: list[tuple[str, str]] = []
        for src in sources:
            if isinstance(src, FileInput):
                pending_files.append((src.path, src.name))
                continue
            if pending_files:
                packer.add_files(pending_files, callback)
                pending_files = []
            _feed_records(packer, src.records(), cfg.filters, cfg.batch_bytes, callback)
        if pending_files:
            packer.add_files(pending_files, callback)
    else:
        skipped = feed_through_python(packer, sources, cfg, callback)
    return skipped, {}


def feed_through_python(
    target: Any,
    sources: list[FileInput | RecordInput],
    cfg: PackConfig,
    callback: Callable[[int, int], None] | None = None,
) -> list[tuple[str, str]]:
    """Feed ``sources`` read in Python, through the ``python_syntax`` filter, to a packer or a
    preparer (``add_records``, ``count_invalid``, ``count_removed``); returns the files the
    Python reader could not read to their end."""
    skipped: list[tuple[str, str]] = []
    _feed_records(
        target,
        _records_through_python(sources, cfg.text_field, cfg.strict, skipped),
        cfg.filters,
        cfg.batch_bytes,
        callback,
    )
    return skipped


def _feed_records(
    packer: Any,
    records: Iterator[Record | None],
    filters: FilterConfig,
    batch_bytes: int,
    callback: Callable[[int, int], None] | None,
) -> None:
    batch: list[Record] = []
    size = 0
    seen_docs = seen_bytes = 0
    invalid = 0
    removed = removed_bytes = 0
    for rec in records:
        if rec is None:
            invalid += 1
            continue
        seen_docs += 1
        seen_bytes += len(rec[0])
        if filters.python_syntax != "off" and not python_syntax_ok(rec[0], filters.python_syntax):
            removed += 1
            removed_bytes += len(rec[0].encode("utf-8", "surrogatepass"))
            continue
        batch.append(rec)
        size += len(rec[0]) + 64
        if size >= batch_bytes:
            invalid += _add_records(packer, batch)
            batch, size = [], 0
            if callback is not None:
                callback(seen_docs, seen_bytes)
    if batch:
        invalid += _add_records(packer, batch)
    if invalid:
        packer.count_invalid(invalid)
    if removed:
        packer.count_removed("python_syntax", removed, removed_bytes)
    if callback is not None:
        callback(seen_docs, seen_bytes)


def _add_records(packer: Any, batch: list[Record]) -> int:
    """Feed a batch; returns how many records were dropped as not encodable (lone surrogates,
    which no UTF-8 file can contain)."""
    try:
        packer.add_records(batch)
        return 0
    except UnicodeEncodeError:
        good = []
        for rec in batch:
            try:
                for field in rec:
                    if field is not None:
                        field.encode("utf-8")
            except UnicodeEncodeError:
                continue
            good.append(rec)
        packer.add_records(good)
        return len(batch) - len(good)


def config_from_dict(d: dict[str, Any]) -> PackConfig:
    """Rebuild a :class:`PackConfig` from a manifest's ``settings``."""
    d = dict(d)
    d.pop("num_threads", None)
    f = d.pop("filters", {})
    f["license_allow"] = tuple(f.get("license_allow", ()))
    fields = {x.name for x in dataclasses.fields(PackConfig)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields}
    return PackConfig(filters=FilterConfig(**f), **kw)
