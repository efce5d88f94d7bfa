"""Attention workbench: TFLOP/s of every attention implementation ``attention="auto"`` can pick.

Providers, side by side: codekiln's Triton kernel with its two-kernel backward (``triton``) and
its single-pass backward (``triton-single-pass``), the same two through TMA tensor descriptors
(``triton-tma``, ``triton-tma-single-pass``; timed on sm_90+ only, the interpreter smoke checks
them everywhere), PyTorch SDPA forced to its flash, cuDNN and
memory-efficient backends, FlashAttention-3 when ``flash_attn_interface`` is installed, and the
naive reference. A provider that cannot run a shape (not built, unsupported, out of memory)
gets an empty cell.

On CUDA: for causal bf16 attention over sequence lengths 512..16384 and head dims 64 and 128,
first check correctness (every Triton variant against SDPA's flash backend, output and
gradients), then time forward, backward and forward+backward with ``triton.testing.do_bench``
and write a CSV (row by row, so a run cut short keeps what it measured), a PNG plot and a
Markdown table (``--out``, default ``kernels/results``).

Without CUDA it says so and runs a small correctness smoke in Triton's interpreter instead.

    python kernels/bench_attention.py                        # the full sweep (GPU)
    python kernels/bench_attention.py --seq-lens 2048,4096 --head-dims 128 --modes fwd+bwd
    python kernels/bench_attention.py --smoke                # interpreter smoke (any machine)
    python kernels/bench_attention.py --smoke --seq-lens 33 --head-dims 16   # tiny smoke
    python kernels/bench_attention.py --min-ctas 1 --out kernels/results/min_ctas_1  # see below

``--min-ctas N`` changes the autotuner's occupancy rule for this run (keep configs that reach N
CTAs per sm_90 SM; the library's default is 2): ``--min-ctas 1`` lets the 1-CTA 8-warp tiles of
FlashAttention-2 back in, to check on a GPU whether pruning them was right.

FLOPs (the FlashAttention / Triton tutorial 06 convention): a forward pass is two matmuls of
``2 * B * H * T^2 * D`` FLOPs each, halved when causal; the backward counts 2.5x the forward
(five matmuls instead of two, recomputing P); forward+backward is 3.5x.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import torch  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    # Must happen before codekiln.kernels (and so triton's @jit) is imported.
    os.environ.setdefault("TRITON_INTERPRET", "1")

from codekiln.attention import run_candidate  # noqa: E402
from codekiln.attention_auto import CANDIDATES  # noqa: E402
from codekiln.model import naive_attention  # noqa: E402

PROVIDERS = (*CANDIDATES, "naive")
#: Our kernels, checked against SDPA-flash before they are timed.
OURS = ("triton", "triton-single-pass", "triton-tma", "triton-tma-single-pass")
#: The TMA variants: on a GPU without TMA (below sm_90) they would run the pointer kernels.
TMA_PROVIDERS = ("triton-tma", "triton-tma-single-pass")
MODES = ("fwd", "bwd", "fwd+bwd")


def set_min_ctas(value: int) -> None:
    """The occupancy rule of the autotuner's pruner for this process (``--min-ctas``)."""
    import importlib

    configs = importlib.import_module("codekiln.kernels.attention_configs")
    if value < 1:
        raise ValueError(f"--min-ctas must be >= 1, got {value}")
    configs.MIN_CTAS_PER_SM = value


def attention_flops(B: int, H: int, T: int, D: int, causal: bool, mode: str) -> float:
    """FLOPs of one call in ``mode`` (see the module docstring)."""
    fwd = 2 * 2.0 * B * H * T * T * D * (0.5 if causal else 1.0)
    return fwd * {"fwd": 1.0, "bwd": 2.5, "fwd+bwd": 3.5}[mode]


def _reference64(q, k, v, causal):
    q, k, v = (x.double() for x in (q, k, v))
    s = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if causal:
        T = q.size(-2)
        s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=q.device).tril(), -math.inf)
    return s.softmax(-1) @ v


def _max_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / (1 + |want|): the tests' error measure."""
    return ((got.double() - want.double()).abs() / (1 + want.double().abs())).max().item()


def _run(provider: str, q, k, v, causal: bool):
    if provider == "naive":
        return naive_attention(q, k, v, causal=causal)
    return run_candidate(provider, q, k, v, causal)


def _forward_and_grads(provider, q, k, v, do, causal):
    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    o = _run(provider, q, k, v, causal)
    o.backward(do)
    return o, q.grad, k.grad, v.grad


# --------------------------------------------------------------------------------------------
# Interpreter smoke (no CUDA)
# --------------------------------------------------------------------------------------------


def smoke(shapes: list[tuple[int, int, int, int]] | None = None) -> int:
    """Every Triton variant (both backwards, pointers and TMA descriptors -- the interpreter
    runs the descriptors when asked) on small shapes against a float64 reference, with the
    tests' tolerances. Returns an exit code."""
    device = "cuda" if HAS_CUDA else "cpu"
    tol = {torch.float32: 1e-5, torch.bfloat16: 4e-2}
    failures = 0
    torch.manual_seed(0)
    for dtype in tol:
        for shape in shapes or [(1, 2, 100, 64), (2, 1, 129, 32)]:
            for causal in (True, False):
                q, k, v, do = (torch.randn(shape, device=device, dtype=dtype) for _ in range(4))
                q64, k64, v64 = (x.double().requires_grad_() for x in (q, k, v))
                o64 = _reference64(q64, k64, v64, causal)
                o64.backward(do.double())
                for provider in OURS:
                    got = _forward_and_grads(provider, q, k, v, do, causal)
                    errors = [
                        _max_error(a, b) for a, b in zip(got, (o64, q64.grad, k64.grad, v64.grad))
                    ]
                    ok = max(errors) <= tol[dtype]
                    failures += not ok
                    print(f"{'ok  ' if ok else 'FAIL'} {provider:22} {dtype!s:14} {shape!s:16} "
                          f"causal={causal!s:5} max err o/dq/dk/dv = "
                          f"{', '.join(f'{e:.1e}' for e in errors)}")  # fmt: skip
    print("smoke:", "all passed" if not failures else f"{failures} FAILED")
    return 1 if failures else 0


# --------------------------------------------------------------------------------------------
# GPU benchmark
# --------------------------------------------------------------------------------------------


def check_correctness(provider, B, H, T, D, causal, dtype) -> dict[str, float]:
    """``provider`` vs SDPA flash (both bf16) on the benchmark shape: max errors of o, dq, dk,
    dv."""
    q, k, v, do = (torch.randn(B, H, T, D, device="cuda", dtype=dtype) for _ in range(4))
    ours = _forward_and_grads(provider, q, k, v, do, causal)
    theirs = _forward_and_grads("sdpa-flash", q, k, v, do, causal)
    return {n: _max_error(a, b) for n, a, b in zip(("o", "dq", "dk", "dv"), ours, theirs)}


def time_ms(provider, mode, B, H, T, D, causal, dtype) -> float:
    """Median milliseconds of one call (``nan`` when the provider cannot run it: out of memory,
    not installed, unsupported shape)."""
    from triton.testing import do_bench

    q, k, v = (
        torch.randn(B, H, T, D, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3)
    )
    do = torch.randn(B, H, T, D, device="cuda", dtype=dtype)
    try:
        if mode == "fwd":
            with torch.no_grad():
                fn = lambda: _run(provider, q, k, v, causal)  # noqa: E731
                fn()  # compile / autotune outside the timing
                return do_bench(fn, warmup=25, rep=100)
        if mode == "bwd":
            o = _run(provider, q, k, v, causal)
            fn = lambda: o.backward(do, retain_graph=True)  # noqa: E731
        else:
            fn = lambda: _run(provider, q, k, v, causal).backward(do)  # noqa: E731
        fn()
        return do_bench(fn, warmup=25, rep=100, grad_to_none=[q, k, v])
    except Exception as err:  # OOM, flash-attn not installed, a backend refusing the shape
        print(f"  {mode:8} {provider:22} cannot run: {type(err).__name__}: {str(err)[:120]}")
        return float("nan")
    finally:
        torch.cuda.empty_cache()


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def write_markdown(rows: list[dict], path: Path, header: str) -> None:
    """One line per (mode, head dim, T): TFLOP/s of every provider (empty: did not run) and
    the best of ours over the best of the others."""
    lines = [header, ""]
    lines.append(
        "| mode | hd | T | B x H | "
        + " | ".join(f"{p} TFLOP/s" for p in PROVIDERS)
        + " | best triton / best other |"
    )
    lines.append("|---|---:|---:|---|" + "---:|" * (len(PROVIDERS) + 1))
    keyed = {(r["mode"], r["head_dim"], r["seq_len"], r["provider"]): r for r in rows}
    shapes = {(r["mode"], r["head_dim"], r["seq_len"]): r for r in rows}
    for mode in MODES:
        for key, r in shapes.items():
            if key[0] != mode:
                continue
            tf = {p: keyed.get((*key, p), {}).get("tflops", float("nan")) for p in PROVIDERS}
            ours = max((tf[p] for p in OURS if not math.isnan(tf[p])), default=float("nan"))
            others = [tf[p] for p in PROVIDERS if p not in OURS and p != "naive"]
            best_other = max((t for t in others if not math.isnan(t)), default=float("nan"))
            cells = " | ".join("" if math.isnan(tf[p]) else f"{tf[p]:.0f}" for p in PROVIDERS)
            ratio = ours / best_other if best_other == best_other and best_other else float("nan")
            lines.append(
                f"| {mode} | {r['head_dim']} | {r['seq_len']} | {r['batch']} x {r['heads']} | "
                f"{cells} | {'' if math.isnan(ratio) else f'{ratio:.2f}'} |"
            )
    path.write_text("\n".join(lines) + "\n")


def write_plot(rows: list[dict], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)")
        return False
    head_dims = sorted({r["head_dim"] for r in rows})
    fig, axes = plt.subplots(
        len(head_dims), len(MODES), figsize=(5 * len(MODES), 4 * len(head_dims)), squeeze=False
    )
    for i, hd in enumerate(head_dims):
        for j, mode in enumerate(MODES):
            ax = axes[i][j]
            for provider in PROVIDERS:
                pts = sorted(
                    (r["seq_len"], r["tflops"])
                    for r in rows
                    if r["head_dim"] == hd and r["mode"] == mode and r["provider"] == provider
                )
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=provider)
            ax.set_xscale("log", base=2)
            ax.set_title(f"{mode}, head dim {hd}")
            ax.set_xlabel("sequence length")
            ax.set_ylabel("TFLOP/s")
            ax.grid(True, alpha=0.3)
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def bench(args: argparse.Namespace) -> int:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    causal = not args.non_causal
    gpu = torch.cuda.get_device_name()
    commit = _git_commit()
    date = dt.date.today().isoformat()
    import triton

    header = (
        f"{gpu}, {args.dtype}, {'causal' if causal else 'non-causal'}, torch {torch.__version__}, "
        f"triton {triton.__version__}, commit {commit}, {date}"
    )
    print(header)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"attention_{gpu.replace(' ', '_')}_{args.dtype}"

    from codekiln.kernels import tma_supported

    skipped = () if tma_supported(torch.device("cuda")) else TMA_PROVIDERS
    if skipped:
        print(f"no TMA on this GPU (sm_90+ only): {', '.join(skipped)} not run")
    ours = [p for p in OURS if p not in skipped]
    rows: list[dict] = []
    failed = False
    fields = ["gpu", "dtype", "causal", "mode", "provider", "head_dim", "seq_len", "batch",
              "heads", "ms", "tflops", "commit", "date"]  # fmt: skip
    csv_file = open(out / f"{stem}.csv", "w", newline="")  # noqa: SIM115 - written row by row
    writer = csv.DictWriter(csv_file, fieldnames=fields)
    writer.writeheader()
    for D in (int(x) for x in args.head_dims.split(",")):
        H = args.model_dim // D
        for T in (int(x) for x in args.seq_lens.split(",")):
            B = max(1, args.tokens // T)
            wrong = set(skipped)
            for provider in ours:
                errors = check_correctness(provider, B, H, T, D, causal, dtype)
                ok = max(errors.values()) <= args.tolerance
                failed |= not ok
                if not ok:
                    wrong.add(provider)  # never time a wrong kernel
                print(f"hd={D} T={T} B={B} H={H}: {provider} vs sdpa-flash "
                      f"{'ok' if ok else 'FAILED'} ({', '.join(f'{n} {e:.1e}' for n, e in errors.items())})")  # fmt: skip
            for mode in args.modes.split(","):
                for provider in PROVIDERS:
                    if provider in wrong or (provider == "naive" and args.naive_max_len < T):
                        continue
                    ms = time_ms(provider, mode, B, H, T, D, causal, dtype)
                    if math.isnan(ms):
                        continue
                    tflops = attention_flops(B, H, T, D, causal, mode) / (ms * 1e-3) / 1e12
                    row = dict(
                        gpu=gpu, dtype=args.dtype, causal=causal, mode=mode, provider=provider,
                        head_dim=D, seq_len=T, batch=B, heads=H, ms=ms, tflops=tflops,
                        commit=commit, date=date,
                    )  # fmt: skip
                    rows.append(row)
                    writer.writerow(row)
                    csv_file.flush()
                    print(
                        f"  {mode:8} {provider:22} {ms:9.3f} ms {tflops:7.1f} TFLOP/s", flush=True
                    )
    csv_file.close()

    if rows:
        write_markdown(rows, out / f"{stem}.md", f"**{header}**")
        plotted = write_plot(rows, out / f"{stem}.png", header)
        print(f"wrote {out / stem}.csv, .md" + (", .png" if plotted else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", default=None, help="default 512,1024,...,16384")
    parser.add_argument("--head-dims", default=None, help="default 64,128")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    parser.add_argument("--non-causal", action="store_true")
    parser.add_argument("--tokens", type=int, default=16384, help="B = tokens // T")
    parser.add_argument("--model-dim", type=int, default=2048, help="H = model_dim // head_dim")
    parser.add_argument(
        "--naive-max-len", type=int, default=4096, help="skip naive above (T^2 memory)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=4e-2,
        help="max |triton - sdpa| / (1 + |sdpa|) to accept (bf16 tests use 4e-2)",
    )
    parser.add_argument("--out", default=str(ROOT / "kernels" / "results"))
    parser.add_argument("--smoke", action="store_true", help="only the small correctness smoke")
    parser.add_argument(
        "--min-ctas", type=int, default=None,
        help="keep configs reaching this many CTAs per SM (library default 2; 1 = no pruning "
        "by occupancy beyond spills and the register cap)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.min_ctas is not None:
        try:
            set_min_ctas(args.min_ctas)
        except ValueError as err:
            parser.error(str(err))
    shapes = None
    if args.seq_lens or args.head_dims:  # the smoke at the asked sizes (B = 1, 2 heads)
        shapes = [
            (1, 2, int(t), int(d))
            for d in (args.head_dims or "64").split(",")
            for t in (args.seq_lens or "100").split(",")
        ]
    args.seq_lens = args.seq_lens or "512,1024,2048,4096,8192,16384"
    args.head_dims = args.head_dims or "64,128"

    if not HAS_CUDA:
        print(
            f"No CUDA device on {platform.node() or 'this machine'}: timings need a GPU. "
            "Running the correctness smoke in Triton's interpreter instead (TRITON_INTERPRET=1)."
        )
        return smoke(shapes)
    if args.smoke:
        return smoke(shapes)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
