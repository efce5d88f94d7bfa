"""Packing on Ray: :func:`pack_on_ray` gives the shards and ``MANIFEST.json`` that
:func:`codekiln.data.pack` writes for the same inputs, with the per-document work spread over
Ray tasks.

Two passes (``docs/scale.md``):

1. **Prepare, on Ray**, one task per input file: the packer's per-document stages -- filters,
   exact-dedup key, MinHash signature, split, redaction, tokenization -- written to a
   *prepared file* in the work directory (``rust/pack/prepared.rs``: checksummed, stamped
   with a key of the tokenizer, the output settings and the input file's identity). A valid
   prepared file from an earlier run is reused, so a re-run after a failure redoes only the
   missing files.
2. **Decide and write, here**: the prepared files are fed in input order to the one-machine
   packer (its own decider and writer threads, the same code as :func:`codekiln.data.pack`):
   exact and near dedup see every document in input order, so the output is the one-machine
   output for any number of workers and any order in which tasks finish.

The price: duplicates are tokenized too (pass 1 cannot know them), counted in the
manifest's ``report.this_run.ray``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

from codekiln import _core
from codekiln._io import atomic_path
from codekiln.corpus import FileInput
from codekiln.data.config import PackConfig
from codekiln.data.pack import (
    Feed,
    PackPlan,
    core_settings,
    feed_through_python,
    plan_pack,
    run_planned,
)
from codekiln.distributed.count import connect, driver_dir

__all__ = ["pack_on_ray"]

PREPARED_FORMAT = "codekiln-prepared"
PREPARED_VERSION = 1


def _file_key(plan: PackPlan, path: str, described: dict[str, Any]) -> bytes:
    """What a prepared file must have been made with to be reused: the tokenizer, the
    settings that change the output (``strict`` too: a skipped damaged file must not be
    reused by a ``strict`` run), the input's path and identity (size, mtime)."""
    material = {
        "format": PREPARED_FORMAT,
        "version": PREPARED_VERSION,
        "tokenizer": plan.tok.fingerprint,
        "settings": plan.cfg.output_settings(),
        "strict": plan.cfg.strict,
        "path": path,
        "input": described,
    }
    return hashlib.sha256(
        json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    ).digest()


def _prepare_task(
    src: FileInput, shown: str, out: str, key: bytes, tok: Any, cfg: PackConfig, threads: int
) -> dict[str, Any]:  # runs on a Ray worker
    if os.path.exists(out):
        try:
            return {**_core.check_prepared(out, key), "reused": True}
        except OSError:
            pass  # damaged or stale: redo it
    with atomic_path(out) as tmp:
        prep = _core.Preparer(
            tmp,
            key,
            tok.core_encoder(),
            tok.eot_id,
            bytes.fromhex(tok.fingerprint),
            **core_settings(cfg, threads),
        )
        if cfg.filters.python_syntax == "off":
            prep.add_file(src.path, src.name, shown)
        else:
            # As the one-machine packer does: read in Python, filter with ast.parse.
            for _, why in feed_through_python(prep, [src], cfg):
                prep.count_skipped(shown, why)
        summary = prep.finish()
    return {**summary, "reused": False}


def pack_on_ray(
    inputs: object,
    tokenizer: Any,
    out_dir: str | os.PathLike[str],
    config: PackConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool | Callable[[int, int], None] = True,
    address: str | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    task_threads: int = 1,
) -> dict[str, Any]:
    """:func:`codekiln.data.pack` with the per-document work on Ray: the same shard bytes and
    ``MANIFEST.json`` (only ``report.this_run`` differs: it describes the run, here with a
    ``ray`` entry), and the same rules for ``out_dir`` (resume, ``overwrite``, the lock).

    ``inputs``: paths only (files, directories, globs; the one input rule of
    :mod:`codekiln.corpus`, resolved here), which every Ray node must be able to open.
    Each input file becomes one task of ``task_threads`` CPUs that writes a prepared file into
    ``work_dir`` (default: a temporary directory here, removed afterwards, which only works
    when the tasks run on this machine; on a cluster give a shared path). Prepared files in
    ``work_dir`` that are valid for these inputs, settings and tokenizer are reused, so
    re-running after a failure redoes only what is missing; delete the directory when the
    pack is done. The decisions (dedup, split, shard boundaries) and the shard writing run
    here with ``config.num_threads`` threads. ``address``: see
    :func:`codekiln.distributed.count.connect`. With ``config.filters.python_syntax`` the tasks
    read their file in Python and filter with ``ast.parse``, as the one-machine packer does.

    >>> from codekiln.distributed import pack_on_ray  # doctest: +SKIP
    >>> m = pack_on_ray("/shared/corpus/", "tok.json", "/shared/packed",
    ...                 address="auto", work_dir="/shared/pack-work")  # doctest: +SKIP
    """
    if isinstance(task_threads, bool) or not isinstance(task_threads, int):
        raise TypeError("task_threads must be an int")
    if task_threads < 1:
        raise ValueError(f"task_threads must be at least 1, got {task_threads}")
    cfg = config or PackConfig()
    plan = plan_pack(inputs, tokenizer, out_dir, cfg)
    for src in plan.sources:
        if not isinstance(src, FileInput):
            raise ValueError(
                "Ray tasks read files: pass paths (files, directories, globs) on a shared "
                f"filesystem, not {type(src).__name__} inputs (texts, records, Parquet)"
            )
    if not plan.sources:
        raise ValueError("no input files to pack")
    with driver_dir(work_dir, "codekiln-pack-") as work:
        feed = _ray_feed(work, address, task_threads)
        return run_planned(plan, feed, overwrite=overwrite, progress=progress)


def _ray_feed(work: str, address: str | None, task_threads: int) -> Feed:
    """Pass 1 on Ray (prepared files in ``work``), then pass 2 into the packer."""

    def feed(
        packer: Any, plan: PackPlan, callback: Callable[[int, int], None] | None
    ) -> tuple[list[Any], dict[str, Any]]:
        ray = connect(address)
        task = ray.remote(num_cpus=task_threads, max_retries=2)(_prepare_task)
        tok = ray.put(plan.tok)
        jobs = []
        for src, described in zip(plan.sources, plan.described, strict=True):
            assert isinstance(src, FileInput)
            path = os.path.abspath(src.path)
            key = _file_key(plan, path, described)
            out = os.path.join(work, f"prepared-{key.hex()[:24]}.bin")
            task_src = FileInput(path=path, name=src.name)
            ref = task.remote(task_src, src.path, out, key, tok, plan.cfg, task_threads)
            jobs.append((out, key, ref))
        refs = [ref for _, _, ref in jobs]
        summaries: dict[Any, dict[str, Any]] = {}
        t0 = time.perf_counter()
        try:
            pending = list(refs)
            docs = nbytes = 0
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    s = ray.get(ref)
                    summaries[ref] = s
                    docs += s["documents_in"]
                    nbytes += s["bytes_in"]
                if callback is not None:
                    callback(docs, nbytes)
        except BaseException as e:
            # The other tasks are left to finish, not cancelled: their prepared files are
            # reused by the re-run, and ray.cancel() races with a task's completion (ray 2.60
            # then aborts the driver: "Tried to complete task that was not pending", seen in
            # this module's tests about one run in five).
            # A task's OSError / ValueError (a damaged input with strict, an unreadable file)
            # is raised as itself: its message names the file, without the worker's traceback.
            cause = getattr(e, "cause", None)
            if isinstance(e, ray.exceptions.RayTaskError) and isinstance(
                cause, OSError | ValueError
            ):
                raise cause from None
            raise
        prepare_seconds = time.perf_counter() - t0
        # Pass 2: in input order through this machine's decider and writer.
        t0 = time.perf_counter()
        packer.add_prepared([(out, key) for out, key, _ in jobs])
        feed_seconds = time.perf_counter() - t0
        every = [summaries[ref] for ref in refs]
        facts = {
            "tasks": len(every),
            "reused": sum(s["reused"] for s in every),
            "task_threads": task_threads,
            "prepare_seconds": round(prepare_seconds, 3),
            "feed_seconds": round(feed_seconds, 3),
            "encoded_documents": sum(s["encoded_documents"] for s in every),
            "encoded_tokens": sum(s["encoded_tokens"] for s in every),
        }
        return [], {"ray": facts}

    return feed
