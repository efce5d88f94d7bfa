"""``codekiln quickstart``: the whole path, end to end, on data every Python install has.

It trains a tokenizer on the running interpreter's own standard library, reports its
statistics on held-out standard-library files, packs the library into train/validation token
shards with the data pipeline (the held-out files are exactly the validation split), trains
the ``tiny`` GPT on the shards (CPU, or CUDA when present), validating before and after,
plots the loss curves, prints greedy and sampled completions of a few prompts, and ends with
bits per byte on the held-out files and a small HumanEval pass@k (a handful of problems run in
the sandbox: a tiny model scores ~0, the point is that the path works). Each step is
a ``_step_*`` function that reads and extends the same :class:`QuickstartResult`.

Default size: the whole standard library without its tests is ~12 MB of Python (CPython
3.11), capped at ``max_bytes``; the tokenizer trains in about a second, packing takes about a
second, and training the default 500 steps of 16 x 256 tokens (2M tokens, ~0.8 epoch) takes
about 8 minutes on 2 CPU cores; validation perplexity falls from ~8,000 (the vocabulary size:
an untrained model guesses uniformly) to under 1/50 of that (58x lower measured).
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

from codekiln._cliargs import Float, Int
from codekiln._io import atomic_write_json
from codekiln._threads import THREADS_HELP

if TYPE_CHECKING:  # imported lazily: the CLI imports this module to build its parser
    from collections.abc import Iterator

    from codekiln.tokenizer import Tokenizer
    from codekiln.tokenizer.stats import TokenizerStats
    from codekiln.train import TrainResult

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
    # ---- training the tiny model (0 steps: stop after packing)
    train_steps: int = 500  # 400 sufficed with the strict <N> rule; merged tokens are longer
    batch_size: int = 16  # sequences per step
    block_size: int = 256  # tokens per sequence
    learning_rate: float = 3e-3
    device: str = "auto"  # CUDA when present
    seed: int = 1337
    humaneval_problems: int = 5  # a small pass@k check of the whole path (0: skip)
    eval_max_tokens: int = 100_000  # held-out tokens for bits per byte
    prompts: tuple[str, ...] = (
        "def fibonacci(n):",
        "import os\n\n\ndef list_python_files(directory):",
        "class Stack:\n    def __init__(self):",
    )


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
    run_dir: str = ""
    train_result: TrainResult | None = None
    plot_path: str = ""
    completions: dict[str, list[str]] = field(default_factory=dict)  # prompt -> [greedy, ...]
    bits_per_byte: float | None = None  # on the held-out files
    humaneval: dict[str, object] = field(default_factory=dict)  # the pass@k summary
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


def _step_train(cfg: QuickstartConfig, res: QuickstartResult, log: Callable[[str], None]) -> None:
    import shutil

    from codekiln.train import TrainConfig, train

    res.run_dir = os.path.join(cfg.out_dir, "run")
    if os.path.exists(os.path.join(res.run_dir, "config.json")):
        shutil.rmtree(res.run_dir)  # the quickstart's own earlier run: start over
    eval_every = max(1, cfg.train_steps // 8)
    tc = TrainConfig(
        data_dir=res.data_dir,
        out_dir=res.run_dir,
        model="tiny",  # vocab_size: the tokenizer's
        block_size=cfg.block_size,
        micro_batch_size=cfg.batch_size,
        max_steps=cfg.train_steps,
        learning_rate=cfg.learning_rate,
        warmup_steps=min(50, cfg.train_steps // 10),
        eval_every=eval_every,
        eval_batches=8,
        checkpoint_every=eval_every,
        keep_last=1,
        log_every=max(1, min(10, cfg.train_steps // 20)),
        device=cfg.device,  # type: ignore[arg-type]
        seed=cfg.seed,
        progress=cfg.progress,
    )
    log(
        f"training the tiny model: {cfg.train_steps} steps of {cfg.batch_size} x "
        f"{cfg.block_size} tokens -> {res.run_dir}"
    )
    result = train(tc)
    res.train_result = result
    if result.initial_val_ppl is not None and result.final_val_ppl is not None:
        log(
            f"validation perplexity {result.initial_val_ppl:,.1f} before training -> "
            f"{result.final_val_ppl:,.1f} after ({result.initial_val_ppl / result.final_val_ppl:,.0f}x "
            f"lower; loss {result.initial_val_loss:.3f} -> {result.final_val_loss:.3f}) in "
            f"{result.seconds:.0f} s"
        )
    if result.interrupted:
        raise KeyboardInterrupt


def _step_plot(cfg: QuickstartConfig, res: QuickstartResult, log: Callable[[str], None]) -> None:
    try:
        from codekiln.train.plot import plot_runs

        res.plot_path = plot_runs([res.run_dir])
    except ValueError as e:  # matplotlib missing: the run is fine without its picture
        log(f"plot: skipped ({e})")
        return
    log(f"loss plot: {res.plot_path}")


def _step_complete(
    cfg: QuickstartConfig, res: QuickstartResult, log: Callable[[str], None]
) -> None:
    from codekiln.generate import complete, load

    model, tok = load(res.run_dir, "best", device=cfg.device)
    for prompt in cfg.prompts:
        greedy = complete(model, tok, prompt, temperature=0, max_new_tokens=64)
        sampled = complete(
            model,
            tok,
            prompt,
            num_samples=2,
            temperature=0.8,
            top_p=0.95,
            max_new_tokens=64,
            seed=cfg.seed,
        )
        res.completions[prompt] = greedy + sampled
        for label, text in zip(("greedy", "sample 1", "sample 2"), greedy + sampled):
            log(f"--- {label} " + "-" * (60 - len(label)))
            log(prompt + text)
    log("-" * 65)


def _step_evaluate(
    cfg: QuickstartConfig, res: QuickstartResult, log: Callable[[str], None]
) -> None:
    from codekiln.evaluate.perplexity import bits_per_byte_on_files

    held_out = res.holdout_files or res.train_files
    bpb = bits_per_byte_on_files(
        res.run_dir, held_out, device=cfg.device, max_tokens=cfg.eval_max_tokens
    )
    res.bits_per_byte = bpb.bits_per_byte
    log(
        f"held-out files: {bpb.bits_per_byte:.3f} bits per byte, perplexity {bpb.perplexity:,.1f} "
        f"({bpb.tokens:,} tokens)"
    )
    if cfg.humaneval_problems <= 0:
        return
    from codekiln.evaluate.humaneval import run_humaneval

    he = run_humaneval(
        res.run_dir,
        "best",
        device=cfg.device,
        num_samples=2,
        ks=(1, 2),
        limit=cfg.humaneval_problems,
        max_new_tokens=96,
        out=os.path.join(res.run_dir, "humaneval.jsonl"),
        seed=cfg.seed,
    )
    res.humaneval = dict(he.summary)
    log(
        f"HumanEval, first {cfg.humaneval_problems} problems, 2 samples each (a tiny model is "
        f"expected to score ~0; this checks the path): pass@1 {he.summary['pass@1']:.3f}, "
        f"pass@2 {he.summary['pass@2']:.3f} -> {os.path.join(res.run_dir, 'humaneval.jsonl')}"
    )


_STEPS = (
    ("corpus", _step_corpus),
    ("tokenizer", _step_tokenizer),
    ("stats", _step_stats),
    ("pack", _step_pack),
    ("train", _step_train),
    ("plot", _step_plot),
    ("complete", _step_complete),
    ("evaluate", _step_evaluate),
)

#: Steps that need a trained model (skipped with ``train_steps=0``).
_MODEL_STEPS = frozenset({"train", "plot", "complete", "evaluate"})


def run_quickstart(
    config: QuickstartConfig | None = None, log: Callable[[str], None] = print
) -> QuickstartResult:
    """Run every quickstart step, writing into ``config.out_dir``."""
    cfg = config or QuickstartConfig()
    os.makedirs(cfg.out_dir, exist_ok=True)
    res = QuickstartResult(out_dir=cfg.out_dir)
    for name, step in _STEPS:
        if name in _MODEL_STEPS and cfg.train_steps == 0:
            continue
        start = time.perf_counter()
        step(cfg, res, log)
        res.seconds[name] = round(time.perf_counter() - start, 3)
    return res


# ------------------------------------------------------------------------------ command line


def add_quickstart_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = QuickstartConfig()
    p = sub.add_parser(
        "quickstart",
        help="the whole path on this Python's standard library: tokenizer, shards, a tiny "
        "model trained, plotted and sampled",
    )
    p.add_argument("--out-dir", default=d.out_dir, metavar="DIR")
    p.add_argument("--vocab-size", type=Int(1), default=d.vocab_size, metavar="N")
    p.add_argument(
        "--max-mb",
        type=Float(0, lo_open=True),
        default=d.max_bytes / 2**20,
        metavar="MB",
        help="cap on the training text in MiB",
    )
    p.add_argument("--threads", type=Int(), default=None, metavar="N", help=THREADS_HELP)
    p.add_argument(
        "--train-steps",
        type=Int(0),
        default=d.train_steps,
        metavar="N",
        help=f"training steps (default {d.train_steps}; more for a better model, 0 to stop "
        "after packing)",
    )
    p.add_argument("--batch-size", type=Int(1), default=d.batch_size, metavar="N")
    p.add_argument("--block-size", type=Int(1), default=d.block_size, metavar="N")
    p.add_argument(
        "--learning-rate", type=Float(0, lo_open=True), default=d.learning_rate, metavar="LR"
    )
    p.add_argument("--device", default=d.device, choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=Int(0), default=d.seed, metavar="S")
    p.add_argument(
        "--humaneval-problems",
        type=Int(0),
        default=d.humaneval_problems,
        metavar="N",
        help=f"HumanEval problems for the final pass@k check (default {d.humaneval_problems}; 0: skip)",
    )
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
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        block_size=args.block_size,
        learning_rate=args.learning_rate,
        device=args.device,
        seed=args.seed,
        humaneval_problems=args.humaneval_problems,
    )
    for flag in ("train_steps", "batch_size", "block_size"):
        value = getattr(args, flag)
        if value < (0 if flag == "train_steps" else 1):
            raise ValueError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    run_quickstart(cfg)
    return 0
