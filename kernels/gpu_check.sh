#!/usr/bin/env bash
# One-shot GPU check for the day a GPU machine is lent (under 10 minutes of device time).
#
#   bash kernels/gpu_check.sh            # from the repository root, on the GPU machine
#   bash kernels/gpu_check.sh --smoke    # any machine, CPU only, tiny sizes (what CI runs)
#   CODEKILN_GPU_CHECK_SMOKE=1 bash kernels/gpu_check.sh   # the same
#
# Runs the package from this checkout (PYTHONPATH=python; the Rust extension
# python/codekiln/_core.abi3.so must be built or carried over: `pip install -e .` otherwise),
# each step with its own time limit so that one hang cannot eat the budget, and writes every
# result under one folder named after the GPU: $OUT (default kernels/results/gpu_check/<GPU>):
#   gpu.txt           the GPU (nvidia-smi), torch and triton versions
#   cuda_tests.log    1. the CUDA tests (kernels, dispatch, model, training on CUDA)
#   bench_attention.* 2. kernels/bench_attention.py: every candidate (both Triton backwards,
#                        each with pointer and -- on sm_90+ -- TMA descriptor loads, SDPA
#                        flash / cuDNN / efficient, FlashAttention-3 if installed), bf16,
#                        head dims 64 and 128, T 1k-16k, fwd / bwd / fwd+bwd: .csv .md .png .log
#   bench_train.*     3. benchmarks/bench_train.py with its CUDA row (codeparrot-small, block
#                        1024, bf16: tokens/s, MFU): .json .log
#   summary.txt       one line per step: name, exit status, seconds
# Record every figure with the GPU's name in kernels/README.md and BENCHMARKS.md.
#
# Smoke mode runs the same steps on the CPU at tiny sizes (Triton's interpreter for the
# kernels): it checks that the script, the scripts it calls and their options still fit
# together, and measures nothing. Exit status: 0 when every step exited 0.
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE="${CODEKILN_GPU_CHECK_SMOKE:-0}"
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=1 ;;
        -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$arg' (try --smoke or --help)" >&2; exit 2 ;;
    esac
done

PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
if [ "$SMOKE" = 1 ]; then
    GPU="cpu-smoke"
    export CUDA_VISIBLE_DEVICES="" TRITON_INTERPRET=1
else
    if ! GPU="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)" \
        || [ -z "$GPU" ]; then
        echo "gpu_check.sh: no NVIDIA GPU found (nvidia-smi); use --smoke on a CPU machine" >&2
        exit 2
    fi
fi
OUT="${OUT:-kernels/results/gpu_check/$(echo "$GPU" | tr -c 'A-Za-z0-9._-\n' '_')}"
mkdir -p "$OUT"
{
    echo "gpu: $GPU"
    [ "$SMOKE" = 1 ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
: >"$OUT/summary.txt"
FAILED=0

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$OUT/summary.txt"
    tail -n 15 "$OUT/$name.log"
    [ "$rc" = 0 ] || FAILED=1
}

step import 30 "$PY" -c 'import codekiln._core, codekiln.kernels; print("codekiln imports")'
if [ "$SMOKE" = 1 ]; then
    # Tiny: the dispatcher's tests, the kernels' smoke in the interpreter, two training steps.
    step cuda_tests 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_kernels_auto.py \
        -k "candidate_names or without_cuda"
    step bench_attention 120 "$PY" kernels/bench_attention.py --smoke --seq-lens 33 \
        --head-dims 16 --out "$OUT"
    step bench_train 180 "$PY" benchmarks/bench_train.py --rounds 1 --steps 6 --batch-size 2 \
        --block-size 32 --json "$OUT/bench_train.json"
else
    step cuda_tests 150 "$PY" -m pytest -q -x -p no:cacheprovider -m cuda tests/
    step bench_attention 300 "$PY" kernels/bench_attention.py \
        --seq-lens 1024,2048,4096,8192,16384 --head-dims 64,128 --out "$OUT"
    step bench_train 110 "$PY" benchmarks/bench_train.py --rounds 1 --steps 20 --cuda-steps 40 \
        --json "$OUT/bench_train.json"
fi
echo "== done: $OUT"
exit "$FAILED"
