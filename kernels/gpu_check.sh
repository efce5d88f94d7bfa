#!/usr/bin/env bash
# One-shot GPU check for the day a GPU machine is lent (~15 minutes of device time in all).
#
#   bash kernels/gpu_check.sh            # from the repository root, on the GPU machine
#
# Builds and installs the package, then, each step with its own time limit so one hang cannot
# eat the budget, and each step's output kept under $OUT (or kernels/results/gpu_check/):
#   1. the CUDA tests (kernels, model, training on CUDA);
#   2. kernels/bench_attention.py: Triton vs SDPA-flash, bf16, head dims 64 and 128;
#   3. benchmarks/bench_train.py's CUDA row: codeparrot-small at block 1024, bf16, tokens/s, MFU.
# Record every figure with the GPU's name (first line of gpu.txt) in kernels/README.md and
# BENCHMARKS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-kernels/results/gpu_check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "   rc=$rc in $((SECONDS - start))s; tail:" && tail -n 15 "$OUT/$name.log"
}

step install 300 python3 -m pip install -q -e ".[dev]"
step cuda_tests 240 python3 -m pytest -q -x -m cuda tests/
step bench_attention 240 python3 kernels/bench_attention.py --seq-lens 1024,2048,4096,8192 \
    --head-dims 64,128 --out "$OUT"
step bench_train 240 python3 benchmarks/bench_train.py --rounds 1 --steps 20 --cuda-steps 40 \
    --json "$OUT/bench_train.json"
echo "== done: $OUT"
