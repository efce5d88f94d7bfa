"""The GPU workbench in kernels/: FLOP formula, report writers, and the sm_90 compile check."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
triton = pytest.importorskip("triton", reason="the workbench needs triton")

REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "kernels" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("bench_attention")


def test_flop_formula(bench):
    # Two matmuls of 2*B*H*T^2*D each; causal halves them; backward 2.5x, both 3.5x.
    full = 4.0 * 2 * 16 * 1024**2 * 64
    assert bench.attention_flops(2, 16, 1024, 64, causal=False, mode="fwd") == full
    assert bench.attention_flops(2, 16, 1024, 64, causal=True, mode="fwd") == full / 2
    assert bench.attention_flops(2, 16, 1024, 64, causal=True, mode="bwd") == full / 2 * 2.5
    assert bench.attention_flops(2, 16, 1024, 64, causal=True, mode="fwd+bwd") == full / 2 * 3.5


def test_report_writers(bench, tmp_path):
    # Synthetic rows (not measurements): the writers must lay them out, one line per shape, a
    # column per provider (empty where one did not run: here flash-attn-3), and the best of
    # ours over the best of the rest (naive excluded).
    assert bench.PROVIDERS == ("triton", "triton-single-pass", "triton-tma",
                               "triton-tma-single-pass", "sdpa-flash", "sdpa-cudnn",
                               "sdpa-efficient", "flash-attn-3", "naive")  # fmt: skip
    tflops = {"triton": 3.0, "triton-single-pass": 3.3, "triton-tma": 2.5,
              "triton-tma-single-pass": 2.9, "sdpa-flash": 2.0, "sdpa-cudnn": 2.2,
              "sdpa-efficient": 1.5, "naive": 0.5}  # fmt: skip
    rows = [
        dict(mode=m, provider=p, head_dim=64, seq_len=t, batch=16384 // t, heads=32,
             ms=1.0, tflops=tf)
        for m in bench.MODES
        for t in (512, 1024)
        for p, tf in tflops.items()
    ]  # fmt: skip
    md = tmp_path / "table.md"
    bench.write_markdown(rows, md, "**header**")
    text = md.read_text().splitlines()
    assert text[0] == "**header**"
    assert text[2].count("|") == 4 + len(bench.PROVIDERS) + 2
    body = [line for line in text if line.startswith("| fwd |")]
    assert body == ["| fwd | 64 | 512 | 32 x 32 | 3 | 3 | 2 | 3 | 2 | 2 | 2 |  | 0 | 1.50 |",
                    "| fwd | 64 | 1024 | 16 x 32 | 3 | 3 | 2 | 3 | 2 | 2 | 2 |  | 0 | 1.50 |"]  # fmt: skip
    pytest.importorskip("matplotlib")
    png = tmp_path / "plot.png"
    assert bench.write_plot(rows, png, "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_min_ctas_lets_the_one_cta_tiles_back_in(bench, monkeypatch):
    # --min-ctas 1: the FlashAttention-2 forward tile at head dim 128 (TMA: spill-free, 1 CTA
    # per SM by its shared memory) is pruned by default and kept with the rule relaxed.
    import importlib

    configs = importlib.import_module("codekiln.kernels.attention_configs")
    monkeypatch.setattr(configs, "MIN_CTAS_PER_SM", configs.MIN_CTAS_PER_SM)
    fa2 = (128, 128, 3, 8)

    def kept():
        table = configs._configs(configs._FWD_TABLE_CUDA)
        pruned = configs._pruner("fwd")(table, {}, HEAD_DIM=128, TMA=True, CAUSAL=True)
        return {configs._key(c) for c in pruned}

    assert fa2 not in kept()
    bench.set_min_ctas(1)
    assert configs.MIN_CTAS_PER_SM == 1 and fa2 in kept()
    with pytest.raises(ValueError, match="min-ctas"):
        bench.set_min_ctas(0)


def test_kernels_compile_for_sm90_without_a_gpu():
    # The interpreter never compiles the CUDA path; triton ships ptxas, so compile it here.
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    if not ptxas.exists():
        pytest.skip(f"triton's bundled ptxas not found at {ptxas}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, str(REPO / "kernels" / "compile_attention.py"), "--quick",
           "--arch", "90", "--head-dim", "64", "--kernels", "fwd,dkdv,dq,bwd1,pre"]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    header, *lines = (line.split() for line in out.stdout.splitlines())
    assert {(line[0], line[1]) for line in lines} == {
        (k, v) for k in ("fwd", "dkdv", "dq", "bwd1") for v in ("ptr", "tma")
    } | {("pre", "ptr")}
    # "config" spans 3 words in the rows ("128x128 s3 w8", "-" for pre): count from the end.
    col = {name: header.index(name) - len(header) for name in ("fits", "ctas", "REDG", "UTMALDG")}
    assert all(line[col["fits"]] == "yes" for line in lines), out.stdout  # fits in shared memory
    assert all(int(line[col["ctas"]]) >= 1 for line in lines), out.stdout  # an SM holds one
    # Only the single-pass backward reduces into dQ (atomic RED instructions in its SASS).
    assert all((int(line[col["REDG"]]) > 0) == (line[0] == "bwd1") for line in lines), out.stdout
    # The TMA variant's loads are TMA loads (cp.async.bulk.tensor); the pointer kernels have none.
    tma_loads = {(line[0], line[1]): int(line[col["UTMALDG"]]) for line in lines}
    assert all((n > 0) == (variant == "tma") for (_, variant), n in tma_loads.items()), out.stdout


@pytest.mark.slow  # ~50 s of CPU: four steps, each a fresh interpreter importing torch
def test_gpu_check_smoke_runs_end_to_end(tmp_path):
    # The one-shot GPU script, in its CPU smoke mode: every step at tiny size, every result file
    # under one folder. It measures nothing; it proves the script and its steps fit together.
    out = tmp_path / "gpu_check"
    env = {**os.environ, "OUT": str(out)}
    env.pop("TRITON_INTERPRET", None)  # the script sets it itself in smoke mode
    run = subprocess.run(["bash", str(REPO / "kernels" / "gpu_check.sh"), "--smoke"], env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = (out / "summary.txt").read_text().splitlines()
    assert [line.split()[:2] for line in summary] == [
        ["import", "rc=0"], ["cuda_tests", "rc=0"], ["bench_attention", "rc=0"],
        ["bench_train", "rc=0"],
    ]  # fmt: skip
    assert (out / "gpu.txt").read_text().startswith("gpu: cpu-smoke")
    assert "smoke: all passed" in (out / "bench_attention.log").read_text()
    log = (out / "bench_attention.log").read_text()
    assert "triton-single-pass" in log and "triton-tma-single-pass" in log
    assert json.loads((out / "bench_train.json").read_text())


def test_gpu_check_rejects_unknown_arguments_and_a_missing_gpu(tmp_path):
    script = str(REPO / "kernels" / "gpu_check.sh")
    env = {**os.environ, "OUT": str(tmp_path)}
    bad = subprocess.run(["bash", script, "--fast"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument '--fast'" in bad.stderr
    if shutil.which("nvidia-smi") is None:
        env["CODEKILN_GPU_CHECK_SMOKE"] = "0"
        none = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
        assert none.returncode == 2 and "no NVIDIA GPU found" in none.stderr
