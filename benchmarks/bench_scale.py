"""Tokenizer training at scale: time and peak memory in memory, under a memory budget
(spilling), from count files, with pruning, and counting on Ray; packing on Ray against one
process (``--pack``).

Every configuration runs in a fresh subprocess (so its peak RSS is its own); repetitions are
interleaved and the median reported. The fingerprint of every trained tokenizer is printed:
all unpruned configurations must agree (the budget, count files and Ray change nothing).

    python benchmarks/bench_scale.py --shards 2 5 --vocab-size 32768 --reps 3 \
        --budgets 256MB 32MB --min-piece-count 2 --ray-workers 1 2 --out results/scale.json
    # beyond the corpus: 1 GB of renamed copies (written once to --synthetic-dir)
    python benchmarks/bench_scale.py --synthetic-mb 1000 --budgets 256MB --count-only
    # packing: one process against Ray with 1 and 2 local workers (shards must be identical)
    python benchmarks/bench_scale.py --shards 2 --no-train --budgets --min-piece-count 0 \
        --pack --ray-workers 1 2 --reps 3 --out results/scale_pack.json

Input: ``../shared/corpus/train-*.jsonl.gz`` (CodeParrot schema, ~60 MB of text per shard).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

CORPUS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "corpus"
#: GPT-2's pre-tokenizer regex, which codekiln's ``pattern="gpt2"`` reproduces exactly.
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def make_synthetic(out_dir: pathlib.Path, target_mb: float) -> list[pathlib.Path]:
    """Write ``target_mb`` MB of text as JSONL.gz shards: the train shards, streamed again and
    again, pass ``k`` renaming every identifier that is not a keyword or builtin (and not an
    attribute) to ``name_k``, so that the distinct pieces keep growing as in a larger real
    corpus (new projects bring new names). Deterministic; existing shards are reused."""
    import builtins
    import gzip
    import keyword
    import re

    keep = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | {"self", "cls"}
    ident = re.compile(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]{2,})\b")
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = sorted(CORPUS.glob("train-*.jsonl.gz"))
    written, paths, k = 0.0, [], 0
    while written < target_mb:
        for shard in shards:
            if written >= target_mb:
                break
            path = out_dir / f"synthetic-{k:03d}-{shard.name}"
            paths.append(path)
            if path.exists():
                with gzip.open(path, "rt", encoding="utf-8") as f:
                    written += sum(len(json.loads(x)["content"].encode()) for x in f) / 1e6
                continue
            tmp = path.with_suffix(".tmp")
            with (
                gzip.open(shard, "rt", encoding="utf-8") as src,
                gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as dst,
            ):
                for line in src:
                    text = json.loads(line)["content"]
                    if k:
                        text = ident.sub(
                            lambda m, k=k: m[1] if m[1] in keep else f"{m[1]}_{k}", text
                        )
                    dst.write(json.dumps({"content": text}) + "\n")
                    written += len(text.encode()) / 1e6
            tmp.rename(path)
        k += 1
    return paths


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _load_texts(files: list[pathlib.Path]) -> list[str]:
    """Every document of the JSONL.gz ``files``, in memory (what the Python-fed anchors need)."""
    import gzip

    texts: list[str] = []
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            texts += [json.loads(line)["content"] for line in fh]
    return texts


def run_one(cfg: dict) -> dict:
    """One configuration, in this process (called in a subprocess by main)."""
    from codekiln import Tokenizer
    from codekiln.tokenizer.counts import count_pieces, train_from_counts

    files = [pathlib.Path(f) for f in cfg["files"]]
    base_rss = _peak_rss_mb()
    start = time.perf_counter()
    kind = cfg["kind"]
    extra: dict = {}
    if kind in ("memory", "budget", "prune"):
        tok = Tokenizer.train(
            files,
            vocab_size=cfg["vocab_size"],
            num_threads=cfg["threads"],
            progress=False,
            max_memory=cfg.get("budget"),
            min_piece_count=cfg.get("min_piece_count", 1),
        )
    elif kind == "hf":
        # The anchor: HF tokenizers' BpeTrainer (ByteLevel, as in bench_tokenizer.py) on the
        # same documents, which it needs in memory; "loaded_rss_mb" is the RSS with the text
        # loaded, before training.
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, pre_tokenizers, trainers

        texts = _load_texts(files)
        extra["loaded_rss_mb"] = round(_current_rss_mb(), 1)
        start = time.perf_counter()
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=cfg["vocab_size"],
            min_frequency=2,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=["<|endoftext|>"],
        )
        hf.train_from_iterator(texts, trainer)
        return {
            **cfg,
            **extra,
            "seconds": round(time.perf_counter() - start, 2),
            "bytes": sum(len(t.encode("utf-8")) for t in texts),
            "unique_pieces": None,
            "kept_pieces": None,
            "spill_runs": None,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "base_rss_mb": round(base_rss, 1),
            "fingerprint": "-",
            "merges": hf.get_vocab_size(),
        }
    elif kind == "rustbpe":
        # The second anchor: rustbpe (nanochat's trainer) with GPT-2's split. Like HF's, its
        # input is Python strings: the documents are loaded first (not timed; "loaded_rss_mb"
        # is the RSS then) and handed over by an iterator, which rustbpe drains in parallel.
        # Its merges are compared with ours trained the same way ("gpt2-memory": pattern
        # gpt2, no <N>) in main().
        import rustbpe

        texts = _load_texts(files)
        extra["loaded_rss_mb"] = round(_current_rss_mb(), 1)
        start = time.perf_counter()
        rb = rustbpe.Tokenizer()
        rb.train_from_iterator(iter(texts), cfg["vocab_size"], pattern=GPT2_SPLIT)
        seconds = time.perf_counter() - start
        ranks = sorted((r, bytes(b)) for b, r in rb.get_mergeable_ranks())
        pathlib.Path(cfg["dump"]).write_text(json.dumps([b.hex() for _, b in ranks]))
        return {
            **cfg,
            **extra,
            "seconds": round(seconds, 2),
            "bytes": sum(len(t.encode("utf-8")) for t in texts),
            "unique_pieces": None,
            "kept_pieces": None,
            "spill_runs": None,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "base_rss_mb": round(base_rss, 1),
            "fingerprint": "-",
            "merges": len(ranks) - 256,
        }
    elif kind == "gpt2-memory":
        tok = Tokenizer.train(
            files,
            vocab_size=cfg["vocab_size"],
            pattern="gpt2",
            newline=None,
            special_tokens=(),
            num_threads=cfg["threads"],
            progress=False,
        )
        ranks = sorted((r, b) for b, r in tok.to_tiktoken()._mergeable_ranks.items())
        pathlib.Path(cfg["dump"]).write_text(json.dumps([b.hex() for _, b in ranks]))
    elif kind == "count-only":
        # Stage 1 alone (what the budget bounds): count into a file, no merge phase.
        with tempfile.TemporaryDirectory() as d:
            stats = count_pieces(
                files,
                os.path.join(d, "counts.bin"),
                num_threads=cfg["threads"],
                progress=False,
                max_memory=cfg.get("budget"),
            )
        return {
            **cfg,
            "seconds": round(time.perf_counter() - start, 2),
            "bytes": stats["bytes"],
            "unique_pieces": stats["distinct_pieces"],
            "kept_pieces": None,
            "spill_runs": None,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "base_rss_mb": round(base_rss, 1),
            "fingerprint": "-",
            "merges": 0,
        }
    elif kind == "counts":
        with tempfile.TemporaryDirectory() as d:
            outs = []
            t0 = time.perf_counter()
            for i, f in enumerate(files):
                out = os.path.join(d, f"counts-{i:03d}.bin")
                count_pieces([f], out, num_threads=cfg["threads"], progress=False)
                outs.append(out)
            extra["count_seconds"] = round(time.perf_counter() - t0, 2)
            extra["count_file_mb"] = round(sum(os.path.getsize(o) for o in outs) / 1e6, 1)
            tok = train_from_counts(
                outs, vocab_size=cfg["vocab_size"], num_threads=cfg["threads"], progress=False
            )
    elif kind == "ray":
        import ray
        from codekiln.distributed import count_on_ray

        t0 = time.perf_counter()
        ray.init(num_cpus=cfg["workers"], include_dashboard=False, log_to_driver=False)
        extra["ray_start_seconds"] = round(time.perf_counter() - t0, 2)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            outs = count_on_ray(files, d)
            extra["count_seconds"] = round(time.perf_counter() - t0, 2)
            tok = train_from_counts(
                outs, vocab_size=cfg["vocab_size"], num_threads=cfg["threads"], progress=False
            )
        ray.shutdown()
    elif kind in ("pack", "pack-ray"):
        return _run_pack(cfg, files, base_rss)
    else:
        raise ValueError(kind)
    seconds = time.perf_counter() - start
    if cfg.get("bpt"):
        # Compression on the held-out valid shard (not timed).
        import gzip

        with gzip.open(CORPUS / "valid-00000.jsonl.gz", "rt", encoding="utf-8") as f:
            texts = [json.loads(line)["content"] for line in f]
        ids = tok.encode_batch(texts, num_threads=cfg["threads"])
        total = sum(len(t.encode("utf-8")) for t in texts)
        extra["valid_bytes_per_token"] = round(total / sum(map(len, ids)), 4)
    r = tok.train_report or {}
    return {
        **cfg,
        **extra,
        "seconds": round(seconds, 2),
        "bytes": r.get("bytes"),
        "unique_pieces": r.get("unique_pieces"),
        "kept_pieces": r.get("kept_pieces"),
        "spill_runs": r.get("spill_runs"),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "base_rss_mb": round(base_rss, 1),
        "fingerprint": tok.fingerprint[:16],
        "merges": len(tok.merges),
    }


def _num(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def _run_pack(cfg: dict, files: list[pathlib.Path], base_rss: float) -> dict:
    """One packing run: ``pack`` (one process, ``threads`` threads) or ``pack-ray`` (a local
    Ray of ``workers`` CPUs, one-thread tasks; the driver decides and writes with ``threads``
    threads). Reports a digest of the shards' SHA-256s: every run must print the same."""
    import hashlib

    from codekiln.data import PackConfig, pack

    extra: dict = {}
    pcfg = PackConfig(num_threads=cfg["threads"])
    with tempfile.TemporaryDirectory() as d:
        out = pathlib.Path(d) / "out"
        if cfg["kind"] == "pack":
            t0 = time.perf_counter()
            m = pack(files, cfg["tokenizer"], out, pcfg, progress=False)
        else:
            import ray
            from codekiln.distributed import pack_on_ray

            t0 = time.perf_counter()
            ray.init(num_cpus=cfg["workers"], include_dashboard=False, log_to_driver=False)
            extra["ray_start_seconds"] = round(time.perf_counter() - t0, 2)
            work = pathlib.Path(d) / "work"
            t0 = time.perf_counter()
            m = pack_on_ray(files, cfg["tokenizer"], out, pcfg, progress=False, work_dir=work)
            extra["work_dir_mb"] = round(sum(f.stat().st_size for f in work.iterdir()) / 1e6, 1)
            extra["ray"] = m["report"]["this_run"]["ray"]
            ray.shutdown()
        seconds = time.perf_counter() - t0
    shas = [sh["sha256"] for s in ("train", "valid") for sh in m["splits"][s]["shards"]]
    kept = sum(m["splits"][s]["documents"] for s in ("train", "valid"))
    return {
        **cfg,
        **extra,
        "files": None,
        "seconds": round(seconds, 2),
        "bytes": m["report"]["bytes_in"],
        "documents_in": m["report"]["documents_in"],
        "kept_documents": kept,
        "tokens": sum(m["splits"][s]["tokens"] for s in ("train", "valid")),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "base_rss_mb": round(base_rss, 1),
        "fingerprint": hashlib.sha256("".join(shas).encode()).hexdigest()[:16],
    }


def _pack_table(summary: list[dict]) -> None:
    print("\n| input | mode | MB | s (median) | MB/s | peak RSS MB (driver) | shards digest |")
    print("|---|---|---|---|---|---|---|")
    for r in summary:
        w = r.get("workers")
        mode = "one process" if r["kind"] == "pack" else f"Ray, {w} worker{'s' * (w > 1)}"
        mb = r["bytes"] / 1e6
        note = ""
        if r["kind"] == "pack-ray":
            ray = r["ray"]
            dup = ray["encoded_documents"] - r["kept_documents"]
            note = (
                f" pass 1 {ray['prepare_seconds']:.1f} s, feeding pass 2 "
                f"{ray['feed_seconds']:.2f} s; ray.init {r['ray_start_seconds']} s; "
                f"prepared files {r['work_dir_mb']} MB; "
                f"{dup:,} duplicate documents tokenized in vain of {ray['encoded_documents']:,}"
            )
        print(
            f"| {r['shards']} shards | {mode} | {mb:.0f} | {r['seconds']:.1f} | "
            f"{mb / r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['fingerprint']} |{note}"
        )


def _pack_tokenizer(path: pathlib.Path, vocab_size: int) -> str:
    """A tokenizer for the packing rows, trained once on the valid shard and kept."""
    if not path.exists():
        from codekiln import Tokenizer

        tok = Tokenizer.train(CORPUS / "valid-00000.jsonl.gz", vocab_size=vocab_size)
        tok.save(path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--shards", type=int, nargs="+", default=[2, 5], help="train shards used")
    ap.add_argument("--vocab-size", type=int, default=32768)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budgets", nargs="*", default=["256MB", "32MB"])
    ap.add_argument("--min-piece-count", type=int, default=2, help="pruned run (0: none)")
    ap.add_argument("--counts", action="store_true", help="also count files + train from them")
    ap.add_argument(
        "--count-only", action="store_true", help="also stage 1 alone, with and without budgets"
    )
    ap.add_argument("--ray-workers", type=int, nargs="*", default=[], help="Ray runs (CPUs)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--no-train", action="store_true", help="skip the full training runs")
    ap.add_argument("--bpt", action="store_true", help="bytes/token on the valid shard")
    ap.add_argument("--hf", action="store_true", help="also HF tokenizers' BpeTrainer")
    ap.add_argument(
        "--rustbpe",
        action="store_true",
        help="also rustbpe with GPT-2's split, next to codekiln's gpt2 pattern (merges compared)",
    )
    ap.add_argument(
        "--synthetic-mb",
        type=float,
        default=0,
        help="instead of --shards: this many MB of the corpus streamed repeatedly with "
        "identifiers renamed per pass (written once under --synthetic-dir)",
    )
    ap.add_argument("--synthetic-dir", default="/tmp/codekiln-synthetic")
    ap.add_argument(
        "--pack",
        action="store_true",
        help="packing rows: one process, and Ray with each of --ray-workers (instead of "
        "counting on Ray)",
    )
    ap.add_argument(
        "--pack-tokenizer",
        default="/tmp/codekiln-bench-scale-tok.json",
        help="tokenizer for --pack (trained on the valid shard when missing)",
    )
    ap.add_argument("--out", default=None, help="JSON results file")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return
    shards = sorted(CORPUS.glob("train-*.jsonl.gz"))
    if not shards:
        sys.exit(f"corpus not found at {CORPUS}")
    inputs = [(n, shards[:n]) for n in args.shards]
    if args.synthetic_mb:
        made = make_synthetic(pathlib.Path(args.synthetic_dir), args.synthetic_mb)
        inputs = [(f"synthetic {args.synthetic_mb:.0f} MB", made)]
    configs = []
    dumps = tempfile.TemporaryDirectory()  # merges of the rustbpe comparison
    for n, paths in inputs:
        common = {"files": [str(p) for p in paths], "shards": n}
        common.update(vocab_size=args.vocab_size, threads=args.threads, bpt=args.bpt)
        if not args.no_train:
            configs.append({**common, "kind": "memory"})
            configs += [{**common, "kind": "budget", "budget": b} for b in args.budgets]
        if args.min_piece_count > 1:
            configs.append({**common, "kind": "prune", "min_piece_count": args.min_piece_count})
        if args.counts:
            configs.append({**common, "kind": "counts"})
        if args.count_only:
            configs.append({**common, "kind": "count-only"})
            configs += [{**common, "kind": "count-only", "budget": b} for b in args.budgets]
        if args.pack:
            tok = _pack_tokenizer(pathlib.Path(args.pack_tokenizer), args.vocab_size)
            configs.append({**common, "kind": "pack", "tokenizer": tok})
            configs += [
                {**common, "kind": "pack-ray", "workers": w, "tokenizer": tok}
                for w in args.ray_workers
            ]
        else:
            configs += [{**common, "kind": "ray", "workers": w} for w in args.ray_workers]
        if args.hf:
            configs.append({**common, "kind": "hf"})
        if args.rustbpe:
            for kind in ("gpt2-memory", "rustbpe"):
                dump = os.path.join(dumps.name, f"{kind}-{n}.json".replace(" ", "_"))
                configs.append({**common, "kind": kind, "dump": dump})
    results: dict[int, list[dict]] = {i: [] for i in range(len(configs))}
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1] / "python")}
    for rep in range(args.reps):
        for i, cfg in enumerate(configs):  # interleaved: every config once per rep
            out = subprocess.run(
                [sys.executable, __file__, "--one", json.dumps(cfg)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[i].append(res)
            print(
                f"rep {rep} {cfg['kind']:>6} shards={cfg['shards']} "
                f"{cfg.get('budget') or cfg.get('min_piece_count') or cfg.get('workers') or ''}: "
                f"{res['seconds']} s, peak {res['peak_rss_mb']} MB, {res['fingerprint']}",
                flush=True,
            )
    summary = []
    for runs in results.values():
        med = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "peak_rss_mb")}
        row = {**runs[0], **med, "reps": len(runs), "files": None}
        if "ray" in runs[0]:
            row["ray"] = {
                **runs[0]["ray"],
                **{
                    k: statistics.median(r["ray"][k] for r in runs)
                    for k in ("prepare_seconds", "feed_seconds")
                },
            }
            row["ray_start_seconds"] = statistics.median(r["ray_start_seconds"] for r in runs)
        if "count_seconds" in runs[0]:
            row["count_seconds"] = statistics.median(r["count_seconds"] for r in runs)
        summary.append(row)
    packing = [r for r in summary if r["kind"].startswith("pack")]
    if packing:
        _pack_table(packing)
    summary_train = [r for r in summary if not r["kind"].startswith("pack")]
    if summary_train:
        _train_table(summary_train)
    _compare_with_rustbpe(summary)
    dumps.cleanup()
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")


def _train_table(summary: list[dict]) -> None:
    print(
        "\n| input | mode | MB | s (median) | MB/s | peak RSS MB | distinct | kept | runs "
        "| fingerprint |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in summary:
        mode = r["kind"] + (
            f" {r['budget']}"
            if r.get("budget")
            else f" >= {r['min_piece_count']}"
            if r["kind"] == "prune"
            else f" {r['workers']} workers"
            if r["kind"] == "ray"
            else ""
        )
        mb = r["bytes"] / 1e6
        print(
            f"| {r['shards']} shards | {mode} | {mb:.0f} | {r['seconds']:.1f} | "
            f"{mb / r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {_num(r['unique_pieces'])} | "
            f"{r.get('kept_pieces') or '-'} | "
            f"{r.get('spill_runs') or 0} | {r['fingerprint']} |"
            + (f" valid bytes/token {r['valid_bytes_per_token']}" if r.get("bpt") else "")
            + (f" count {r['count_seconds']} s" if r.get("count_seconds") else "")
            + (f" loaded {r['loaded_rss_mb']} MB" if r.get("loaded_rss_mb") else "")
        )


def _compare_with_rustbpe(summary: list[dict]) -> None:
    """An anchor counts only with the same output: compare rustbpe's merges with ours (same
    split, same input). BPE's ties (pairs with equal counts) are broken in a different order
    (rustbpe: raw byte ids; codekiln/HF: GPT-2's byte-level alphabet), so the orders may part
    at the first tie while the learned tokens stay the same."""
    for r in summary:
        if r["kind"] == "rustbpe":
            theirs = json.loads(pathlib.Path(r["dump"]).read_text())
            ours = json.loads(
                pathlib.Path(r["dump"].replace("rustbpe-", "gpt2-memory-")).read_text()
            )
            prefix = next(
                (i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                min(map(len, (ours, theirs))),
            )
            r["same_tokens"] = len(set(ours) & set(theirs))
            r["of_tokens"] = len(ours)
            r["same_merge_prefix"] = max(0, prefix - 256)
            r["identical"] = ours == theirs
            print(
                f"rustbpe vs codekiln gpt2, {r['shards']} shards: identical={r['identical']}, "
                f"same tokens {r['same_tokens']:,} of {len(ours):,}, merges equal up to "
                f"#{r['same_merge_prefix']:,}"
            )


if __name__ == "__main__":
    main()
