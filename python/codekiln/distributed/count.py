"""Piece counting as Ray tasks (map: one count file per input file) and training from them
(reduce: a streaming k-way merge inside :func:`codekiln.tokenizer.counts.train_from_counts`).

Counts are sums and count files merge exactly, so the result does not depend on how the
files are spread over tasks or machines, nor on the order tasks finish: it is the tokenizer
one :meth:`codekiln.Tokenizer.train` pass over the same files gives.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from codekiln import corpus
from codekiln.corpus import FileInput
from codekiln.tokenizer.format import ENDOFTEXT, NEWLINE_TOKEN

__all__ = ["count_on_ray", "train_on_ray"]

PathLike = str | os.PathLike[str]


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "Ray is not installed: pip install 'codekiln[ray]' (needed for --ray)"
        ) from None
    return ray


def connect(address: str | None) -> Any:
    """Ray, initialized: an already initialized Ray is used as it is; otherwise
    ``ray.init(address)`` (``None``: a local Ray, or the cluster in ``RAY_ADDRESS``;
    ``"auto"``: the cluster this machine belongs to; ``"ray://HOST:10001"``: a remote one)."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


def _files(
    source: object, include: Iterable[str] | None, exclude: Iterable[str], text_field: str
) -> list[str]:
    resolved = corpus.resolve(source, include=include, exclude=exclude, text_field=text_field)
    files = []
    for item in resolved.inputs:
        if not isinstance(item, FileInput):
            raise ValueError(
                "Ray tasks read files: pass paths (files, directories, globs) on a shared "
                f"filesystem, not {type(item).__name__} inputs (texts, records, Parquet)"
            )
        files.append(os.path.abspath(item.path))
    if not files:
        raise ValueError("no input files to count")
    return files


def _count_task(
    path: str, out: str, settings: dict[str, Any]
) -> dict[str, Any]:  # runs on a Ray worker
    from codekiln.tokenizer.counts import count_pieces

    return count_pieces([pathlib.Path(path)], out, progress=False, **settings)


def count_on_ray(
    source: object,
    counts_dir: PathLike,
    *,
    pattern: str = "code",
    newline: str | None = NEWLINE_TOKEN,
    newline_rule: str = "merged",
    text_field: str = "content",
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    threads_per_task: int = 1,
    max_memory: int | str | None = None,
    address: str | None = None,
) -> list[str]:
    """Count every input file in its own Ray task (``threads_per_task`` CPUs each) into
    ``counts_dir/counts-NNNNNN.bin``; returns the count files in input order.

    ``source`` is resolved on the driver (the one input rule; paths only) and must name paths
    the workers can read; ``counts_dir`` must be shared too. ``max_memory`` bounds each
    task's tables (spilling under the system temp dir of the worker).
    """
    if isinstance(threads_per_task, bool) or not isinstance(threads_per_task, int):
        raise TypeError("threads_per_task must be an int")
    if threads_per_task < 1:
        raise ValueError(f"threads_per_task must be at least 1, got {threads_per_task}")
    files = _files(source, include, exclude, text_field)
    os.makedirs(counts_dir, exist_ok=True)
    ray = connect(address)
    task = ray.remote(num_cpus=threads_per_task, max_retries=2)(_count_task)
    settings = dict(
        pattern=pattern,
        newline=newline,
        newline_rule=newline_rule,
        text_field=text_field,
        num_threads=threads_per_task,
        max_memory=max_memory,
    )
    outs = [
        os.path.join(os.path.abspath(counts_dir), f"counts-{i:06d}.bin") for i in range(len(files))
    ]
    ray.get([task.remote(f, o, settings) for f, o in zip(files, outs, strict=True)])
    return outs


@contextlib.contextmanager
def driver_dir(path: PathLike | None, prefix: str) -> Iterator[str]:
    """``path`` made if missing, as an absolute path (tasks on other nodes get it), or a
    temporary directory on this machine (``prefix``), removed afterwards."""
    if path is not None:
        os.makedirs(path, exist_ok=True)
        yield os.path.abspath(path)
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield tmp


def train_on_ray(
    source: object,
    *,
    vocab_size: int,
    pattern: str = "code",
    newline: str | None = NEWLINE_TOKEN,
    newline_rule: str = "merged",
    special_tokens: Iterable[str] = (ENDOFTEXT,),
    min_frequency: int = 2,
    min_piece_count: int = 1,
    text_field: str = "content",
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    threads_per_task: int = 1,
    max_memory: int | str | None = None,
    counts_dir: PathLike | None = None,
    num_threads: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> Any:
    """:meth:`codekiln.Tokenizer.train` with the counting mapped over Ray tasks
    (:func:`count_on_ray`) and the merge phase on this machine: the same tokenizer.

    ``counts_dir`` keeps the count files (default: a temporary directory, removed; on a
    cluster give a shared path). ``num_threads`` is for the merge phase here.
    """
    from codekiln.tokenizer.counts import train_from_counts

    with driver_dir(counts_dir, "codekiln-counts-") as d:
        files = count_on_ray(
            source,
            d,
            pattern=pattern,
            newline=newline,
            newline_rule=newline_rule,
            text_field=text_field,
            include=include,
            exclude=exclude,
            threads_per_task=threads_per_task,
            max_memory=max_memory,
            address=address,
        )
        tok = train_from_counts(
            files,
            vocab_size=vocab_size,
            special_tokens=special_tokens,
            min_frequency=min_frequency,
            min_piece_count=min_piece_count,
            num_threads=num_threads,
            progress=progress,
        )
    if counts_dir is None and tok.train_report is not None:
        tok.train_report["from_counts"] = f"{len(files)} Ray tasks (removed)"
    return tok
