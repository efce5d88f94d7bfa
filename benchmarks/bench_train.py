"""Training-step speed and memory: ``codekiln.train`` against a plain nanoGPT-style loop.

    python benchmarks/bench_train.py [--steps 60] [--rounds 3] [--data PACKED_DIR]

Both sides train the same ``GPTConfig`` (the ``tiny`` preset sized for the tokenizer, block
256, 16 sequences per step by default) with the same AdamW groups, learning-rate schedule,
gradient clipping and the same batches (``PackedDataset`` blocks in ``BlockSampler`` order),
each in a fresh process per round, rounds interleaved so a slow spell of a shared machine hits
both alike. The reference loop (kept here, not in the library) is nanoGPT's ``train.py`` core:
fetch a batch synchronously, forward, backward, clip, step, nothing else. codekiln's side is
``codekiln.train.train`` with its prefetching loader, metrics, and one checkpoint at the end
(evaluation off). Reported: median tokens/s over the steps after the first five, their ratio
within each round, peak RSS, and RSS growth from 25% of the steps to the end (flat memory);
and whether the two produce the same losses (the reference's figure only counts if they do).

On CUDA (when present) it also runs ``codeparrot-small`` at block 1024 in bf16 through
``codekiln.train`` and reports tokens/s and MFU; without a GPU that row says "not measured".

Without ``--data`` it packs a slice of this interpreter's standard library (8192 tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil


class RssSampler:
    """Samples the process's RSS every 20 ms on a thread; ``mark(step)`` tags progress."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.proc.memory_info().rss))
            time.sleep(0.02)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        t0, t1 = self.samples[0][0], self.samples[-1][0]
        quarter = t0 + 0.25 * (t1 - t0)
        after = [r for t, r in self.samples if t >= quarter]
        return {
            "peak_rss_mb": max(r for _, r in self.samples) / 1e6,
            "rss_at_25pct_mb": after[0] / 1e6,
            "rss_end_mb": after[-1] / 1e6,
        }


def make_data(directory: pathlib.Path) -> pathlib.Path:
    from codekiln.data import PackConfig, pack
    from codekiln.quickstart import stdlib_files
    from codekiln.tokenizer import Tokenizer

    if (directory / "MANIFEST.json").exists():
        return directory
    files = stdlib_files()[:300]
    tok = Tokenizer.train(files, vocab_size=8192, progress=False)
    recs = [{"content": p.read_text(encoding="utf-8"), "path": p.name} for p in files]
    pack(recs, tok, directory, PackConfig(valid_fraction=0.1), overwrite=True, progress=False)
    return directory


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return dict(
        model="tiny",
        block_size=args.block_size,
        micro_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=1e-3,
        warmup_steps=10,
        weight_decay=0.1,
        grad_clip=1.0,
        seed=0,
    )


# ------------------------------------------------------------------------------ the two sides


def worker_reference(data: str, s: dict[str, Any]) -> dict[str, Any]:
    """nanoGPT's training loop, nothing added."""
    import torch
    from codekiln.data import BlockSampler, PackedDataset
    from codekiln.model import GPT, PRESETS, GPTConfig
    from codekiln.tokenizer import Tokenizer
    from codekiln.train.schedule import cosine_lr

    tok = Tokenizer.load(os.path.join(data, "tokenizer.json"))
    ds = PackedDataset(data, "train", s["block_size"])
    torch.manual_seed(s["seed"])
    cfg = GPTConfig(**{**PRESETS[s["model"]], "vocab_size": 64 * -(-tok.vocab_size // 64)})
    model = GPT(cfg)
    opt = model.configure_optimizers(s["weight_decay"], s["learning_rate"], (0.9, 0.95), "cpu")
    it = BlockSampler(len(ds), seed=s["seed"]).stream()
    rss = RssSampler()
    losses, times = [], []
    for step in range(s["max_steps"]):
        t = time.perf_counter()
        lr = cosine_lr(
            step,
            learning_rate=s["learning_rate"],
            min_lr=s["learning_rate"] / 10,
            warmup_steps=s["warmup_steps"],
            decay_steps=s["max_steps"],
        )
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = ds.batch([next(it) for _ in range(s["micro_batch_size"])])
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        times.append(time.perf_counter() - t)
    tokens = s["micro_batch_size"] * s["block_size"]
    return {
        "tokens_per_s": statistics.median(tokens / t for t in times[5:]),
        "losses": losses,
        **rss.stop(),
    }


def worker_codekiln(data: str, s: dict[str, Any], out: str) -> dict[str, Any]:
    from codekiln.train import TrainConfig, train

    rss = RssSampler()
    cfg = TrainConfig(
        data_dir=data,
        out_dir=out,
        eval_every=0,
        checkpoint_every=0,
        log_every=1,
        progress=False,
        device="cpu",
        **s,
    )
    res = train(cfg)
    mem = rss.stop()
    recs = [r for r in res.history if "train_loss" in r]
    return {
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in recs[5:]),
        "losses": [r["train_loss"] for r in recs],
        **mem,
    }


def worker_cuda(data: str, out: str, steps: int) -> dict[str, Any]:
    from codekiln.train import TrainConfig, train

    cfg = TrainConfig(
        data_dir=data,
        out_dir=out,
        model="codeparrot-small",
        block_size=1024,
        micro_batch_size=16,
        max_steps=steps,
        eval_every=0,
        checkpoint_every=0,
        log_every=5,
        progress=False,
        device="cuda",
        precision="bf16",
        compile=True,
    )
    res = train(cfg)
    recs = [r for r in res.history if "tokens_per_s" in r][1:]  # the first includes compiling
    return {
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in recs),
        "mfu": statistics.median(r["mfu"] for r in recs if r.get("mfu") is not None)
        if any(r.get("mfu") is not None for r in recs)
        else None,
        "gpu": __import__("torch").cuda.get_device_name(),
    }


# ------------------------------------------------------------------------------ driver


def run_worker(kind: str, data: pathlib.Path, args: argparse.Namespace, out: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", kind, "--data", str(data), "--out", out]
    cmd += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    cmd += ["--block-size", str(args.block_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=None, help="a pack directory (default: pack the stdlib)")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cuda-steps", type=int, default=60)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker", choices=["reference", "codekiln", "cuda"], help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()

    if args.worker:
        s = settings(args)
        if args.worker == "reference":
            result = worker_reference(args.data, s)
        elif args.worker == "codekiln":
            result = worker_codekiln(args.data, s, args.out)
        else:
            result = worker_cuda(args.data, args.out, args.cuda_steps)
        print(json.dumps(result))
        return

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench_train_"))
    data = pathlib.Path(args.data) if args.data else make_data(work / "data")
    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(args.rounds):
        row = {
            "reference": run_worker("reference", data, args, str(work / f"ref{r}")),
            "codekiln": run_worker("codekiln", data, args, str(work / f"ck{r}")),
        }
        rounds.append(row)
        ratio = row["codekiln"]["tokens_per_s"] / row["reference"]["tokens_per_s"]
        print(
            f"round {r + 1}: codekiln {row['codekiln']['tokens_per_s']:,.0f} tok/s, reference "
            f"{row['reference']['tokens_per_s']:,.0f} tok/s, ratio {ratio:.3f}",
            flush=True,
        )

    def med(side: str, key: str) -> float:
        return statistics.median(rw[side][key] for rw in rounds)

    same = all(rw["codekiln"]["losses"] == rw["reference"]["losses"] for rw in rounds)
    ratio = statistics.median(
        rw["codekiln"]["tokens_per_s"] / rw["reference"]["tokens_per_s"] for rw in rounds
    )
    import torch

    cuda = run_worker("cuda", data, args, str(work / "cuda")) if torch.cuda.is_available() else None
    print()
    print(
        f"CPU, tiny preset, {args.batch_size} x {args.block_size} tokens per step, {args.steps} steps, "
        f"torch threads {torch.get_num_threads()}, {args.rounds} rounds (medians)"
    )
    print("| loop | tokens/s | peak RSS MB | RSS at 25% -> end MB |")
    print("|---|---|---|---|")
    for side in ("codekiln", "reference"):
        print(
            f"| {side} | {med(side, 'tokens_per_s'):,.0f} | {med(side, 'peak_rss_mb'):.0f} | "
            f"{med(side, 'rss_at_25pct_mb'):.0f} -> {med(side, 'rss_end_mb'):.0f} |"
        )
    print(
        f"codekiln / reference tokens/s: {ratio:.3f} (median of per-round ratios); "
        f"identical losses: {'yes' if same else 'NO'}"
    )
    if cuda:
        mfu = f"{100 * cuda['mfu']:.1f}%" if cuda["mfu"] is not None else "unknown peak"
        print(
            f"CUDA ({cuda['gpu']}), codeparrot-small, block 1024, bf16, compile: "
            f"{cuda['tokens_per_s']:,.0f} tokens/s, MFU {mfu}"
        )
    else:
        print("CUDA, codeparrot-small, block 1024: not measured (no GPU)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": rounds, "cuda": cuda, "same_losses": same, "ratio": ratio}, f)


if __name__ == "__main__":
    main()
