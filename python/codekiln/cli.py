"""The ``codekiln`` command line.

Each command group is one ``_add_*_commands(sub)`` function that registers its subparsers and
sets ``func`` (``args -> exit code``) on each; :data:`_COMMAND_GROUPS` lists them. To add a
group (``codekiln data ...``, training), write such a function and append it there.

Errors the user can fix (bad arguments, missing or unreadable inputs, an empty corpus) are one
``codekiln: error: ...`` line on stderr and exit status 1; argparse usage errors exit with 2.
Heavy imports happen inside the handlers so that ``codekiln --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from codekiln import __version__
from codekiln.data.cli import add_data_commands
from codekiln.train.cli import add_train_commands

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------ tokenizer


def _add_tokenizer_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("tokenizer", help="train, inspect and export BPE tokenizers")
    cmds = group.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")

    p = cmds.add_parser("train", help="train a tokenizer on files, directories or globs")
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="files, directories (searched for *.py, *.txt, *.jsonl[.gz|.zst]) or globs",
    )
    p.add_argument("--vocab-size", type=int, required=True, metavar="N")
    p.add_argument("--out", required=True, metavar="FILE", help="tokenizer file to write (.json)")
    p.add_argument("--pattern", default="code", choices=["code", "gpt2"])
    p.add_argument(
        "--newline",
        default="<N>",
        choices=["<N>", "none"],
        help="'<N>': every newline is its own token (id 10); 'none': newline is a plain byte",
    )
    p.add_argument("--threads", type=int, default=None, metavar="N", help="default: all CPUs")
    p.add_argument("--min-frequency", type=int, default=2, metavar="N")
    p.add_argument(
        "--special",
        nargs="*",
        default=None,
        metavar="TOKEN",
        help="special tokens (default: <|endoftext|>; give --special alone for none)",
    )
    p.add_argument("--text-field", default="content", metavar="F", help="JSONL text field")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_tokenizer_train)

    p = cmds.add_parser("encode", help="encode text (or a file) and print the tokens")
    p.add_argument("--tokenizer", required=True, metavar="FILE")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", help="text to encode (default: read stdin)")
    src.add_argument("--input", metavar="FILE", help="UTF-8 file to encode")
    p.add_argument("--ids-only", action="store_true", help="print only the ids, on one line")
    p.add_argument(
        "--allowed-special",
        nargs="*",
        default=(),
        metavar="NAME",
        help="special tokens to recognise in the text ('all' for every one)",
    )
    p.set_defaults(func=_tokenizer_encode)

    p = cmds.add_parser("decode", help="decode ids (arguments or stdin) to text")
    p.add_argument("--tokenizer", required=True, metavar="FILE")
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="default: read stdin")
    p.set_defaults(func=_tokenizer_decode)

    p = cmds.add_parser("stats", help="bytes/token, keywords, longest and unused tokens")
    p.add_argument("--tokenizer", required=True, metavar="FILE")
    p.add_argument("--input", nargs="+", required=True, metavar="PATH")
    p.add_argument("--text-field", default="content", metavar="F")
    p.add_argument("--threads", type=int, default=None, metavar="N")
    p.add_argument("--longest", type=int, default=20, metavar="N", help="longest tokens to list")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_tokenizer_stats)

    p = cmds.add_parser("info", help="summary of a tokenizer file")
    p.add_argument("--tokenizer", required=True, metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_tokenizer_info)

    p = cmds.add_parser("export", help="write a Hugging Face or tiktoken tokenizer")
    p.add_argument("--tokenizer", required=True, metavar="FILE")
    p.add_argument("--format", required=True, choices=["hf", "tiktoken"])
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=_tokenizer_export)


def _tokenizer_train(args: argparse.Namespace) -> int:
    from codekiln.tokenizer import ENDOFTEXT, Tokenizer

    specials = [ENDOFTEXT] if args.special is None else args.special
    tok = Tokenizer.train(
        [pathlib.Path(p) for p in args.input],
        vocab_size=args.vocab_size,
        pattern=args.pattern,
        newline=None if args.newline == "none" else args.newline,
        special_tokens=specials,
        min_frequency=args.min_frequency,
        num_threads=args.threads,
        progress=not args.no_progress,
        text_field=args.text_field,
    )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(out)
    r = tok.train_report or {}
    print(
        f"trained {tok!r} on {r.get('files', 0)} files ({r.get('documents', 0)} documents, "
        f"{r.get('bytes', 0):,} bytes) in {r.get('seconds', 0):.1f} s; skipped "
        f"{r.get('skipped_files', 0)} files and {r.get('skipped_documents', 0)} documents"
    )
    for path, reason in r.get("skipped", [])[:10]:
        print(f"  skipped {path}: {reason}")
    print(f"saved {out}")
    return 0


def _load_tokenizer(path: str) -> Any:
    from codekiln.tokenizer import Tokenizer

    return Tokenizer.load(path)


def _tokenizer_encode(args: argparse.Namespace) -> int:
    tok = _load_tokenizer(args.tokenizer)
    if args.text is not None:
        text = args.text
    elif args.input is not None:
        with open(args.input, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{args.input}: not valid UTF-8 (byte offset {e.start})") from None
    else:
        text = sys.stdin.read()
    allowed: Any = args.allowed_special
    if allowed == ["all"]:
        allowed = "all"
    ids = tok.encode(text, allowed_special=allowed)
    if args.ids_only:
        print(" ".join(map(str, ids)))
        return 0
    for i in ids:
        print(f"{i:>7}  {tok.decode([i])!r}")
    n_bytes = len(text.encode("utf-8"))
    per_token = n_bytes / len(ids) if ids else 0.0
    print(f"{len(ids)} tokens, {n_bytes} bytes ({per_token:.2f} bytes/token)")
    return 0


def _tokenizer_decode(args: argparse.Namespace) -> int:
    tok = _load_tokenizer(args.tokenizer)
    ids = args.ids
    if not ids:
        words = sys.stdin.read().split()
        try:
            ids = [int(w) for w in words]
        except ValueError as e:
            raise ValueError(f"stdin must hold whitespace-separated token ids ({e})") from None
    sys.stdout.write(tok.decode(ids))
    sys.stdout.flush()
    return 0


def _tokenizer_stats(args: argparse.Namespace) -> int:
    from codekiln.stats import compute_stats

    tok = _load_tokenizer(args.tokenizer)
    stats = compute_stats(
        tok,
        [pathlib.Path(p) for p in args.input],
        text_field=args.text_field,
        num_threads=args.threads,
        longest=args.longest,
    )
    if args.json:
        print(json.dumps(stats.to_dict(), indent=1, ensure_ascii=False))
    else:
        print(stats.format())
    return 0


def _tokenizer_info(args: argparse.Namespace) -> int:
    tok = _load_tokenizer(args.tokenizer)
    info = {
        "vocab_size": tok.vocab_size,
        "merges": len(tok.merges),
        "pattern": tok.pattern,
        "newline": tok.newline,
        "special_tokens": tok.special_tokens,
        "fingerprint": tok.fingerprint,
        "training": tok.train_report,
    }
    if args.json:
        print(json.dumps(info, indent=1, ensure_ascii=False))
        return 0
    for key, value in info.items():
        if key != "training":
            print(f"{key:<15} {value}")
    if tok.train_report:
        r = tok.train_report
        print(
            f"{'training':<15} {r.get('documents')} documents, {r.get('bytes'):,} bytes, "
            f"{r.get('seconds')} s"
        )
    return 0


def _tokenizer_export(args: argparse.Namespace) -> int:
    from codekiln import export

    tok = _load_tokenizer(args.tokenizer)
    if args.format == "hf":
        export.save_huggingface(tok, args.out)
    else:
        export.save_tiktoken(tok, args.out)
    print(f"wrote {args.format} tokenizer to {args.out}")
    return 0


# ------------------------------------------------------------------------------ quickstart


def _add_quickstart_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from codekiln.quickstart import QuickstartConfig

    d = QuickstartConfig()
    p = sub.add_parser(
        "quickstart",
        help="the whole path on this Python's standard library: tokenizer, shards, a tiny "
        "model trained, plotted and sampled",
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
    p.add_argument("--threads", type=int, default=None, metavar="N")
    p.add_argument(
        "--train-steps",
        type=int,
        default=d.train_steps,
        metavar="N",
        help=f"training steps (default {d.train_steps}; more for a better model, 0 to stop after packing)",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N")
    p.add_argument("--block-size", type=int, default=d.block_size, metavar="N")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, metavar="LR")
    p.add_argument("--device", default=d.device, choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=d.seed, metavar="S")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_quickstart)


def _quickstart(args: argparse.Namespace) -> int:
    from codekiln.quickstart import QuickstartConfig, run_quickstart

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
    )
    for flag in ("train_steps", "batch_size", "block_size"):
        if getattr(args, flag) < (0 if flag == "train_steps" else 1):
            raise ValueError(
                f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}"
            )
    run_quickstart(cfg)
    return 0


# ------------------------------------------------------------------------------ main

_COMMAND_GROUPS: tuple[Callable[[Any], None], ...] = (
    _add_tokenizer_commands,
    add_data_commands,
    add_train_commands,
    _add_quickstart_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codekiln", description="Train GPT models on source code from scratch."
    )
    parser.add_argument("--version", action="version", version=f"codekiln {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMAND_GROUPS:
        add(sub)
    return parser


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.strerror}: {e.filename}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())  # one line


def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"codekiln: warning: {_describe(Warning(str(message)))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (``codekiln`` passes it to :func:`sys.exit`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else 0
    handler: Handler = args.func
    with warnings.catch_warnings():
        # codekiln's own warnings (e.g. fewer merges learned) are reports for the user: always
        # printed, whatever the process-wide filters say; others follow those filters.
        warnings.filterwarnings("always", category=UserWarning, module=r"codekiln(\.|$)")
        warnings.showwarning = _show_warning
        try:
            return handler(args)
        except KeyboardInterrupt:
            print("codekiln: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # e.g. `codekiln tokenizer encode ... | head`
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except (OSError, ValueError, ImportError) as e:
            print(f"codekiln: error: {_describe(e)}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
