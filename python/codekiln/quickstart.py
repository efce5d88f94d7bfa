"""``codekiln quickstart``: a first end-to-end run on data every Python install has.

Today it trains a tokenizer on the running interpreter's own standard library, reports its
statistics on held-out standard-library files, and packs the library into train/validation
token shards with the data pipeline (the held-out files are exactly the validation split);
later steps (training a small model, sampling from it) are added to :func:`run_quickstart` as
further ``_step_*`` functions that read and extend the same :class:`QuickstartResult`.

Default size: the whole standard library without its tests is ~12 MB of Python (CPython
3.11), capped at ``max_bytes``; training a vocabulary of 8192 on it takes well under a minute
on 2 cores, packing it about a second.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from codekiln._io import atomic_write_json
from codekiln._threads import THREADS_HELP

if TYPE_CHECKING:  # imported lazily: the CLI imports this module to build its parser
    from collections.abc import Iterator

    from codekiln.tokenizer import Tokenizer
    from codekiln.tokenizer.stats import TokenizerStats

__all__ = [
    "QuickstartConfig",
    "QuickstartResult",
    "add_quickstart_command",
    "run_quickstart",
    "stdlib_files",
]

# Directories of the standard library that are not ordinary library code: installed packages
# and the test suites (which also hold deliberately broken and non-UTF-8 files). Extra
# excludes for the shared walker (which already skips hidden directories and __pycache__).
STDLIB_EXCLUDE = ("site-packages", "dist-packages", "test", "tests", "idle_test")


@dataclass
class QuickstartConfig:
    """Settings of the quickstart run; the CLI flags map onto these fields."""

    out_dir: str = "codekiln-quickstart"
    vocab_size: int = 8192
    max_bytes: int = 16 * 1024 * 1024  # cap on the training text (the stdlib is ~12 MB)
    # Files the packer's split puts in "valid" (by a stable hash of their path) are kept out of
    # tokenizer training: the statistics and the model's validation loss use them.
    valid_fraction: float = 0.1
    num_threads: int | None = None  # None: the CPUs this process may use
    progress: bool = True


@dataclass
class QuickstartResult:
    """What the run produced; later steps add their outputs here."""

    out_dir: str
    stdlib_root: pathlib.Path = field(default_factory=pathlib.Path)
    train_files: list[pathlib.Path] = field(default_factory=list)
    holdout_files: list[pathlib.Path] = field(default_factory=list)
    tokenizer_path: str = ""
    tokenizer: Tokenizer | None = None
    stats: TokenizerStats | None = None
    data_dir: str = ""
    manifest: dict[str, object] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def stdlib_files(root: str | os.PathLike[str] | None = None) -> list[pathlib.Path]:
    """The ``.py`` files of the standard library (no installed packages, no test suites), in
    a fixed pseudo-random order (by SHA-256 of the relative path), so that any prefix is a
    varied sample. Found by the shared directory walker (:func:`codekiln.corpus.walk`) with
    :data:`STDLIB_EXCLUDE` as extra excludes."""
    from codekiln.corpus import walk

    base = pathlib.Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    found, _ = walk(base, include=("*.py",), exclude=STDLIB_EXCLUDE)
    found.sort(key=lambda rel: hashlib.sha256(rel.encode()).hexdigest())
    return [base / rel for rel in found]


def _step_corpus(cfg: QuickstartConfig, res: QuickstartResult, log: Callable[[str], None]) -> None:
    from codekiln.data import split_of

    res.stdlib_root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = stdlib_files(res.stdlib_root)
    if not files:
        raise ValueError(
            f"no .py files found in the standard library at {sysconfig.get_paths()['stdlib']}; "
            "train on your own code with: codekiln tokenizer train --input DIR ..."
        )
    size = 0
    for path in files:
        if split_of(cfg.valid_fraction, path=_rel(res, path)) == "valid":
            res.holdout_files.append(path)
        elif size < cfg.max_bytes:
            res.train_files.append(path)
            size += path.stat().st_size
    log(
        f"corpus: {len(res.train_files)} standard-library files ({size / 1e6:.1f} MB) for "
        f"training, {len(res.holdout_files)} held out for the statistics"
    )


def _step_tokenizer(
    cfg: QuickstartConfig, res: QuickstartResult, log: Callable[[str], None]
) -> None:
    from codekiln.tokenizer import Tokenizer

    tok = Tokenizer.train(
        res.train_files,
        vocab_size=cfg.vocab_size,
        num_threads=cfg.num_threads,
        progress=cfg.progress,
    )
    res.tokenizer = tok
    res.tokenizer_path = os.path.join(cfg.out_dir, "tokenizer.json")
    tok.save(res.tokenizer_path)
    report = tok.train_report or {}
    log(
        f"tokenizer: vocab {tok.vocab_size} trained in {report.get('seconds', 0):.1f} s "
        f"({report.get('skipped_files', 0)} files skipped) -> {res.tokenizer_path}"
    )


def _step_stats(cfg: QuickstartConfig, res: QuickstartResult, log: Callable[[str], None]) -> None:
    from codekiln.tokenizer.stats import compute_stats

    assert res.tokenizer is not None
    source = res.holdout_files or res.train_files
    stats = compute_stats(res.tokenizer, source, num_threads=cfg.num_threads, longest=10)
    res.stats = stats
    path = os.path.join(cfg.out_dir, "tokenizer_stats.json")
    atomic_write_json(path, stats.to_dict(), ensure_ascii=False)
    log("statistics on the held-out files:")
    log(stats.format())


def _rel(res: QuickstartResult, path: pathlib.Path) -> str:
    return path.relative_to(res.stdlib_root).as_posix()


def _step_pack(cfg: QuickstartConfig, res: QuickstartResult, log: Callable[[str], None]) -> None:
    from codekiln.data import PackConfig, pack

    def records() -> Iterator[dict[str, str]]:
        for path in [*res.train_files, *res.holdout_files]:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # unreadable or not UTF-8: the tokenizer step skipped it too
            yield {"content": text, "path": _rel(res, path)}

    assert res.tokenizer is not None
    res.data_dir = os.path.join(cfg.out_dir, "data")
    manifest = pack(
        records(),
        res.tokenizer,
        res.data_dir,
        PackConfig(valid_fraction=cfg.valid_fraction, num_threads=cfg.num_threads),
        overwrite=True,  # records from an iterable are never resumed: start over
        progress=cfg.progress,
    )
    res.manifest = manifest
    splits = manifest["splits"]
    report = manifest["report"]
    removed = sum(report["removed"].values())
    log(
        f"shards: train {splits['train']['documents']:,} documents / "
        f"{splits['train']['tokens']:,} tokens, valid {splits['valid']['documents']:,} / "
        f"{splits['valid']['tokens']:,} ({removed} files filtered or deduplicated) -> "
        f"{res.data_dir}"
    )


_STEPS = (
    ("corpus", _step_corpus),
    ("tokenizer", _step_tokenizer),
    ("stats", _step_stats),
    ("pack", _step_pack),
)


def run_quickstart(
    config: QuickstartConfig | None = None, log: Callable[[str], None] = print
) -> QuickstartResult:
    """Run every quickstart step, writing into ``config.out_dir``."""
    cfg = config or QuickstartConfig()
    os.makedirs(cfg.out_dir, exist_ok=True)
    res = QuickstartResult(out_dir=cfg.out_dir)
    for name, step in _STEPS:
        start = time.perf_counter()
        step(cfg, res, log)
        res.seconds[name] = round(time.perf_counter() - start, 3)
    return res


# ------------------------------------------------------------------------------ command line


def add_quickstart_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = QuickstartConfig()
    p = sub.add_parser(
        "quickstart",
        help="train a tokenizer on this Python's standard library, show its statistics and "
        "pack the library into token shards",
    )
    p.add_argument("--out-dir", default=d.out_dir, metavar="DIR")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size, metavar="N")
    p.add_argument(
        "--max-mb",
        type=float,
        default=d.max_bytes / 2**20,
        metavar="MB",
        help="cap on the training text in MiB",
    )
    p.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_quickstart)


def _quickstart(args: argparse.Namespace) -> int:
    if args.max_mb <= 0:
        raise ValueError(f"--max-mb must be positive, got {args.max_mb}")
    cfg = QuickstartConfig(
        out_dir=args.out_dir,
        vocab_size=args.vocab_size,
        max_bytes=int(args.max_mb * 2**20),
        num_threads=args.threads,
        progress=not args.no_progress,
    )
    run_quickstart(cfg)
    return 0
