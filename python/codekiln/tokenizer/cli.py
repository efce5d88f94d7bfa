"""``codekiln tokenizer train|encode|decode|stats|info|export``.

:func:`add_tokenizer_commands` registers the group on the main parser's subparsers (see
``codekiln/cli.py``); each handler maps flags onto the Python API and returns an exit status.
Every ``--tokenizer FILE`` is read by :func:`codekiln.tokenizer.load_tokenizer`. Heavy imports
(numpy, HF, tiktoken) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

from codekiln._threads import THREADS_HELP
from codekiln.corpus import add_include_exclude, include_exclude
from codekiln.tokenizer.core import Tokenizer, load_tokenizer
from codekiln.tokenizer.format import ENDOFTEXT

__all__ = ["add_tokenizer_commands"]


def add_tokenizer_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("tokenizer", help="train, inspect and export BPE tokenizers")
    cmds = group.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")

    p = cmds.add_parser("train", help="train a tokenizer on files, directories or globs")
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="files, directories (walked for --include) or globs",
    )
    add_include_exclude(p)
    p.add_argument("--vocab-size", type=int, required=True, metavar="N")
    p.add_argument("--out", required=True, metavar="FILE", help="tokenizer file to write (.json)")
    p.add_argument("--pattern", default="code", choices=["code", "gpt2"])
    p.add_argument(
        "--newline",
        default="<N>",
        choices=["<N>", "none"],
        help="'<N>': the newline is the token <N> (id 10); 'none': newline is a plain byte",
    )
    p.add_argument(
        "--newline-rule",
        default="merged",
        choices=["merged", "strict"],
        help="with <N>: 'merged' (a newline run and the next line's indentation are one piece) "
        "or 'strict' (every newline is a token of its own)",
    )
    p.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)
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
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="files, directories (walked for --include) or globs: the same documents as train",
    )
    add_include_exclude(p)
    p.add_argument("--text-field", default="content", metavar="F")
    p.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)
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
    specials = [ENDOFTEXT] if args.special is None else args.special
    tok = Tokenizer.train(
        [pathlib.Path(p) for p in args.input],
        vocab_size=args.vocab_size,
        pattern=args.pattern,
        newline=None if args.newline == "none" else args.newline,
        newline_rule=args.newline_rule,
        special_tokens=specials,
        min_frequency=args.min_frequency,
        num_threads=args.threads,
        progress=not args.no_progress,
        text_field=args.text_field,
        **include_exclude(args),
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


def _tokenizer_encode(args: argparse.Namespace) -> int:
    tok = load_tokenizer(args.tokenizer)
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
    tok = load_tokenizer(args.tokenizer)
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
    from codekiln.tokenizer.stats import compute_stats

    tok = load_tokenizer(args.tokenizer)
    stats = compute_stats(
        tok,
        [pathlib.Path(p) for p in args.input],
        text_field=args.text_field,
        num_threads=args.threads,
        longest=args.longest,
        **include_exclude(args),
    )
    if args.json:
        print(json.dumps(stats.to_dict(), indent=1, ensure_ascii=False))
    else:
        print(stats.format())
    return 0


def _tokenizer_info(args: argparse.Namespace) -> int:
    tok = load_tokenizer(args.tokenizer)
    info = {
        "vocab_size": tok.vocab_size,
        "merges": len(tok.merges),
        "pattern": tok.pattern,
        "newline": tok.newline,
        "newline_rule": tok.newline_rule,
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
    from codekiln.tokenizer import interop

    tok = load_tokenizer(args.tokenizer)
    if args.format == "hf":
        interop.save_huggingface(tok, args.out)
    else:
        interop.save_tiktoken(tok, args.out)
    print(f"wrote {args.format} tokenizer to {args.out}")
    return 0
