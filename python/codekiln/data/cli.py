"""``codekiln data pack`` and ``codekiln data inspect``.

:func:`add_data_commands` registers the group on the main parser's subparsers; each handler
maps flags onto :class:`~codekiln.data.PackConfig` and returns an exit status. Heavy imports
happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from codekiln._cliargs import Float, Int
from codekiln._threads import THREADS_HELP
from codekiln.corpus import add_include_exclude, include_exclude

__all__ = ["add_data_commands"]


def add_data_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("data", help="clean, deduplicate and pack corpora into token shards")
    cmds = group.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    p = cmds.add_parser(
        "pack",
        help="tokenize a corpus into training shards",
        description="Read, clean, deduplicate, redact, split and tokenize a corpus into "
        "memory-mapped shards. Re-running the same command resumes an interrupted pack.",
    )
    p.add_argument("--tokenizer", required=True, metavar="FILE", help="a saved tokenizer (.json)")
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="directories (walked for --include), files (.py, .jsonl[.gz|.zst], .parquet, "
        "...) or globs",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--valid-fraction", type=Float(0, 1), default=0.01, metavar="F")
    p.add_argument(
        "--filters",
        choices=["default", "none"],
        default="default",
        help="'none' keeps every document (with --dedup none --no-redact the shards decode "
        "to the input byte for byte)",
    )
    p.add_argument("--dedup", choices=["exact", "near", "none"], default="exact")
    p.add_argument("--near-threshold", type=Float(0, 1, lo_open=True), default=0.85, metavar="J")
    p.add_argument("--redact", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--threads", type=Int(), default=None, metavar="N", help=THREADS_HELP)
    p.add_argument("--shard-tokens", type=Int(1), default=50_000_000, metavar="N")
    add_include_exclude(p)
    p.add_argument("--license-allow", nargs="+", default=[], metavar="LICENSE")
    p.add_argument(
        "--python-syntax",
        choices=["off", "py3", "py2-or-py3"],
        default="off",
        help="drop documents that ast.parse rejects (slower: runs in Python)",
    )
    p.add_argument("--text-field", default="content", metavar="NAME")
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop on an input file that cannot be read to its end (unreadable, truncated or "
        "corrupt .gz/.zst); by default the rest of it is skipped and it is named in the report",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a different pack in --out")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="prepare each input file in a Ray task, decide and write the shards here: the "
        "same output (pip install 'codekiln[ray]'); ADDRESS: 'auto' for this machine's "
        "cluster, ray://HOST:10001, or none for a local Ray. Inputs and --work-dir must be "
        "on a filesystem every node sees",
    )
    p.add_argument(
        "--work-dir",
        default=None,
        metavar="DIR",
        help="with --ray: keep the prepared files here, so a re-run reuses them (default: a "
        "temp dir, removed)",
    )
    p.add_argument(
        "--ray-task-threads",
        type=Int(1),
        default=1,
        metavar="N",
        help="with --ray: threads (Ray CPUs) per preparing task (default 1)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=_pack)

    q = cmds.add_parser("inspect", help="counts, token histogram, a sample, checksums")
    q.add_argument("dir", metavar="DIR")
    q.add_argument("--no-verify", action="store_true", help="skip the SHA-256 checks")
    q.add_argument("--sample", type=Int(0), default=0, metavar="I", help="train document to decode")
    q.add_argument("--top", type=Int(0), default=20, metavar="N", help="most frequent tokens shown")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_inspect)


def _pack(args: argparse.Namespace) -> int:
    from codekiln.data import FilterConfig, PackConfig, pack
    from codekiln.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    filters = FilterConfig() if args.filters == "default" else FilterConfig.none()
    filters.license_allow = tuple(args.license_allow)
    filters.python_syntax = args.python_syntax
    cfg = PackConfig(
        filters=filters,
        dedup=args.dedup,
        near_threshold=args.near_threshold,
        redact=args.redact,
        valid_fraction=args.valid_fraction,
        shard_tokens=args.shard_tokens,
        num_threads=args.threads,
        text_field=args.text_field,
        strict=args.strict,
        **include_exclude(args),
    )
    paths = [pathlib.Path(p) for p in args.input]
    if args.ray is not None:
        from codekiln.distributed import pack_on_ray

        m = pack_on_ray(
            paths,
            tok,
            args.out,
            cfg,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            address=args.ray or None,
            work_dir=args.work_dir,
            task_threads=args.ray_task_threads,
        )
    elif args.work_dir is not None or args.ray_task_threads != 1:
        raise ValueError("--work-dir and --ray-task-threads are used with --ray only")
    else:
        m = pack(paths, tok, args.out, cfg, overwrite=args.overwrite, progress=not args.no_progress)
    if args.json:
        print(json.dumps(m, indent=1))
        return 0
    r = m["report"]
    run = r["this_run"]
    print(
        f"read {r['documents_in']:,} documents ({r['bytes_in'] / 1e6:,.1f} MB) from "
        f"{r['files']:,} files in {run['seconds']:.1f}s ({run['mb_per_second']} MB/s)"
    )
    for split, s in m["splits"].items():
        n = run["resumed_documents"].get(split, 0)
        resumed = f", {n:,} resumed" if n else ""
        print(
            f"{split}: {s['documents']:,} documents, {s['tokens']:,} tokens, "
            f"{len(s['shards'])} shards{resumed}"
        )
    removed = ", ".join(f"{k} {v:,}" for k, v in sorted(r["removed"].items())) or "none"
    print(f"removed: {removed}")
    found = {k: v for k, v in r["redactions"].items() if v}
    print("redacted: " + (", ".join(f"{k} {v:,}" for k, v in found.items()) or "none"))
    if r["invalid_records"] or r["skipped_files"]:
        print(f"skipped: {r['invalid_records']:,} invalid records, {len(r['skipped_files'])} files")
        for path, why in r["skipped_files"][:10]:
            print(f"  {path}: {why}")
        if len(r["skipped_files"]) > 10:
            print(f"  ... and {len(r['skipped_files']) - 10} more (MANIFEST.json report)")
    if "ray" in run:
        ray = run["ray"]
        print(
            f"Ray: {ray['tasks']:,} input files prepared in {ray['prepare_seconds']:.1f}s "
            f"({ray['reused']:,} reused from --work-dir)"
        )
    print(f"wrote {args.out}/MANIFEST.json")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from codekiln.data import inspect_pack

    info = inspect_pack(args.dir, verify=not args.no_verify, sample=args.sample, top=args.top)
    if args.json:
        print(json.dumps(info, indent=1))
        return 1 if info["problems"] else 0
    tok = info.get("tokenizer") or {}
    print(
        f"{info['directory']}: status {info['status']}, vocab {tok.get('vocab_size')}, "
        f"{tok.get('token_dtype')}, tokenizer {str(tok.get('fingerprint'))[:12]}"
    )
    for split, s in info["splits"].items():
        print(
            f"{split}: {s['shards']} shards, {s['documents']:,} documents, {s['tokens']:,} tokens, "
            f"{s['distinct_tokens']:,} distinct; tokens per document mean "
            f"{s['doc_tokens_mean']:.0f}, median {s['doc_tokens_median']:.0f}, max {s['doc_tokens_max']:,}"
        )
        for e in s["top_tokens"]:
            label = repr(e["token"]) if "token" in e else ""
            print(f"  {e['id']:>7} {e['count']:>12,} {label}")
    sample = info.get("sample")
    if sample:
        print(f"--- train document {sample['document']} ({sample['tokens']} tokens)")
        if sample["text"] is not None:
            print(sample["text"])
        print("---")
    if info["problems"]:
        for prob in info["problems"]:
            print(f"codekiln: error: {prob}", file=sys.stderr)
        return 1
    print("checksums: ok" if not args.no_verify else "checksums: not verified")
    return 0
