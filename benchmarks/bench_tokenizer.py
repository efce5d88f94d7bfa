"""Tokenizer benchmark: codekiln against the anchors, side by side in one run.

Measures, on ``../shared/corpus`` (gzipped JSON lines, CodeParrot schema):

* training wall time and peak memory on the first ``--train-mb`` MB of the train shards at
  ``--vocab`` tokens: codekiln vs HF tokenizers' BpeTrainer (ByteLevel) vs rustbpe;
* single-thread and two-thread encoding throughput on the valid shard: codekiln vs tiktoken
  (same merges via ``to_tiktoken()``), HF tokenizers (same merges via ``to_huggingface()``),
  and tokie (loading the exported tokenizer.json) where it is installed; every anchor row
  states how many valid documents it encoded to exactly our ids, and an anchor that is not
  exact on every document gets "not comparable" instead of a speed;
* bytes per token on the valid shard: codekiln's ``code`` and ``gpt2`` patterns vs a
  tokenizer trained by rustbpe on the same text with the GPT-4 (cl100k) split;
* exact parity: tiktoken and HF ids equal codekiln's on every valid document, both newline
  modes;
* pathological inputs (1 MB of one character, of spaces, one 1 MB line): encode time grows
  about linearly (compared with 1/8 of the input).

``--only compression`` trains only the newline rules (merged/strict ``<N>``, ``newline=None``),
the gpt2 pattern and the GPT-4-split anchor (rustbpe, or HF's BpeTrainer with the GPT-4 split
where rustbpe is not installed) and reports bytes per token; ``--only arrays --tokenizer F``
times ``encode_batch``'s list and numpy outputs on 1 and 2 threads.

Every figure is the median of ``--runs`` runs. Training runs each happen in a fresh process so
peak RSS is comparable (reported as the growth over the process's RSS after loading the text).

    python benchmarks/bench_tokenizer.py --runs 3 --out benchmarks/results/tokenizer.json
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import json
import multiprocessing as mp
import os
import pathlib
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
GPT4_SPLIT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)


# ---------------------------------------------------------------------------- data
def load_texts(corpus: pathlib.Path, split: str, limit_mb: float | None) -> list[str]:
    """Documents of a split, in shard order, up to ``limit_mb`` MB of UTF-8 text."""
    texts: list[str] = []
    total = 0
    limit = None if limit_mb is None else limit_mb * 1e6
    for shard in sorted(corpus.glob(f"{split}-*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as f:
            for line in f:
                text = json.loads(line)["content"]
                texts.append(text)
                total += len(text.encode("utf-8"))
                if limit is not None and total >= limit:
                    return texts
    if not texts:
        raise SystemExit(f"no {split} shards found under {corpus}")
    return texts


def nbytes(texts: list[str]) -> int:
    return sum(len(t.encode("utf-8")) for t in texts)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---------------------------------------------------------------------------- training
def _train_child(kind: str, corpus: str, train_mb: float, vocab: int, threads: int, out: str):
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["RAYON_RS_NUM_CPUS"] = str(threads)
    texts = load_texts(pathlib.Path(corpus), "train", train_mb)
    base = current_rss_mb()
    t0 = time.perf_counter()
    result: dict[str, Any] = {}
    if kind.startswith("codekiln"):
        from codekiln import Tokenizer

        pattern = "gpt2" if kind.startswith("codekiln-gpt2") else "code"
        newline = None if kind == "codekiln-nonl" else "<N>"
        rule = "strict" if kind.endswith("-strict") else "merged"
        tok = Tokenizer.train(
            texts,
            vocab_size=vocab,
            pattern=pattern,
            newline=newline,
            newline_rule=rule,
            num_threads=threads,
            progress=False,
        )
        dt = time.perf_counter() - t0
        tok.save(out)
    elif kind == "hf":
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, pre_tokenizers, trainers

        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab,
            min_frequency=2,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=["<|endoftext|>"],
        )
        tok.train_from_iterator(texts, trainer)
        dt = time.perf_counter() - t0
    elif kind == "hf-gpt4-split":
        # The GPT-4 (cl100k) split trained by HF's BpeTrainer: the GPT-4-split anchor where
        # rustbpe is not installed (same split, same data; BPE's tie-breaks differ).
        from tokenizers import Regex, models, pre_tokenizers, trainers
        from tokenizers import Tokenizer as HFTokenizer

        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(GPT4_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        trainer = trainers.BpeTrainer(
            vocab_size=vocab,
            min_frequency=2,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator(texts, trainer)
        dt = time.perf_counter() - t0
        tok.save(out)
    elif kind == "rustbpe":
        import rustbpe

        tok = rustbpe.Tokenizer()
        tok.train_from_iterator(iter(texts), vocab, pattern=GPT4_SPLIT)
        dt = time.perf_counter() - t0
        ranks = tok.get_mergeable_ranks()
        with open(out, "w") as f:
            json.dump([[list(b), r] for b, r in ranks], f)
    else:
        raise ValueError(kind)
    result.update(seconds=dt, peak_mb=rss_mb() - base, text_mb=nbytes(texts) / 1e6)
    with open(out + ".result.json", "w") as f:
        json.dump(result, f)


def run_training(kind: str, args: argparse.Namespace, out: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    times, peaks = [], []
    for _ in range(args.train_runs):
        p = ctx.Process(
            target=_train_child,
            args=(kind, str(args.corpus), args.train_mb, args.vocab, args.threads, out),
        )
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"training run {kind} failed (exit {p.exitcode})")
        with open(out + ".result.json") as f:
            r = json.load(f)
        times.append(r["seconds"])
        peaks.append(r["peak_mb"])
        print(f"  train {kind:14s} {r['seconds']:7.2f} s  peak +{r['peak_mb']:.0f} MB", flush=True)
    return {
        "seconds": statistics.median(times),
        "runs": times,
        "peak_mb": max(peaks),
        "text_mb": r["text_mb"],
    }


# ---------------------------------------------------------------------------- encoding
def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def pinned(cores: set[int]):
    class _Pin:
        def __enter__(self):
            self.old = os.sched_getaffinity(0)
            os.sched_setaffinity(0, cores)

        def __exit__(self, *exc):
            os.sched_setaffinity(0, self.old)

    return _Pin()


def bench_encoding(tok, valid: list[str], args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    mb = nbytes(valid) / 1e6
    res: dict[str, Any] = {"valid_mb": mb}
    one = {min(os.sched_getaffinity(0))}

    with pinned(one):
        dt, ids = timed(lambda: tok.encode_batch(valid, num_threads=1), args.runs)
    res["codekiln_1t"] = mb / dt
    dt, ids2 = timed(lambda: tok.encode_batch(valid, num_threads=2), args.runs)
    res["codekiln_2t"] = mb / dt
    assert ids == ids2, "codekiln: thread count changed the ids"
    res["tokens"] = sum(map(len, ids))

    enc = tok.to_tiktoken()
    with pinned(one):
        dt, tk_ids = timed(lambda: [enc.encode_ordinary(t) for t in valid], args.runs)
    res["tiktoken_1t"] = mb / dt
    dt, _ = timed(lambda: enc.encode_ordinary_batch(valid, num_threads=2), args.runs)
    res["tiktoken_2t"] = mb / dt

    hf = tok.to_huggingface()
    with pinned(one):
        dt, hf_ids = timed(
            lambda: [hf.encode(t, add_special_tokens=False).ids for t in valid], args.runs
        )
    res["hf_1t"] = mb / dt

    # A speed figure counts only when the anchor gives our ids: count identical documents.
    res["documents"] = len(valid)
    res["codekiln_identical"] = len(valid)  # the reference itself (1 vs 2 threads asserted)
    res["tiktoken_identical"] = sum(a == b for a, b in zip(ids, tk_ids))
    res["hf_identical"] = sum(a == b for a, b in zip(ids, hf_ids))
    res["tiktoken_parity"] = res["tiktoken_identical"] / len(valid)
    res["hf_parity"] = res["hf_identical"] / len(valid)

    # tokie loads HF tokenizer.json files; try ours (it may not support the Split regex).
    try:
        import tokie

        d = pathlib.Path(tmp) / "hf"
        tok.save_huggingface(d)
        tk = tokie.Tokenizer.from_json(str(d / "tokenizer.json"))
        with pinned(one):
            dt, tokie_ids = timed(
                lambda: [tk.encode(t, add_special_tokens=False).ids for t in valid], args.runs
            )
        res["tokie_1t"] = mb / dt
        dt, _ = timed(lambda: tk.encode_batch(valid, add_special_tokens=False), args.runs)
        res["tokie_2t"] = mb / dt
        res["tokie_identical"] = sum(list(a) == b for a, b in zip(tokie_ids, ids))
        res["tokie_parity"] = res["tokie_identical"] / len(valid)
    except Exception as e:  # report, do not hide: the table says why tokie is missing
        res["tokie_error"] = f"{type(e).__name__}: {e}"[:200]
    return res


def bench_arrays(tok, valid: list[str], runs: int) -> dict[str, Any]:
    """``encode_batch`` lists vs ``output="flat"`` / ``"arrays"`` on 1 and 2 threads (1 thread
    pinned to one core), interleaved round by round so that load from other processes hits
    every variant alike; medians per variant and per-round ratios."""
    import numpy as np

    mb = nbytes(valid) / 1e6
    one = {min(os.sched_getaffinity(0))}
    variants = {
        "lists_1t": (1, "lists"),
        "flat_1t": (1, "flat"),
        "lists_2t": (2, "lists"),
        "flat_2t": (2, "flat"),
        "arrays_2t": (2, "arrays"),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    want = tok.encode_batch(valid, num_threads=2)
    flat, offsets = tok.encode_batch(valid, num_threads=1, output="flat")
    identical = sum(
        flat[a:b].tolist() == w for (a, b), w in zip(itertools.pairwise(offsets.tolist()), want)
    )
    for _ in range(runs):
        for name, (threads, output) in variants.items():
            pin = pinned(one) if threads == 1 else contextlib.nullcontext()
            with pin:
                t0 = time.perf_counter()
                tok.encode_batch(valid, num_threads=threads, output=output)
                times[name].append(time.perf_counter() - t0)
    ratio = lambda a, b: statistics.median(x / y for x, y in zip(times[a], times[b]))  # noqa: E731
    return {
        "valid_mb": mb,
        "identical_documents": identical,
        "documents": len(valid),
        "mb_per_s": {k: mb / statistics.median(v) for k, v in times.items()},
        "flat_2t_over_1t": ratio("flat_1t", "flat_2t"),
        "lists_2t_over_1t": ratio("lists_1t", "lists_2t"),
        "flat_1t_over_lists_1t": ratio("lists_1t", "flat_1t"),
        "flat_2t_over_lists_2t": ratio("lists_2t", "flat_2t"),
        "numpy": np.__version__,
    }


def bench_pathological(tok, args: argparse.Namespace) -> dict[str, Any]:
    cases = {
        "1 MB of 'a'": "a" * 1_000_000,
        "1 MB of spaces": " " * 1_000_000,
        "1 MB of '='": "=" * 1_000_000,
        "one 1 MB line": ("x_1 = foo(bar, 12345) + 'baz'; " * 40_000)[:1_000_000],
    }
    out = {}
    for name, text in cases.items():
        small = text[: len(text) // 8]
        dt_full, ids = timed(lambda t=text: tok.encode(t), args.runs)
        dt_small, _ = timed(lambda t=small: tok.encode(t), args.runs)
        assert tok.decode(ids) == text
        out[name] = {
            "seconds": dt_full,
            "mb_per_s": 1.0 / dt_full,
            "ratio_vs_eighth": dt_full / dt_small,
        }
    return out


def bytes_per_token_rustbpe(ranks_path: str, valid: list[str]) -> float:
    import tiktoken

    with open(ranks_path) as f:
        ranks = {bytes(b): r for b, r in json.load(f)}
    enc = tiktoken.Encoding(
        "rustbpe-cl100k-split", pat_str=GPT4_SPLIT, mergeable_ranks=ranks, special_tokens={}
    )
    toks = sum(len(x) for x in enc.encode_ordinary_batch(valid, num_threads=2))
    return nbytes(valid) / toks


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", type=pathlib.Path, default=DEFAULT_CORPUS)
    ap.add_argument("--train-mb", type=float, default=200.0)
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="runs per encoding figure (median)")
    ap.add_argument("--train-runs", type=int, default=3, help="runs per training figure")
    ap.add_argument(
        "--skip-anchors-training",
        action="store_true",
        help="train only codekiln (HF and rustbpe training are slow)",
    )
    ap.add_argument(
        "--only",
        choices=["arrays", "compression", "rules-speed"],
        default=None,
        help="arrays: only encode_batch lists vs numpy outputs, 1 vs 2 threads (needs "
        "--tokenizer); compression: only bytes per token of the newline rules vs the GPT-4 split",
    )
    ap.add_argument("--tokenizer", type=pathlib.Path, help="a saved tokenizer for --only")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks/results/tokenizer.json")
    args = ap.parse_args(argv)
    if not (args.corpus / "valid-00000.jsonl.gz").exists():
        print(f"corpus not found at {args.corpus}", file=sys.stderr)
        return 2

    from codekiln import Tokenizer

    if args.only == "compression":
        results = bench_compression(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(render_compression(results))
        return 0
    if args.only == "rules-speed":
        results = bench_rules_speed(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1))
        return 0
    if args.only == "arrays":
        if args.tokenizer is None:
            ap.error("--only arrays needs --tokenizer FILE")
        tok = Tokenizer.load(args.tokenizer)
        arrays = bench_arrays(tok, load_texts(args.corpus, "valid", None), args.runs)
        arrays["tokenizer"] = repr(tok)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"date": time.strftime("%Y-%m-%d"), "arrays": arrays}, indent=2)
        )
        print(render_arrays(arrays))
        return 0

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": vars(args) | {"corpus": str(args.corpus), "out": str(args.out)},
        "date": time.strftime("%Y-%m-%d"),
    }
    valid = load_texts(args.corpus, "valid", None)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"training on {args.train_mb:.0f} MB, vocab {args.vocab}, {args.threads} threads")
        train: dict[str, Any] = {}
        paths = {
            k: os.path.join(tmp, k + ".json")
            for k in ["codekiln", "codekiln-nonl", "codekiln-gpt2", "hf", "rustbpe"]
        }
        train["codekiln"] = run_training("codekiln", args, paths["codekiln"])
        if not args.skip_anchors_training:
            train["hf"] = run_training("hf", args, paths["hf"])
            train["rustbpe"] = run_training("rustbpe", args, paths["rustbpe"])
        one = argparse.Namespace(**(vars(args) | {"train_runs": 1}))
        run_training("codekiln-nonl", one, paths["codekiln-nonl"])
        run_training("codekiln-gpt2", one, paths["codekiln-gpt2"])
        results["train"] = train

        tok = Tokenizer.load(paths["codekiln"])
        print("encoding the valid shard")
        results["encode"] = bench_encoding(tok, valid, args, tmp)
        nonl = Tokenizer.load(paths["codekiln-nonl"])
        enc_nonl = bench_encoding(nonl, valid, argparse.Namespace(runs=1), tmp)
        results["encode_newline_none"] = {
            k: enc_nonl[k] for k in ("tiktoken_parity", "hf_parity", "tokens")
        }
        gpt2 = Tokenizer.load(paths["codekiln-gpt2"])
        # tiktoken's fancy-regex is much slower on the code pattern than on GPT-2's, so the
        # fair encoder comparison also runs with the gpt2 pattern on both sides.
        enc_gpt2 = bench_encoding(gpt2, valid, args, tmp)
        results["encode_gpt2_pattern"] = enc_gpt2
        mb = nbytes(valid)
        bpt = {
            "codekiln code <N>": mb / results["encode"]["tokens"],
            "codekiln code newline=None": mb / enc_nonl["tokens"],
            "codekiln gpt2 <N>": mb / enc_gpt2["tokens"],
        }
        if not args.skip_anchors_training:
            bpt["rustbpe cl100k split"] = bytes_per_token_rustbpe(paths["rustbpe"], valid)
        results["bytes_per_token"] = bpt
        results["pathological"] = bench_pathological(tok, args)
        results["arrays"] = bench_arrays(tok, valid, args.runs)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


COMPRESSION_KINDS = ["codekiln", "codekiln-strict", "codekiln-nonl", "codekiln-gpt2"]


def bench_compression(args: argparse.Namespace) -> dict[str, Any]:
    """Bytes per token on the valid shard (never trained on) of tokenizers trained on the same
    first ``--train-mb`` MB at ``--vocab``: codekiln's default (merged <N>), the strict <N>
    rule, newline=None, the gpt2 pattern, and the GPT-4 split (rustbpe, else HF BpeTrainer).
    Each trained once in a fresh process (``--train-runs`` runs for the training times)."""
    import tiktoken
    from codekiln import Tokenizer

    valid = load_texts(args.corpus, "valid", None)
    total = nbytes(valid)
    try:
        import rustbpe  # noqa: F401

        anchor = "rustbpe"
    except ImportError:
        anchor = "hf-gpt4-split"
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "anchor": anchor, "train": {}}
    bpt: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in [*COMPRESSION_KINDS, anchor]:
            path = os.path.join(tmp, kind + ".json")
            out["train"][kind] = run_training(kind, args, path)
            if kind == "rustbpe":
                bpt[kind] = bytes_per_token_rustbpe(path, valid)
            elif kind == "hf-gpt4-split":
                from tokenizers import Tokenizer as HFTokenizer

                hf = HFTokenizer.from_file(path)
                toks = sum(len(e.ids) for e in hf.encode_batch(valid, add_special_tokens=False))
                bpt[kind] = total / toks
            else:
                tok = Tokenizer.load(path)
                flat, _ = tok.encode_batch(valid, output="flat")
                bpt[kind] = total / len(flat)
                assert tok.decode(flat) == "".join(valid), kind  # decode stays exact
    try:  # the 100k-vocabulary reference, if tiktoken has it cached (no network at run time)
        enc = tiktoken.get_encoding("cl100k_base")
        bpt["cl100k_base (100k vocab)"] = total / sum(
            map(len, enc.encode_ordinary_batch(valid, num_threads=2))
        )
    except Exception as e:
        out["cl100k_error"] = f"{type(e).__name__}: {e}"[:200]
    out["bytes_per_token"] = bpt
    out["valid_bytes"] = total
    out["documents"] = len(valid)
    return out


def render_compression(r: dict[str, Any]) -> str:
    bpt, anchor = r["bytes_per_token"], r["anchor"]
    names = {
        "codekiln": "codekiln code, <N> merged (default)",
        "codekiln-strict": "codekiln code, <N> strict",
        "codekiln-nonl": "codekiln code, newline=None",
        "codekiln-gpt2": "codekiln gpt2, <N> merged",
        "rustbpe": "GPT-4 split (rustbpe)",
        "hf-gpt4-split": "GPT-4 split (HF BpeTrainer)",
    }
    lines = [
        "",
        "| tokenizer (valid shard) | bytes per token | vs GPT-4 split | training s |",
        "|---|---|---|---|",
    ]
    for k, v in bpt.items():
        train = r["train"].get(k)
        secs = f"{train['seconds']:.1f}" if train else ""
        lines.append(f"| {names.get(k, k)} | {v:.3f} | {v / bpt[anchor]:.3f} | {secs} |")
    return "\n".join(lines)


def bench_rules_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Merged vs strict ``<N>`` rule, side by side in one process, rounds interleaved: training
    on the first ``--train-mb`` MB (``--threads`` threads) and encoding the valid shard with the
    two tokenizers (1 thread pinned to one core, ``output="flat"``). Ratios are medians of
    per-round ratios (merged time / strict time: below 1 is faster)."""
    from codekiln import Tokenizer

    texts = load_texts(args.corpus, "train", args.train_mb)
    valid = load_texts(args.corpus, "valid", None)
    rules = ["strict", "merged"]
    train_s: dict[str, list[float]] = {r: [] for r in rules}
    encode_s: dict[str, list[float]] = {r: [] for r in rules}
    toks: dict[str, Tokenizer] = {}
    for _ in range(args.train_runs):
        for rule in rules:
            t0 = time.perf_counter()
            toks[rule] = Tokenizer.train(
                texts,
                vocab_size=args.vocab,
                newline_rule=rule,
                num_threads=args.threads,
                progress=False,
            )
            train_s[rule].append(time.perf_counter() - t0)
    one = {min(os.sched_getaffinity(0))}
    with pinned(one):
        for _ in range(args.runs):
            for rule in rules:
                t0 = time.perf_counter()
                toks[rule].encode_batch(valid, num_threads=1, output="flat")
                encode_s[rule].append(time.perf_counter() - t0)
    mb = nbytes(valid) / 1e6

    def ratio(d: dict[str, list[float]]) -> float:
        return statistics.median(m / s for m, s in zip(d["merged"], d["strict"]))

    return {
        "date": time.strftime("%Y-%m-%d"),
        "train_mb": nbytes(texts) / 1e6,
        "train_seconds_median": {r: statistics.median(v) for r, v in train_s.items()},
        "train_merged_over_strict": ratio(train_s),
        "encode_mb_per_s_1t": {r: mb / statistics.median(v) for r, v in encode_s.items()},
        "encode_merged_over_strict": ratio(encode_s),
        "runs": {"train": train_s, "encode": encode_s},
    }


def render(r: dict[str, Any]) -> str:
    lines = ["", "| training | seconds (median) | peak MB over loaded text |", "|---|---|---|"]
    for k, v in r["train"].items():
        lines.append(f"| {k} | {v['seconds']:.2f} | {v['peak_mb']:.0f} |")
    tr = r["train"]
    if "hf" in tr:
        lines.append(
            f"\ncodekiln / HF time: {tr['codekiln']['seconds'] / tr['hf']['seconds']:.2f}; "
            f"codekiln / rustbpe: {tr['codekiln']['seconds'] / tr['rustbpe']['seconds']:.2f}"
        )
    for key, title in [("encode", "code pattern"), ("encode_gpt2_pattern", "gpt2 pattern")]:
        e = r[key]
        lines += [
            "",
            f"| encoder, {title} (valid shard) | identical documents | MB/s 1 thread "
            "| MB/s 2 threads |",
            "|---|---|---|---|",
        ]
        for name in ["codekiln", "tiktoken", "hf", "tokie"]:
            one, two = e.get(f"{name}_1t"), e.get(f"{name}_2t")
            if one is None:
                lines.append(f"| {name} | | n/a ({e.get(name + '_error', 'not run')}) | |")
                continue
            same, docs = e.get(f"{name}_identical", 0), e.get("documents", 0)
            exact = f"{same:,} / {docs:,}"
            if same != docs:  # not the same ids: the speed is no comparison
                lines.append(f"| {name} | {exact} (not exact) | not comparable | |")
                continue
            lines.append(f"| {name} | {exact} | {one:.1f} | {f'{two:.1f}' if two else ''} |")
        lines.append(
            f"\ncodekiln 1t / tiktoken 1t: {e['codekiln_1t'] / e['tiktoken_1t']:.2f}x; "
            f"/ HF 1t: {e['codekiln_1t'] / e['hf_1t']:.2f}x; "
            f"2t / 1t: {e['codekiln_2t'] / e['codekiln_1t']:.2f}x"
        )
    e = r["encode"]
    lines.append(
        f"parity (share of valid documents with identical ids): "
        f"<N> tiktoken {e['tiktoken_parity']:.4f}, HF {e['hf_parity']:.4f}; "
        f"newline=None tiktoken {r['encode_newline_none']['tiktoken_parity']:.4f}, "
        f"HF {r['encode_newline_none']['hf_parity']:.4f}"
    )
    lines += ["", "| bytes per token (valid shard) | |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in r["bytes_per_token"].items()]
    lines += [
        "",
        "| pathological input | seconds | MB/s | time vs 1/8 input |",
        "|---|---|---|---|",
    ]
    for k, v in r["pathological"].items():
        lines.append(
            f"| {k} | {v['seconds']:.3f} | {v['mb_per_s']:.1f} | {v['ratio_vs_eighth']:.1f}x |"
        )
    if "arrays" in r:
        lines.append(render_arrays(r["arrays"]))
    return "\n".join(lines)


def render_arrays(a: dict[str, Any]) -> str:
    m = a["mb_per_s"]
    lines = [
        "",
        "| encode_batch output (valid shard) | MB/s 1 thread | MB/s 2 threads |",
        "|---|---|---|",
        f"| lists | {m['lists_1t']:.1f} | {m['lists_2t']:.1f} |",
        f"| flat (numpy ids + offsets) | {m['flat_1t']:.1f} | {m['flat_2t']:.1f} |",
        f"| arrays (one numpy array per text) | | {m['arrays_2t']:.1f} |",
        "",
        f"2t / 1t: flat {a['flat_2t_over_1t']:.2f}x, lists {a['lists_2t_over_1t']:.2f}x; "
        f"flat / lists: 1 thread {a['flat_1t_over_lists_1t']:.2f}x, "
        f"2 threads {a['flat_2t_over_lists_2t']:.2f}x (medians of per-round ratios); "
        f"flat ids identical to the lists on {a['identical_documents']:,} of "
        f"{a['documents']:,} documents",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
