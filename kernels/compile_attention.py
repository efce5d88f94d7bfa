"""Compile the attention kernels ahead of time for a GPU architecture -- no GPU needed.

Triton's wheels ship ``ptxas`` and ``cuobjdump``, so every autotuning config of every kernel can
be compiled for sm_90 (H100/H200) or sm_80 (A100) on a CPU machine, and its registers, register
spills (stack bytes) and shared memory read back. That catches compile errors on the CUDA path
(which the interpreter tests never compile) and shows which configs cannot be fast.

    python kernels/compile_attention.py                       # all configs, bf16, hd 64 and 128
    python kernels/compile_attention.py --quick               # one config per kernel (CI smoke)
    python kernels/compile_attention.py --arch 80 --dtype fp16,fp32 --head-dim 128

Exit status 1 when any compile fails. "fits" compares the shared memory with the per-block
limit (227 KiB on sm_90, 163 KiB on sm_80); a config that does not fit is skipped at run time
by the autotuner.
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
#: cp.async loads (LDGSTS).
LONG = False  # which variant compile_one builds (--long)
OPCODES = ("FMUL", "FFMA", "MUFU", "FMNMX", "FSEL", "HGMMA", "HMMA", "REDG", "LDGSTS")


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


def compile_one(name, dtype, head_dim, causal, config, arch):
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
        if "FUSED_DQ" in fn.arg_names:
            constexprs["FUSED_DQ"] = name == "bwd1"
    sig, attrs = _signature(fn, dtype, constexprs)
    src = ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs)
    options = {"num_warps": warps, "num_stages": stages, "enable_fp_fusion": True}
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90, 80")
    parser.add_argument("--dtype", default="bf16", help="comma list of bf16, fp16, fp32")
    parser.add_argument("--head-dim", default="64,128", help="comma list of head dims")
    parser.add_argument("--kernels", default="fwd,dkdv,dq,bwd1,pre", help="comma list")
    parser.add_argument("--quick", action="store_true", help="first valid config of each only")
    parser.add_argument(
        "--long", action="store_true", help="the LONG variant (int64 block offsets, T*stride>=2^31)"
    )
    args = parser.parse_args(argv)
    global LONG
    LONG = args.long

    limit = SMEM_LIMIT.get(args.arch, 99 * 1024)
    failures = 0
    print(f"{'kernel':5} {'dtype':5} {'hd':>3} {'causal':6} {'config':16} "
          f"{'regs':>4} {'spill':>5} {'smem':>7} fits  secs  "
          + " ".join(f"{op:>5}" for op in OPCODES))  # fmt: skip
    for name in args.kernels.split(","):
        for dtype in args.dtype.split(","):
            for head_dim in (int(d) for d in args.head_dim.split(",")):
                causals = (True, False) if name != "pre" else (False,)
                for causal in causals:
                    if name == "pre":
                        configs = [None]
                    else:
                        table = KERNELS[name][1]
                        rule = "dkdv" if name == "bwd1" else name
                        kept = C._pruner(rule)(
                            C._configs(table), {}, HEAD_DIM=head_dim, FUSED_DQ=name == "bwd1"
                        )
                        configs = [C._key(c) for c in kept][: 1 if args.quick else None]
                    for config in configs:
                        label = "-" if config is None else "{}x{} s{} w{}".format(*config)
                        start = time.perf_counter()
                        try:
                            kernel = compile_one(name, dtype, head_dim, causal, config, args.arch)
                        except Exception as err:  # report and go on: we want the whole table
                            failures += 1
                            print(f"{name:5} {dtype:5} {head_dim:>3} {causal!s:6} {label:16} "
                                  f"FAILED {type(err).__name__}: {str(err)[:300]}")  # fmt: skip
                            continue
                        regs, stack = _usage(kernel)
                        counts = _opcode_counts(kernel)
                        smem = kernel.metadata.shared
                        fits = "yes" if smem <= limit else "NO"
                        print(f"{name:5} {dtype:5} {head_dim:>3} {causal!s:6} {label:16} "
                              f"{regs:>4} {stack:>5} {smem:>7} {fits:4} "
                              f"{time.perf_counter() - start:5.1f}  "
                              + " ".join(f"{counts.get(op, -1):>5}" for op in OPCODES),
                              flush=True)  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
