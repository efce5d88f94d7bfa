"""``codekiln complete``: completions of a prompt from a run directory.

The prompt is the positional argument, ``--file PATH``, or standard input (when neither is
given); it is plain text with real newlines. Each completion is printed after the prompt,
between separator lines that name the sample, so several samples read apart::

    $ codekiln complete --run run/ --samples 2 "def fibonacci(n):"
    ===== sample 1/2 =====
    def fibonacci(n):
        ...
    ===== sample 2/2 =====
    ...
    ======================

``--completion-only`` prints the completions alone, and ``--json`` one JSON list of them (for
scripts). This module imports torch only inside the handler (``codekiln --help`` stays fast).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from codekiln._cliargs import Float, Int

__all__ = ["add_complete_command"]

SEPARATOR = "====="


def add_complete_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "complete",
        help="complete a code prompt with a trained model",
        description="Print completions of PROMPT (or --file, or stdin) from a run directory.",
    )
    p.add_argument("prompt", nargs="?", help="the prompt (default: --file, else stdin)")
    p.add_argument("--run", required=True, help="run directory written by `codekiln train`")
    p.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path")
    p.add_argument("--file", help="read the prompt from this file")
    p.add_argument("--samples", type=Int(1), default=1, help="number of completions (one batch)")
    p.add_argument("--temperature", type=Float(0), default=0.8, help="0 for greedy decoding")
    p.add_argument(
        "--top-p",
        type=Float(0, 1, lo_open=True),
        default=0.95,
        help="nucleus sampling mass (1: off)",
    )
    p.add_argument("--top-k", type=Int(1), default=None, help="sample among the k likeliest tokens")
    p.add_argument("--max-new-tokens", type=Int(1), default=128, help="tokens per completion")
    p.add_argument("--seed", type=Int(0), default=None, help="make sampling reproducible")
    p.add_argument(
        "--stop",
        action="append",
        default=None,
        metavar="STR",
        help="stop string (repeatable; escapes like \\n are understood; default: the Python "
        "end-of-block stops)",
    )
    p.add_argument(
        "--no-stop", action="store_true", help="no stop strings: stop at end of text only"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--completion-only", action="store_true", help="print completions only")
    out.add_argument("--json", action="store_true", help="print a JSON list of completions")
    p.set_defaults(func=_complete)


def _read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None and args.file is not None:
        raise ValueError("give the prompt as an argument or with --file, not both")
    if args.prompt is not None:
        return args.prompt
    if args.file is not None:
        with open(args.file, encoding="utf-8") as f:
            return f.read()
    if sys.stdin is None or sys.stdin.isatty():
        raise ValueError("no prompt: give one as an argument, with --file PATH, or on stdin")
    return sys.stdin.read()


def _stops(args: argparse.Namespace) -> tuple[str, ...] | None:
    from codekiln.generate import DEFAULT_STOPS

    if args.no_stop:
        if args.stop:
            raise ValueError("--stop and --no-stop contradict each other")
        return None
    if not args.stop:
        return DEFAULT_STOPS
    # "\n" typed in a shell arrives as backslash-n: read escapes as Python would
    return tuple(s.encode("utf-8").decode("unicode_escape") for s in args.stop)


def _complete(args: argparse.Namespace) -> int:
    prompt = _read_prompt(args)
    stops = _stops(args)
    if not os.path.isdir(args.run):
        raise FileNotFoundError(2, "no such run directory (--run)", args.run)
    from codekiln.generate import complete, load

    model, tok = load(args.run, args.checkpoint, device=args.device)
    texts = complete(
        model,
        tok,
        prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        num_samples=args.samples,
        stop=stops,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(texts, ensure_ascii=False))
        return 0
    n = len(texts)
    for i, text in enumerate(texts, 1):
        if args.completion_only:
            if i > 1:
                print(f"{SEPARATOR} sample {i}/{n} {SEPARATOR}")
            print(text)
            continue
        print(f"{SEPARATOR} sample {i}/{n} {SEPARATOR}")
        body = prompt + text
        print(body, end="" if body.endswith("\n") else "\n")
    if not args.completion_only:
        print(SEPARATOR * 2 + "=" * len(f" sample {n}/{n} "))
    return 0
