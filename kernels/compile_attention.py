"""Compile the attention kernels ahead of time for a GPU architecture -- no GPU needed.

Triton's wheels ship ``ptxas`` and ``cuobjdump``, so every autotuning config of every kernel can
be compiled for sm_90 (H100/H200) or sm_80 (A100) on a CPU machine, and its registers, register
spills (stack bytes) and shared memory read back. That catches compile errors on the CUDA path
(which the interpreter tests never compile) and shows which configs cannot be fast.

    python kernels/compile_attention.py                       # kept configs, bf16, hd 64, 128
    python kernels/compile_attention.py --quick               # one config per kernel (CI smoke)
    python kernels/compile_attention.py --arch 80 --dtype fp16,fp32 --head-dim 128
    python kernels/compile_attention.py --variants tma --configs 64x128s1w8 --all-configs
    python kernels/compile_attention.py --all-configs --kernels fwd,dkdv,dq,bwd1 \
        --write-occupancy python/codekiln/kernels/attention_occupancy.py   # the pruner's table

Both variants of each kernel are compiled (``--variants``): ``ptr`` (pointer loads) and ``tma``
(tensor descriptors). Without ``--all-configs`` only the configs the autotuner's pruner keeps
are compiled. Exit status 1 when any compile fails. "fits" compares the shared memory with the
per-block limit (227 KiB on sm_90, 163 KiB on sm_80); a config that does not fit is skipped at
run time by the autotuner. "ctas" is the number of CTAs an sm_90 SM holds at once
(:func:`ctas_per_sm`; computed for sm_90 whatever ``--arch``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The kernels must be real JIT functions, not interpreted ones: clear the flag before import.
os.environ.pop("TRITON_INTERPRET", None)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import importlib

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

C = importlib.import_module("codekiln.kernels.attention_configs")
KJ = importlib.import_module("codekiln.kernels.attention_kernels")

SMEM_LIMIT = {90: 227 * 1024, 80: 163 * 1024, 89: 99 * 1024, 86: 99 * 1024}
KERNELS = {
    "fwd": (KJ._attn_fwd_kernel, C._FWD_TABLE_CUDA),
    "dkdv": (KJ._attn_bwd_dkdv_kernel, C._BWD_DKDV_TABLE_CUDA),
    "dq": (KJ._attn_bwd_dq_kernel, C._BWD_DQ_TABLE_CUDA),
    # the single-pass backward: the dK/dV kernel with FUSED_DQ (dQ by fp32 atomics)
    "bwd1": (KJ._attn_bwd_dkdv_kernel, C._BWD_DKDV_TABLE_CUDA),
}
#: SASS opcodes counted (static instructions in the whole kernel): softmax arithmetic (FMUL,
#: FFMA, MUFU = exp2/log2, FMNMX = max/clamps), selects (FSEL), tensor-core ops (HGMMA: wgmma
#: on sm_90; HMMA: mma.sync), global reductions (REDG: the single pass's dQ atomics) and
#: cp.async loads (LDGSTS), TMA loads and stores (UTMALDG, UTMASTG: ``cp.async.bulk.tensor``).
LONG = False  # which variant compile_one builds (--long)
OPCODES = (
    "FMUL", "FFMA", "MUFU", "FMNMX", "FSEL", "HGMMA", "HMMA", "REDG", "LDGSTS", "UTMALDG",
    "UTMASTG",
)  # fmt: skip


def _signature(fn, dtype: str, constexprs: dict) -> tuple[dict, dict]:
    """Argument types, and the specialisation a real launch gets (16-byte aligned pointers,
    strides and T divisible by 16), without which the loads are not pipelined."""
    sig, divisible = {}, []
    for i, name in enumerate(fn.arg_names):
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in ("LSE", "DELTA", "DQ_ACC"):
            sig[name] = "*fp32"
        elif name in ("qk_scale", "sm_scale"):
            sig[name] = "fp32"
        elif name in ("H", "T", "T_BUCKET") or name.startswith("stride"):
            sig[name] = "i32"
        else:
            sig[name] = "*" + dtype
        if sig[name].startswith("*") or name.startswith("stride") or name == "T":
            divisible.append(i)
    return sig, {(i,): [["tt.divisibility", 16]] for i in divisible}


def _usage(kernel) -> tuple[int, int]:
    """(registers, spill stack bytes) from cuobjdump, or (-1, -1) when it is not available."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not tool.exists():
        return -1, -1
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        out = subprocess.run(
            [str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True
        ).stdout
    regs, stack = re.search(r"REG:(\d+)", out), re.search(r"STACK:(\d+)", out)
    return (int(regs.group(1)) if regs else -1), (int(stack.group(1)) if stack else -1)


def _opcode_counts(kernel) -> dict[str, int]:
    """Static counts of :data:`OPCODES` in the kernel's SASS (empty without cuobjdump)."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not tool.exists():
        return {}
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        sass = subprocess.run(
            [str(tool), "--dump-sass", f.name], capture_output=True, text=True
        ).stdout
    ops = re.findall(r"^\s+/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9]+)", sass, re.M)
    return {op: sum(1 for o in ops if o == op) for op in OPCODES}


def compile_one(name, dtype, head_dim, causal, config, arch, tma=False):
    """Compile one kernel for ``arch``; ``tma``: the tensor-descriptor variant."""
    fn = KERNELS[name][0] if name != "pre" else KJ._attn_bwd_preprocess_kernel
    if name == "pre":
        constexprs = {"HEAD_DIM": head_dim, "LONG": LONG, "BLOCK_M": 64}
        warps, stages = 4, 1
    else:
        bm, bn, stages, warps = config
        precision = "tf32" if dtype == "fp32" else "ieee"
        constexprs = dict(
            HEAD_DIM=head_dim, CAUSAL=causal, DOT_FP32=False, PRECISION=precision,
            BLOCK_M=bm, BLOCK_N=bn,
        )  # fmt: skip
        if "LONG" in fn.arg_names:
            constexprs["LONG"] = LONG
        if "TMA" in fn.arg_names:
            constexprs["TMA"] = tma
        if "FUSED_DQ" in fn.arg_names:
            constexprs["FUSED_DQ"] = name == "bwd1"
    sig, attrs = _signature(fn, dtype, constexprs)
    src = ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs)
    options = {"num_warps": warps, "num_stages": stages, "enable_fp_fusion": True}
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)


# sm_90 occupancy limits (CUDA occupancy calculator, compute capability 9.0): registers are
# allocated per warp in units of 256 (a thread's count rounded up to 8), 64 K per SM; shared
# memory 228 KiB per SM, of which each CTA also reserves 1 KiB (227 KiB at most per CTA);
# at most 64 warps and 32 CTAs per SM.
SM90_REGS, SM90_REG_UNIT, SM90_SMEM, SM90_SMEM_RESERVED = 65536, 256, 228 * 1024, 1024
SM90_MAX_WARPS, SM90_MAX_CTAS = 64, 32


def ctas_per_sm(regs: int, warps: int, smem: int) -> int:
    """CTAs of one kernel that fit on an sm_90 SM at once (0: it cannot launch)."""
    per_warp = -(-max(regs, 1) * 32 // SM90_REG_UNIT) * SM90_REG_UNIT
    by_regs = (SM90_REGS // per_warp) // warps
    by_smem = SM90_SMEM // (smem + SM90_SMEM_RESERVED)
    by_warps = SM90_MAX_WARPS // warps
    return max(0, min(by_regs, by_smem, by_warps, SM90_MAX_CTAS))


def write_occupancy(path: Path, rows: dict, command: str) -> None:
    """Write the pruner's table (a Python module) from ``rows``: (kernel, variant, head dim,
    causal, config) -> (registers, spill bytes, shared memory, CTAs/SM)."""
    lines = [
        '"""sm_90 resource usage of every attention autotuning config, measured by compiling it.',
        "",
        "Generated -- do not edit -- by (bf16, triton "
        + triton.__version__
        + ", this machine's CPU):",
        "",
        "    " + command,
        "",
        "(kernel, variant, head dim, causal, (BLOCK_M, BLOCK_N, num_stages, num_warps)) ->",
        "(registers per thread, spill stack bytes, shared memory bytes, CTAs per SM; 0 when it does",
        "not fit). Read by ``attention_configs.prune_by_occupancy``; ``tests/test_kernels.py``",
        "checks that it covers every config of the tables.",
        '"""',
        "",
        "OCCUPANCY_SM90: dict[tuple[str, str, int, bool, tuple[int, ...]], tuple[int, ...]] = {",
    ]
    for key in sorted(rows):
        lines.append(f"    {key!r}: {rows[key]!r},".replace("'", '"'))
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90, 80")
    parser.add_argument("--dtype", default="bf16", help="comma list of bf16, fp16, fp32")
    parser.add_argument("--head-dim", default="64,128", help="comma list of head dims")
    parser.add_argument("--kernels", default="fwd,dkdv,dq,bwd1,pre", help="comma list")
    parser.add_argument("--quick", action="store_true", help="first valid config of each only")
    parser.add_argument(
        "--variants", default="ptr,tma", help="comma list: ptr (pointer loads), tma (descriptors)"
    )
    parser.add_argument(
        "--all-configs", action="store_true", help="every config of the tables, pruned or not"
    )
    parser.add_argument(
        "--configs", default="", help="only these configs, e.g. 64x128s3w8,128x128s3w8"
    )
    parser.add_argument(
        "--long", action="store_true", help="the LONG variant (int64 block offsets, T*stride>=2^31)"
    )
    parser.add_argument(
        "--write-occupancy", type=Path, default=None,
        help="write the pruner's table here (needs --arch 90 --dtype bf16 and --all-configs)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    global LONG
    LONG = args.long
    if args.write_occupancy and (args.arch != 90 or args.dtype != "bf16" or not args.all_configs):
        parser.error("--write-occupancy needs --arch 90 --dtype bf16 --all-configs")

    limit = SMEM_LIMIT.get(args.arch, 99 * 1024)
    failures = 0
    occupancy: dict = {}
    print(f"{'kernel':5} {'var':3} {'dtype':5} {'hd':>3} {'causal':6} {'config':16} "
          f"{'regs':>4} {'spill':>5} {'smem':>7} fits ctas  secs  "
          + " ".join(f"{op:>7}" for op in OPCODES))  # fmt: skip
    for name in args.kernels.split(","):
        for variant in args.variants.split(","):
            if name == "pre" and variant == "tma":
                continue  # the preprocess kernel has no descriptor variant
            for dtype in args.dtype.split(","):
                for head_dim in (int(d) for d in args.head_dim.split(",")):
                    failures += _report_kernel(
                        name, variant, dtype, head_dim, args, limit, occupancy
                    )
    if args.write_occupancy:
        write_occupancy(args.write_occupancy, occupancy, "python " + " ".join(sys.argv))
        print(f"wrote {args.write_occupancy} ({len(occupancy)} configs)")
    return 1 if failures else 0


def _configs_for(name: str, head_dim: int, variant: str, args) -> list:
    if name == "pre":
        return [None]
    table = KERNELS[name][1]
    rule = "dkdv" if name == "bwd1" else name
    configs = C._configs(table)
    if args.all_configs:
        configs = [c for c in configs if C._splits(rule, c)]
    else:
        configs = C._pruner(rule)(
            configs, {}, HEAD_DIM=head_dim, FUSED_DQ=name == "bwd1", TMA=variant == "tma"
        )
    keys = [C._key(c) for c in configs]
    if args.configs:
        keys = [k for k in keys if "{}x{}s{}w{}".format(*k) in args.configs.split(",")]
    return keys[: 1 if args.quick else None]


def _report_kernel(name, variant, dtype, head_dim, args, limit, occupancy) -> int:
    failures = 0
    causals = (True, False) if name != "pre" else (False,)
    for config in _configs_for(name, head_dim, variant, args):
        for causal in causals:
            label = "-" if config is None else "{}x{} s{} w{}".format(*config)
            head = f"{name:5} {variant:3} {dtype:5} {head_dim:>3} {causal!s:6} {label:16}"
            start = time.perf_counter()
            try:
                kernel = compile_one(
                    name, dtype, head_dim, causal, config, args.arch, tma=variant == "tma"
                )
            except Exception as err:  # report and go on: we want the whole table
                failures += 1
                print(f"{head} FAILED {type(err).__name__}: {str(err)[:300]}", flush=True)
                continue
            regs, stack = _usage(kernel)
            counts = _opcode_counts(kernel)
            smem = kernel.metadata.shared
            fits = "yes" if smem <= limit else "NO"
            warps = 4 if config is None else config[3]
            ctas = ctas_per_sm(regs, warps, smem) if smem <= limit else 0
            print(f"{head} {regs:>4} {stack:>5} {smem:>7} {fits:4} {ctas:>4} "
                  f"{time.perf_counter() - start:5.1f}  "
                  + " ".join(f"{counts.get(op, -1):>7}" for op in OPCODES),
                  flush=True)  # fmt: skip
            if config is not None:
                occupancy[(name, variant, head_dim, causal, tuple(config))] = (
                    regs, stack, smem, ctas
                )  # fmt: skip
    return failures


if __name__ == "__main__":
    sys.exit(main())
