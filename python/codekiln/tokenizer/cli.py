"""``codekiln tokenizer train|count|merge-counts|encode|decode|stats|info|export``.

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

from codekiln._cliargs import Int
from codekiln._threads import THREADS_HELP
from codekiln.corpus import add_include_exclude, include_exclude
from codekiln.tokenizer.core import Tokenizer, load_tokenizer
from codekiln.tokenizer.format import ENDOFTEXT

__all__ = ["add_tokenizer_commands"]


def add_tokenizer_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("tokenizer", help="train, inspect and export BPE tokenizers")
    cmds = group.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")

    p = cmds.add_parser("train", help="train a tokenizer on files, directories or globs")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--input",
        nargs="+",
        metavar="PATH",
        help="files, directories (walked for --include) or globs",
    )
    src.add_argument(
        "--from-counts",
        nargs="+",
        metavar="FILE",
        help="count files (from 'tokenizer count'/'merge-counts') instead of --input: the "
        "same tokenizer as one pass over everything they counted",
    )
    add_include_exclude(p)
    p.add_argument("--vocab-size", type=Int(1), required=True, metavar="N")
    p.add_argument("--out", required=True, metavar="FILE", help="tokenizer file to write (.json)")
    p.add_argument(
        "--pattern",
        default=None,
        choices=["code", "gpt2"],
        help="pre-tokenizer (default: code; with --from-counts: the files' setting)",
    )
    p.add_argument(
        "--newline",
        default=None,
        choices=["<N>", "none"],
        help="'<N>' (default): the newline is the token <N> (id 10); 'none': newline is a "
        "plain byte (with --from-counts: the files' setting)",
    )
    p.add_argument(
        "--newline-rule",
        default=None,
        choices=["merged", "strict"],
        help="with <N>: 'merged' (default: a newline run and the next line's indentation are "
        "one piece) or 'strict' (every newline is a token of its own); with --from-counts: "
        "the files' setting",
    )
    p.add_argument("--threads", type=Int(), default=None, metavar="N", help=THREADS_HELP)
    p.add_argument("--min-frequency", type=Int(1), default=2, metavar="N")
    p.add_argument(
        "--special",
        nargs="*",
        default=None,
        metavar="TOKEN",
        help="special tokens (default: <|endoftext|>; give --special alone for none)",
    )
    p.add_argument("--text-field", default="content", metavar="F", help="JSONL text field")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop on an input file that cannot be read to its end (unreadable, truncated or "
        "corrupt .gz/.zst); by default the rest of it is skipped and listed",
    )
    add_memory_args(p)
    p.add_argument(
        "--min-piece-count",
        type=Int(1),
        default=1,
        metavar="N",
        help="drop pieces seen fewer than N times before merging (less memory; default 1: "
        "keep all, the exact result)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="count on Ray, one task per input file (pip install 'codekiln[ray]'); ADDRESS: "
        "'auto' for this machine's cluster, ray://HOST:10001, or none for a local Ray. "
        "Inputs and --counts-dir must be on a filesystem every node sees",
    )
    p.add_argument(
        "--counts-dir",
        default=None,
        metavar="DIR",
        help="with --ray: keep the per-file count files here (default: a temp dir, removed)",
    )
    p.add_argument(
        "--ray-task-threads",
        type=Int(1),
        default=1,
        metavar="N",
        help="with --ray: threads (Ray CPUs) per counting task (default 1)",
    )
    p.set_defaults(func=_tokenizer_train)

    p = cmds.add_parser("count", help="count the pieces of some input into a count file")
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="files, directories (walked for --include) or globs (e.g. one shard)",
    )
    add_include_exclude(p)
    p.add_argument("--out", required=True, metavar="FILE", help="count file to write")
    p.add_argument("--pattern", default="code", choices=["code", "gpt2"])
    p.add_argument("--newline", default="<N>", choices=["<N>", "none"])
    p.add_argument(
        "--newline-rule",
        default="merged",
        choices=["merged", "strict"],
        help="with <N>: the rule the tokenizer will be trained with (stored in the file)",
    )
    p.add_argument("--threads", type=Int(), default=None, metavar="N", help=THREADS_HELP)
    p.add_argument("--text-field", default="content", metavar="F", help="JSONL text field")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_memory_args(p)
    p.set_defaults(func=_tokenizer_count)

    p = cmds.add_parser("merge-counts", help="merge count files into one")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE", help="count files")
    p.add_argument("--out", required=True, metavar="FILE", help="merged count file to write")
    p.set_defaults(func=_tokenizer_merge_counts)

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
    p.add_argument(
        "ids", nargs="*", type=Int(0, 2**32 - 1), metavar="ID", help="default: read stdin"
    )
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
    p.add_argument("--threads", type=Int(), default=None, metavar="N", help=THREADS_HELP)
    p.add_argument("--longest", type=Int(0), default=20, metavar="N", help="longest tokens to list")
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


def add_memory_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="bound the tables of distinct pieces (e.g. 4GB, 512MiB): past it, sorted partial "
        "counts spill to disk and are merged (same result; see docs/scale.md)",
    )
    p.add_argument(
        "--spill-dir",
        default=None,
        metavar="DIR",
        help="existing directory for the spilled runs (default: the system temp dir)",
    )


def _counts_summary(stats: dict[str, Any]) -> str:
    return (
        f"{stats['documents']:,} documents, {stats['bytes']:,} bytes, {stats['pieces']:,} "
        f"pieces ({stats['distinct_pieces']:,} distinct; pattern={stats['pattern']}, "
        f"newline={stats['newline'] or 'none'}"
        + (f" {stats['newline_rule']})" if stats["newline"] else ")")
    )


def _tokenizer_count(args: argparse.Namespace) -> int:
    from codekiln.tokenizer.counts import count_pieces

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = count_pieces(
        [pathlib.Path(p) for p in args.input],
        out,
        pattern=args.pattern,
        newline=None if args.newline == "none" else args.newline,
        newline_rule=args.newline_rule,
        text_field=args.text_field,
        num_threads=args.threads,
        max_memory=args.max_memory,
        spill_dir=args.spill_dir,
        progress=not args.no_progress,
        **include_exclude(args),
    )
    print(f"counted {stats['files']} files: {_counts_summary(stats)} in {stats['seconds']:.1f} s")
    print(f"saved {out}")
    return 0


def _tokenizer_merge_counts(args: argparse.Namespace) -> int:
    from codekiln.tokenizer.counts import merge_counts

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = merge_counts(args.input, out)
    print(f"merged {len(args.input)} count files: {_counts_summary(stats)}")
    print(f"saved {out}")
    return 0


def _save_trained(tok: Tokenizer, args: argparse.Namespace) -> int:
    """Save a tokenizer trained from counts (--from-counts, --ray) and say so."""
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(out)
    r = tok.train_report or {}
    print(
        f"trained {tok!r} from counts ({r['documents']:,} documents, {r['bytes']:,} bytes, "
        f"{r['unique_pieces']:,} distinct pieces); merge phase {r['seconds']:.1f} s"
    )
    print(f"saved {out}")
    return 0


def _tokenizer_train(args: argparse.Namespace) -> int:
    specials = [ENDOFTEXT] if args.special is None else args.special
    if args.from_counts:
        from codekiln.tokenizer.counts import inspect_settings, train_from_counts

        if args.max_memory or args.spill_dir or args.ray is not None:
            raise ValueError(
                "--max-memory/--spill-dir/--ray apply to counting, not to --from-counts"
            )
        pattern, newline, rule = inspect_settings(args.from_counts[0])
        have_newline = "none" if newline is None else newline
        for flag, want, have in [
            ("--pattern", args.pattern, pattern),
            ("--newline", args.newline, have_newline),
            ("--newline-rule", args.newline_rule if newline is not None else None, rule),
        ]:
            if want is not None and want != have:
                raise ValueError(
                    f"{flag} {want} does not match the count files ({args.from_counts[0]} was "
                    f"counted with {flag} {have}); recount or drop {flag}"
                )
        tok = train_from_counts(
            args.from_counts,
            vocab_size=args.vocab_size,
            special_tokens=specials,
            min_frequency=args.min_frequency,
            min_piece_count=args.min_piece_count,
            num_threads=args.threads,
            progress=not args.no_progress,
        )
        return _save_trained(tok, args)
    # What one-process and Ray training share (the flags map the same way for both).
    inputs = [pathlib.Path(p) for p in args.input]
    common: dict[str, Any] = dict(
        vocab_size=args.vocab_size,
        pattern=args.pattern or "code",
        newline=None if args.newline == "none" else "<N>",
        newline_rule=args.newline_rule or "merged",
        special_tokens=specials,
        min_frequency=args.min_frequency,
        min_piece_count=args.min_piece_count,
        text_field=args.text_field,
        max_memory=args.max_memory,
        num_threads=args.threads,
        progress=not args.no_progress,
        **include_exclude(args),
    )
    if args.ray is not None:
        from codekiln.distributed import train_on_ray

        if args.spill_dir:
            raise ValueError("--spill-dir does not apply with --ray (tasks spill locally)")
        tok = train_on_ray(
            inputs,
            **common,
            threads_per_task=args.ray_task_threads,
            counts_dir=args.counts_dir,
            address=args.ray or None,
        )
        return _save_trained(tok, args)
    if args.counts_dir is not None:
        raise ValueError("--counts-dir is used with --ray only (see 'tokenizer count')")
    tok = Tokenizer.train(inputs, **common, strict=args.strict, spill_dir=args.spill_dir)
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
