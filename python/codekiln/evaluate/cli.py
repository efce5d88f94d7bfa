"""``codekiln eval perplexity`` and ``codekiln eval humaneval``.

Both load the model of ``--run`` through :mod:`codekiln.checkpoint`, print a summary table
(``--json``: one JSON object instead) and append one line to ``RUN/evals.jsonl`` (the
checkpoint, the settings and the figures; ``--no-record`` to skip), which ``codekiln export hf``
puts in the model card. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time
from typing import Any

from codekiln._cliargs import Float, Int
from codekiln.corpus import add_include_exclude, include_exclude

__all__ = ["EVALS_FILE", "add_eval_commands", "record_evaluation"]

EVALS_FILE = "evals.jsonl"


def add_eval_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "eval",
        help="evaluate a trained model (perplexity / bits per byte, HumanEval pass@k)",
        description="Evaluate the model of a run directory.",
    )
    esub = p.add_subparsers(dest="eval_command", required=True, metavar="EVALUATION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--run", required=True, help="run directory written by `codekiln train`")
        q.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path")
        q.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
        q.add_argument("--json", action="store_true", help="print the figures as one JSON object")
        q.add_argument(
            "--no-record", action="store_true", help=f"do not append to RUN/{EVALS_FILE}"
        )
        q.add_argument("--no-progress", action="store_true", help="no progress bars")

    q = esub.add_parser(
        "perplexity",
        help="loss, perplexity and bits per byte on packed shards or raw files",
        description="Loss, perplexity and bits per byte (tokenizer-independent) of the model "
        "on a packed split (--data) or on raw files encoded on the fly (--input). Without "
        "either, the run's own pack directory (train.data_dir in RUN/config.json).",
    )
    common(q)
    src = q.add_mutually_exclusive_group()
    src.add_argument(
        "--data",
        help="pack directory written by `codekiln data pack` (default: the run's training data)",
    )
    src.add_argument(
        "--input", nargs="+", help="files, directories, globs or .jsonl (the corpus rule)"
    )
    q.add_argument("--split", default="valid", help="split of --data (default: valid)")
    q.add_argument("--text-field", default="content", help="JSON field holding the text")
    add_include_exclude(q)
    q.add_argument("--max-tokens", type=Int(1), default=None, help="evaluate at most this many")
    q.add_argument("--block-size", type=Int(1), default=None, help="default: the model's")
    q.add_argument("--batch-size", type=Int(1), default=8, help="blocks per forward pass")
    q.set_defaults(func=_perplexity)

    h = esub.add_parser(
        "humaneval",
        help="HumanEval pass@k, the generated code run in a sandbox",
        description="Generate --samples completions per HumanEval problem, run the unit tests "
        "in a sandbox (own process, rlimits, no network, timeout) and report pass@k.",
    )
    common(h)
    h.add_argument("--samples", type=Int(1), default=10, help="completions per problem (n)")
    h.add_argument("--k", default="1,2,5,10", help="pass@k for these k (comma-separated)")
    h.add_argument("--temperature", type=Float(0), default=0.8, help="0 for greedy")
    h.add_argument(
        "--top-p", type=Float(0, 1, lo_open=True), default=0.95, help="nucleus sampling mass"
    )
    h.add_argument("--max-new-tokens", type=Int(1), default=256, help="tokens per completion")
    h.add_argument("--batch-size", type=Int(1), default=16, help="samples generated per batch")
    h.add_argument("--limit", type=Int(1), default=None, help="only the first M problems")
    h.add_argument(
        "--workers", type=Int(1), default=None, help="parallel sandboxes (default: CPUs)"
    )
    h.add_argument(
        "--timeout", type=Float(0, lo_open=True), default=3.0, help="seconds per program"
    )
    h.add_argument("--seed", type=Int(0), default=0, help="sampling seed")
    h.add_argument(
        "--out", default=None, help="results JSONL (default: RUN/humaneval-<time>.jsonl)"
    )
    h.set_defaults(func=_humaneval)


def record_evaluation(run_dir: str, entry: dict[str, Any]) -> None:
    """Append ``entry`` (with a timestamp) as one line of ``RUN/evals.jsonl``."""
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **entry}
    with open(os.path.join(run_dir, EVALS_FILE), "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _check_run(args: argparse.Namespace) -> None:
    if not os.path.isdir(args.run):
        raise FileNotFoundError(2, "no such run directory (--run)", args.run)


def _positive(name: str, value: int | float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def run_data_dir(run: str) -> str:
    """The pack directory a run was trained on (``train.data_dir`` of ``RUN/config.json``),
    as written (relative to where training ran) or, failing that, relative to the run
    directory's parent; ``FileNotFoundError`` saying to give ``--data`` when neither exists."""
    config = os.path.join(run, "config.json")
    try:
        with open(config, encoding="utf-8") as f:
            data_dir = json.load(f).get("train", {}).get("data_dir")
    except (OSError, ValueError, AttributeError):
        data_dir = None
    if not isinstance(data_dir, str) or not data_dir:
        raise FileNotFoundError(
            f"{config} names no training data: give --data DIR or --input FILES"
        )
    for candidate in (data_dir, os.path.join(os.path.dirname(os.path.abspath(run)), data_dir)):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        f"the run's training data {data_dir!r} (train.data_dir in {config}) is not a "
        "directory here: give --data DIR or --input FILES"
    )


def _perplexity(args: argparse.Namespace) -> int:
    _check_run(args)
    if args.data is None and args.input is None:
        args.data = run_data_dir(args.run)
    _positive("--batch-size", args.batch_size)
    _positive("--block-size", args.block_size)
    from codekiln.evaluate.perplexity import evaluate_files, evaluate_packed
    from codekiln.generate import load

    model, tok = load(args.run, args.checkpoint, device=args.device)
    kw = dict(
        max_tokens=args.max_tokens,
        block_size=args.block_size,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    if args.data is not None:
        result = evaluate_packed(model, tok, args.data, args.split, **kw)
        source: dict[str, Any] = {"data": args.data, "split": args.split}
    else:
        result = evaluate_files(
            model,
            tok,
            [pathlib.Path(p) for p in args.input],  # paths, globs, directories
            text_field=args.text_field,
            **include_exclude(args),
            **kw,
        )
        source = {"input": args.input}
    figures = result.as_dict()
    if not args.no_record:
        record_evaluation(
            args.run,
            {"eval": "perplexity", "checkpoint": args.checkpoint, **source, **figures},
        )
    print(json.dumps(figures) if args.json else result.table())
    return 0


def _humaneval(args: argparse.Namespace) -> int:
    _check_run(args)
    from codekiln.evaluate.humaneval import _check_ks, evaluate_humaneval
    from codekiln.generate import load

    ks = _check_ks(args.k)
    _positive("--samples", args.samples)
    _positive("--timeout", args.timeout)
    if max(ks) > args.samples:
        raise ValueError(f"--k {args.k}: every k must be <= --samples ({args.samples})")
    out = args.out or os.path.join(args.run, f"humaneval-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    model, tok = load(args.run, args.checkpoint, device=args.device)
    result = evaluate_humaneval(
        model,
        tok,
        num_samples=args.samples,
        ks=ks,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        limit=args.limit,
        workers=args.workers,
        timeout=args.timeout,
        seed=args.seed,
        out=out,
        progress=not args.no_progress,
    )
    if not args.no_record:
        record_evaluation(
            args.run,
            {
                "eval": "humaneval",
                "checkpoint": args.checkpoint,
                "limit": args.limit,
                "results": out,
                **result.summary,
            },
        )
    if args.json:
        print(json.dumps(result.summary))
    else:
        print(result.table())
        print(f"results: {out}")
    return 0
