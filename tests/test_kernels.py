"""The Triton attention kernels against a float64 reference, output and every gradient.

Without CUDA these run the real kernels in Triton's interpreter (conftest sets
``TRITON_INTERPRET=1``); with CUDA they run the compiled kernels, plus the CUDA-only cases at the
end. Inputs are fresh random draws on every run: the seed is printed on failure and can be
pinned with ``CODEKILN_TEST_SEED=<seed>``.
"""

from __future__ import annotations

import importlib
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton", reason="codekiln.kernels needs triton")

import codekiln.kernels as K  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

A = importlib.import_module("codekiln.kernels.attention")  # the module (``K.attention`` is the fn)
C = importlib.import_module("codekiln.kernels.attention_configs")

HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")

# Tolerances, as |kernel - ref64| <= tol * (1 + |ref64|) elementwise (assert_close, atol = rtol).
# The reference sees the same (already rounded) inputs, so the kernel's error comes from rounding
# P and dS to the input dtype before their matmuls and from rounding the outputs -- a few units
# of roundoff u, summed over <= T terms that mostly cancel. tol = 10u for half types:
#   float16 (u = 2^-11 = 4.9e-4): 5e-3; measured worst over 100+ random cases 1.3e-3.
#   bfloat16 (u = 2^-8 = 3.9e-3): 4e-2; measured worst 1.7e-2.
#   float32: IEEE dots (TF32 off, PyTorch's default), measured worst 1e-6 -> 1e-5.
TOL = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 4e-2}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture
def seed() -> int:
    value = int(os.environ.get("CODEKILN_TEST_SEED", random.SystemRandom().randrange(2**31)))
    torch.manual_seed(value)
    return value


def reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float | None = None
) -> torch.Tensor:
    """softmax(q k^T * scale) v in float64, the oracle."""
    q, k, v = q.double(), k.double(), v.double()
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    s = (q @ k.transpose(-2, -1)) * scale
    if causal:
        T = q.size(-2)
        s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=q.device).tril(), -math.inf)
    return s.softmax(-1) @ v


def assert_matches_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    seed: int,
    scale: float | None = None,
    do: torch.Tensor | None = None,
    tol_factor: float = 1.0,
    deterministic: bool = True,
    tma: bool = False,
) -> torch.Tensor:
    """Run the kernel forward and backward and compare o, dq, dk, dv with the oracle."""
    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    o = K.attention(q, k, v, causal=causal, scale=scale, deterministic=deterministic, tma=tma)
    if do is None:
        do = torch.randn_like(o)
    o.backward(do)

    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    o64 = reference(q64, k64, v64, causal, scale)
    o64.backward(do.double())

    tol = TOL[q.dtype] * tol_factor
    where = (
        f"shape={tuple(q.shape)} causal={causal} dtype={q.dtype} seed={seed} "
        f"deterministic={deterministic} tma={tma}"
    )
    assert o.shape == q.shape and o.dtype == q.dtype
    for name, got, want in [
        ("o", o, o64),
        ("dq", q.grad, q64.grad),
        ("dk", k.grad, k64.grad),
        ("dv", v.grad, v64.grad),
    ]:
        assert got is not None and got.dtype == q.dtype, name
        torch.testing.assert_close(
            got.double(), want, atol=tol, rtol=tol, msg=lambda m, n=name: f"{n} {where}: {m}"
        )
    return o


SHAPES = [  # (B, nh, T, hs): T = 1, tails of 1 and of most of a block, an exact multiple
    (1, 1, 1, 32),
    (2, 3, 17, 32),
    (1, 2, 100, 64),
    (2, 1, 129, 64),
    (1, 2, 64, 32),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_gradients_match_float64_reference(shape, causal, dtype, seed):
    q, k, v = (torch.randn(shape, device=DEVICE, dtype=dtype) for _ in range(3))
    assert_matches_reference(q, k, v, causal, seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", [(1, 2, 50, 16), (1, 1, 70, 128)], ids=str)
def test_head_dims_16_and_128(shape, causal, dtype, seed):
    q, k, v = (torch.randn(shape, device=DEVICE, dtype=dtype) for _ in range(3))
    assert_matches_reference(q, k, v, causal, seed)


def test_custom_scale(seed):
    # scale=1.5 makes scores of |s| ~ 30 and a nearly one-hot softmax: it stresses the online
    # max/rescale path, and fp32 rounding grows with |s| (each exp2 sees |s| * u), hence 4x tol.
    q, k, v = (torch.randn(2, 2, 45, 32, device=DEVICE) for _ in range(3))
    assert_matches_reference(q, k, v, True, seed, scale=1.5, tol_factor=4.0)
    assert_matches_reference(q, k, v, False, seed, scale=0.01)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_strided_views_as_the_model_passes_them(dtype, seed):
    # The model splits one (B, T, 3 * nh * hs) projection into q, k, v views (B, nh, T, hs):
    # non-contiguous, last dim contiguous. dO arrives non-contiguous too.
    B, T, H, D = 2, 37, 3, 32
    qkv = torch.randn(B, T, 3, H, D, device=DEVICE, dtype=dtype)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    assert not q.is_contiguous() and q.stride(-1) == 1
    do = torch.randn(B, H, D, T, device=DEVICE, dtype=dtype).transpose(-1, -2)  # stride(-1) != 1
    o = assert_matches_reference(q, k, v, True, seed, do=do)
    # The output is laid out (B, T, nh, hs) so that merging the heads is a free view.
    assert o.transpose(1, 2).is_contiguous()


def test_log_sum_exp_is_saved_in_base_2(seed):
    q, k, v = (torch.randn(1, 2, 33, 32, device=DEVICE) for _ in range(3))
    lse2 = K.attention_forward(q, k, v, causal=True)[1]
    s = (q.double() @ k.double().transpose(-2, -1)) / math.sqrt(32)
    s = s.masked_fill(~torch.ones(33, 33, dtype=torch.bool, device=DEVICE).tril(), -math.inf)
    want = torch.logsumexp(s, dim=-1) / math.log(2)
    assert lse2.dtype == torch.float32 and lse2.shape == (1, 2, 33)
    torch.testing.assert_close(lse2.double(), want, atol=1e-5, rtol=1e-5)


# The single-pass backward (deterministic=False): dK, dV and dQ from one recomputation of P,
# dQ accumulated in fp32 by atomics. Exact against the same oracle on tails, exact multiples,
# T = 1, both masks, every dtype; the property test below draws it too.
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 32), (2, 3, 17, 32), (2, 1, 129, 64)], ids=str)
def test_single_pass_backward_matches_float64_reference(shape, causal, dtype, seed):
    q, k, v = (torch.randn(shape, device=DEVICE, dtype=dtype) for _ in range(3))
    assert_matches_reference(q, k, v, causal, seed, deterministic=False)


@pytest.mark.parametrize("shape", [(1, 2, 50, 16), (1, 1, 70, 128)], ids=str)
def test_single_pass_backward_head_dims_16_and_128(shape, seed):
    q, k, v = (torch.randn(shape, device=DEVICE, dtype=torch.bfloat16) for _ in range(3))
    for causal in (True, False):
        assert_matches_reference(q, k, v, causal, seed, deterministic=False)


def test_single_pass_backward_on_strided_views(seed):
    B, T, H, D = 2, 37, 3, 32
    qkv = torch.randn(B, T, 3, H, D, device=DEVICE)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    do = torch.randn(B, H, D, T, device=DEVICE).transpose(-1, -2)
    assert_matches_reference(q, k, v, False, seed, do=do, deterministic=False)


def test_deterministic_backward_is_bitwise_reproducible(seed):
    q, k, v = (torch.randn(1, 2, 70, 32, device=DEVICE, requires_grad=True) for _ in range(3))
    do = torch.randn(1, 2, 70, 32, device=DEVICE)
    grads = []
    for _ in range(2):
        q.grad = k.grad = v.grad = None
        K.attention(q, k, v, deterministic=True).backward(do)
        grads.append([x.grad.clone() for x in (q, k, v)])
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_autotuning_key_is_the_length_bucket():
    # Every new prompt length used to re-tune (the key held T itself).
    assert [K.length_bucket(t) for t in (1, 2, 3, 64, 65, 1000, 1024, 1025)] == [
        1, 2, 4, 64, 128, 1024, 1024, 2048,
    ]  # fmt: skip
    for tuner in (A._attn_fwd, A._attn_bwd_dkdv, A._attn_bwd_dq):
        assert "T_BUCKET" in tuner.keys and "T" not in tuner.keys
    assert "FUSED_DQ" in A._attn_bwd_dkdv.keys and A._attn_bwd_dkdv.reset_to_zero == ["DQ_ACC"]
    # Triton's on-disk tuning cache: on for compiled kernels (triton turns it off interpreting).
    assert all(t.cache_results != A.INTERPRET for t in (A._attn_fwd, A._attn_bwd_dq))


@pytest.mark.parametrize("scale", [-0.5, float("nan"), float("inf")])
def test_scale_must_be_positive_and_finite(scale):
    # The unmasked blocks take the row max before scaling, which needs scale > 0.
    q = torch.randn(1, 1, 8, 32, device=DEVICE)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        K.attention(q, q, q, scale=scale)


def test_the_int64_variant_is_chosen_only_where_offsets_can_pass_int32():
    # Meta tensors: shapes and strides without memory.
    def view(T, stride_t):
        return torch.empty_strided((1, 1, T, 16), (0, 0, stride_t, 1), device="meta")

    assert not A._needs_long(4096, view(4096, 3 * 2048))  # a 2048-wide model's fused qkv view
    assert not A._needs_long(2**27 - 257, view(8, 16))  # (T + 256) * 16 < 2^31
    assert A._needs_long(2**27 - 256, view(8, 16))
    assert A._needs_long(260, view(8, 16), view(260, 2**23 - 64))  # the test below


_INT64_SCRIPT = """
import os, sys, torch
import codekiln.kernels as K
T, D, stride, path = 260, 16, 2**23 - 64, sys.argv[1]
n = (T - 1) * stride + 3 * D
with open(path, "wb") as f:
    f.truncate(n * 2)  # sparse: only the pages of the 260 rows are ever written
base = torch.from_file(path, shared=True, size=n, dtype=torch.float16)
torch.manual_seed(0)
q, k, v = (base.as_strided((1, 1, T, D), (0, 0, stride, 1), i * D) for i in range(3))
with torch.no_grad():
    for x in (q, k, v):
        x.copy_(torch.randn(1, 1, T, D, dtype=torch.float16))
q64, k64, v64 = (x.double().requires_grad_() for x in (q, k, v))
q, k, v = (x.requires_grad_() for x in (q, k, v))
do = torch.randn(1, 1, T, D, dtype=torch.float16)
o = K.attention(q, k, v)
o.backward(do)
ref = torch.nn.functional.scaled_dot_product_attention(q64, k64, v64, is_causal=True)
ref.backward(do.double())
pairs = [(o, ref), (q.grad, q64.grad), (k.grad, k64.grad), (v.grad, v64.grad)]
err = max(((a.double() - b).abs() / (1 + b.abs())).max().item() for a, b in pairs)
print("max error", err)
sys.exit(0 if err < 5e-3 else 1)
"""


@pytest.mark.slow  # ~10 s: a fresh interpreter and T = 260 in the Triton interpreter
@pytest.mark.skipif(HAS_CUDA, reason="interpreter check; on CUDA the compiled path is used")
def test_positions_past_2_to_the_31_elements_use_int64_offsets(tmp_path):
    # Rows 2^23 - 64 elements apart (a view into a sparse 4.3 GB file, 1 MB really written):
    # row 259 starts 2.17e9 elements in, past int32. The old kernels computed row * stride in
    # int32, wrapped, and read outside the tensor (a segfault), hence the subprocess.
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(A.__file__).parents[2]), env.get("PYTHONPATH", "")]
    )
    out = subprocess.run(
        [sys.executable, "-c", _INT64_SCRIPT, str(tmp_path / "sparse.bin")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr[-2000:])


@settings(
    max_examples=8,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    B=st.integers(1, 2),
    H=st.integers(1, 2),
    T=st.integers(1, 90),
    D=st.sampled_from([16, 32, 64]),
    causal=st.booleans(),
    deterministic=st.booleans(),
    tma=st.booleans(),
    data_seed=st.integers(0, 2**31 - 1),
)
def test_property_random_shapes(B, H, T, D, causal, deterministic, tma, data_seed):
    torch.manual_seed(data_seed)
    q, k, v = (torch.randn(B, H, T, D, device=DEVICE) for _ in range(3))
    assert_matches_reference(q, k, v, causal, data_seed, deterministic=deterministic, tma=tma)


def test_rows_with_only_very_negative_scores_stay_finite(seed):
    # Every score of every row near -100 (base 2: lse2 < -128): exp2(0 - lse2) for a zero-loaded
    # key past T overflows fp32. The backward clamps P = exp2(min(s - lse, 0)); the gradients must
    # stay finite and correct. Scores of |s| ~ 100 carry ~100x the absolute fp32 rounding of the
    # O(1) scores elsewhere, so the fp32 tolerance is widened 15x (measured need: 5x).
    T, D = 40, 32
    q = torch.full((1, 1, T, D), 2.0, device=DEVICE)
    k = torch.full((1, 1, T, D), -1.6, device=DEVICE) + 0.05 * torch.randn(
        1, 1, T, D, device=DEVICE
    )
    v = torch.randn(1, 1, T, D, device=DEVICE)
    for causal in (False, True):
        for deterministic in (True, False):
            assert_matches_reference(
                q, k, v, causal, seed, scale=1.0, tol_factor=15.0, deterministic=deterministic
            )


# The TMA variant (tma=True): the same kernels with Q/K/V/O/dO/dK/dV/dQ through tensor
# descriptors. The interpreter implements descriptor loads (zeros past T) and stores (clipped),
# so the variant is tested exactly like the pointer kernels; ``tma_taken`` proves every launch
# really took it (the launcher falls back to pointers when an operand does not fit TMA).


@pytest.fixture
def tma_taken(monkeypatch):
    """The launchers' TMA decisions during the test, in order."""
    decisions: list[bool] = []
    real = A._use_tma

    def spy(requested, *tensors):
        decisions.append(real(requested, *tensors))
        return decisions[-1]

    monkeypatch.setattr(A, "_use_tma", spy)
    return decisions


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_tma_variant_matches_float64_reference(shape, causal, dtype, seed, tma_taken):
    q, k, v = (torch.randn(shape, device=DEVICE, dtype=dtype) for _ in range(3))
    assert_matches_reference(q, k, v, causal, seed, tma=True)
    if not HAS_CUDA or K.tma_supported(q.device):
        assert tma_taken == [True, True]  # forward, backward


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 32), (2, 3, 17, 32), (2, 1, 129, 64)], ids=str)
def test_tma_single_pass_matches_float64_reference(shape, causal, dtype, seed, tma_taken):
    q, k, v = (torch.randn(shape, device=DEVICE, dtype=dtype) for _ in range(3))
    assert_matches_reference(q, k, v, causal, seed, deterministic=False, tma=True)
    if not HAS_CUDA or K.tma_supported(q.device):
        assert tma_taken == [True, True]


@pytest.mark.parametrize("shape", [(1, 2, 50, 16), (1, 1, 70, 128)], ids=str)
def test_tma_head_dims_16_and_128(shape, seed, tma_taken):
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (torch.randn(shape, device=DEVICE, dtype=dtype) for _ in range(3))
        for causal, deterministic in ((True, True), (False, False)):
            assert_matches_reference(q, k, v, causal, seed, deterministic=deterministic, tma=True)
    if not HAS_CUDA or K.tma_supported(torch.device(DEVICE)):
        assert all(tma_taken) and len(tma_taken) == 8


def test_tma_on_the_models_strided_views(seed, tma_taken):
    # The fused qkv projection's views: rows 3 * nh * hs apart, heads hs apart -- all 16-byte
    # multiples, so descriptors address them without a copy.
    B, T, H, D = 2, 37, 3, 32
    qkv = torch.randn(B, T, 3, H, D, device=DEVICE, dtype=torch.bfloat16)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    do = torch.randn(B, H, D, T, device=DEVICE, dtype=torch.bfloat16).transpose(-1, -2)
    for deterministic in (True, False):
        assert_matches_reference(q, k, v, True, seed, do=do, deterministic=deterministic, tma=True)
    if not HAS_CUDA or K.tma_supported(q.device):
        assert tma_taken == [True] * 4


def test_tma_falls_back_to_pointers_where_descriptors_cannot_go(seed, tma_taken):
    # Descriptors need 16-byte aligned head starts and rows and a unit last stride. A view
    # starting one element into a row fails the first, a 36-element row of bf16 (72 bytes) the
    # second: the launcher takes the pointer kernels, and the result is still exact.
    wide = torch.randn(1, 2, 40, 33, device=DEVICE, dtype=torch.bfloat16)
    sliced = wide[..., 1:33]  # data_ptr 2 bytes past a 16-byte boundary
    padded = torch.randn(1, 2, 40, 36, device=DEVICE, dtype=torch.bfloat16)[..., :32]
    good = torch.randn(1, 2, 40, 32, device=DEVICE, dtype=torch.bfloat16)
    assert K.tma_compatible(good) and not K.tma_compatible(sliced)
    assert not K.tma_compatible(padded) and not K.tma_compatible(good.transpose(-1, -2))
    # Strides of size-1 dimensions are never used: a lone head of a wide tensor is fine.
    assert K.tma_compatible(torch.randn(1, 1, 8, 64, device=DEVICE)[:, :, :, :32])
    # A broadcast dO (o.sum().backward() hands one over, rows stride 0) is not.
    assert not K.tma_compatible(torch.ones(1, 1, 1, 32, device=DEVICE).expand(2, 3, 40, 32))
    assert not A._use_tma(False, good)  # only when asked for
    tma_taken.clear()
    # Independent q, k, v: the tolerances assume them (with q = k = v the scores peak on the
    # diagonal and bf16 dQ missed 4e-2 -- worst 7.7e-2 over 30 seeds, either variant).
    k, v = (torch.randn(1, 2, 40, 32, device=DEVICE, dtype=torch.bfloat16) for _ in range(2))
    assert_matches_reference(sliced, k, v, True, seed, tma=True)
    assert_matches_reference(good, padded, v, False, seed, deterministic=False, tma=True)
    assert tma_taken == [False, False, False, False]
    # With a broadcast dO the forward takes descriptors and the backward pointers: still exact.
    tma_taken.clear()
    broadcast = torch.randn(1, 2, 1, 32, device=DEVICE, dtype=torch.bfloat16).expand(1, 2, 40, 32)
    assert_matches_reference(good, k, v, True, seed, do=broadcast, tma=True)
    assert tma_taken == [True, False]


def test_tma_is_offered_only_on_sm90_and_never_when_interpreting(monkeypatch):
    cpu = torch.device("cpu")
    assert not K.tma_supported(cpu)  # interpreting or not: the CPU has no TMA
    # Compiled kernels on a CUDA device: by compute capability.
    monkeypatch.setattr(A, "INTERPRET", False)
    for capability, offered in (((8, 0), False), ((8, 9), False), ((9, 0), True), ((10, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, c=capability: c)
        assert K.tma_supported(torch.device("cuda", 0)) == offered
    # Compiled kernels where there is no TMA: tma=True takes the pointer kernels.
    good = torch.randn(1, 1, 8, 32)
    assert K.tma_compatible(good) and not A._use_tma(True, good)
    monkeypatch.setattr(A, "INTERPRET", True)
    assert A._use_tma(True, good)  # the interpreter runs it when asked (the tests above)


def test_tma_scratch_allocator_is_installed_around_cuda_launches_only():
    from triton.runtime import _allocation

    before = _allocation._allocator.get()
    with A._scratch_allocator(torch.device("cpu"), True):
        assert _allocation._allocator.get() is before  # the interpreter needs none
    with A._scratch_allocator(torch.device("cuda", 0), False):
        assert _allocation._allocator.get() is before  # the pointer kernels need none
    with A._scratch_allocator(torch.device("cuda", 0), True):
        alloc = _allocation._allocator.get()
        assert alloc is not before
        if HAS_CUDA:
            buf = alloc(384, 128, None)
            assert buf.device.type == "cuda" and buf.numel() == 384 and buf.dtype == torch.int8
    assert _allocation._allocator.get() is before  # restored
    with (
        pytest.raises(RuntimeError, match="boom"),
        A._scratch_allocator(torch.device("cuda", 0), True),
    ):
        raise RuntimeError("boom")
    assert _allocation._allocator.get() is before  # restored after an error too


# --- launcher checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shapes", "dtype", "message"),
    [
        ([(2, 17, 32)] * 3, torch.float32, "4-D"),
        ([(1, 2, 17, 32), (1, 2, 18, 32), (1, 2, 18, 32)], torch.float32, "same shape"),
        ([(1, 2, 17, 48)] * 3, torch.float32, "head dim 48"),
        ([(1, 2, 17, 32)] * 3, torch.float64, "float64"),
        ([(1, 2, 0, 32)] * 3, torch.float32, "length is 0"),
    ],
)
def test_launcher_rejects_bad_inputs(shapes, dtype, message):
    q, k, v = (torch.randn(s, device=DEVICE, dtype=dtype) for s in shapes)
    assert K.unsupported_reason(q, k, v) is not None
    with pytest.raises(ValueError, match=message):
        K.attention(q, k, v)


def test_launcher_rejects_mixed_dtypes():
    q = torch.randn(1, 1, 8, 32, device=DEVICE)
    with pytest.raises(ValueError, match="share a dtype"):
        K.attention(q, q.half(), q)


def test_cpu_tensors_without_interpreter_raise_a_clear_error(monkeypatch):
    monkeypatch.setattr(A, "INTERPRET", False)
    q = torch.randn(1, 1, 8, 32)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        K.attention(q, q, q)


def test_block_configs_satisfy_the_causal_split():
    # Forward and dQ walk key blocks up to start_m * BLOCK_M: BLOCK_M % BLOCK_N == 0. dK/dV walk
    # query blocks from start_n * BLOCK_N: BLOCK_N % BLOCK_M == 0. The pruner keeps only those,
    # always at least one for every kernel, head dim and variant; a single interpreter config
    # skips the pruner, so it must obey the rule by itself.
    rules = {"fwd": lambda m, n: m % n == 0, "dq": lambda m, n: m % n == 0}
    rules["dkdv"] = lambda m, n: n % m == 0
    tables = {"fwd": C._FWD_TABLE_CUDA, "dq": C._BWD_DQ_TABLE_CUDA, "dkdv": C._BWD_DKDV_TABLE_CUDA}
    for kernel, table in tables.items():
        rule = rules[kernel]
        for head_dim in A.SUPPORTED_HEAD_DIMS:
            for tma in (False, True):
                for fused in (False, True) if kernel == "dkdv" else (False,):
                    kept = C._pruner(kernel)(
                        C._configs(table), {}, HEAD_DIM=head_dim, TMA=tma, FUSED_DQ=fused
                    )
                    assert kept, (kernel, head_dim, tma, fused)
                    assert all(rule(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) for c in kept)
        # A config that breaks the rule is dropped.
        bad = (32, 64, 1, 4) if kernel != "dkdv" else (64, 32, 1, 4)
        assert C._pruner(kernel)(C._configs([bad]), {}, HEAD_DIM=64) == []
    for kernel, table in [
        ("fwd", C._FWD_TABLE_INTERPRET),
        ("dq", C._BWD_DQ_TABLE_INTERPRET),
        ("dkdv", C._BWD_DKDV_TABLE_INTERPRET),
    ]:
        assert len(table) == 1 and rules[kernel](table[0][0], table[0][1])
    assert A.INTERPRET != HAS_CUDA  # conftest interprets exactly when there is no GPU


def _table_keys() -> set[tuple[str, str, int, bool, tuple[int, int, int, int]]]:
    tables = {"fwd": C._FWD_TABLE_CUDA, "dkdv": C._BWD_DKDV_TABLE_CUDA,
              "dq": C._BWD_DQ_TABLE_CUDA, "bwd1": C._BWD_DKDV_TABLE_CUDA}  # fmt: skip
    return {
        (kernel, variant, head_dim, causal, C._key(c))
        for kernel, table in tables.items()
        for c in C._configs(table)
        if C._splits(kernel, c)
        for variant in ("ptr", "tma")
        for head_dim in (64, 128)
        for causal in (True, False)
    }


def test_occupancy_table_matches_the_config_tables():
    # The pruner's data comes from compiling every config (kernels/compile_attention.py
    # --write-occupancy): a config added to a table without re-running it fails here.
    from codekiln.kernels.attention_occupancy import OCCUPANCY_SM90

    assert set(OCCUPANCY_SM90) == _table_keys()
    for key, (regs, spill, smem, ctas) in OCCUPANCY_SM90.items():
        assert 0 < regs <= 255 and spill >= 0 and smem > 0 and 0 <= ctas <= 32, key
        assert (ctas == 0) == (smem > 227 * 1024), key  # 0: more shared memory than a CTA gets


def test_occupancy_pruning_on_the_measured_table():
    from codekiln.kernels.attention_occupancy import OCCUPANCY_SM90

    tables = {"fwd": C._FWD_TABLE_CUDA, "dq": C._BWD_DQ_TABLE_CUDA, "dkdv": C._BWD_DKDV_TABLE_CUDA}
    for (kernel, variant, head_dim, causal, key), usage in OCCUPANCY_SM90.items():
        rule = "dkdv" if kernel == "bwd1" else kernel
        kept = C._pruner(rule)(
            C._configs(tables[rule]), {}, HEAD_DIM=head_dim, TMA=variant == "tma",
            FUSED_DQ=kernel == "bwd1", CAUSAL=causal,
        )  # fmt: skip
        kept_usage = [OCCUPANCY_SM90[(kernel, variant, head_dim, causal, C._key(c))] for c in kept]
        where = (kernel, variant, head_dim, causal, key)
        assert kept and all(u[3] >= 1 for u in kept_usage), where  # every kept config fits
        clean = [u for u in kept_usage if u[0] < C.REGISTER_CAP and u[1] == 0]
        if usage[0] >= C.REGISTER_CAP or usage[1] > 0:
            # At the register cap or spilling: dropped (unless nothing clean exists at all).
            assert key not in {C._key(c) for c in kept} or not clean, where
        # Either every kept config reaches two CTAs per SM, or none in the table does and the
        # kept ones are the best there is.
        ctas = [u[3] for u in kept_usage]
        assert min(ctas) >= C.MIN_CTAS_PER_SM or len(set(ctas)) == 1, (where, ctas)


def test_occupancy_pruning_policy(monkeypatch):
    # A synthetic table: the rules one by one.
    import codekiln.kernels.attention_occupancy as occ

    cap, spill, one_cta, two_ctas = (
        (128, 128, 3, 8),
        (128, 64, 3, 8),
        (64, 64, 4, 4),
        (64, 32, 3, 4),
    )
    table = {
        ("fwd", "ptr", 64, True, cap): (255, 0, 1000, 2),
        ("fwd", "ptr", 64, True, spill): (200, 8, 1000, 2),
        ("fwd", "ptr", 64, True, one_cta): (128, 0, 1000, 1),
        ("fwd", "ptr", 64, True, two_ctas): (100, 0, 1000, 3),
    }
    monkeypatch.setattr(occ, "OCCUPANCY_SM90", table)
    configs = C._configs([cap, spill, one_cta, two_ctas])

    def kept(**kwargs):
        return [C._key(c) for c in C._pruner("fwd")(configs, {}, **kwargs)]

    assert kept(HEAD_DIM=64, CAUSAL=True) == [two_ctas]
    assert kept(HEAD_DIM=32) == [two_ctas]  # smaller head dims use the head-dim-64 figures
    # No config reaches two CTAs per SM: the best-occupancy clean ones stay.
    table[("fwd", "ptr", 64, True, two_ctas)] = (100, 0, 1000, 1)
    assert kept(HEAD_DIM=64) == [one_cta, two_ctas]
    # A config that does not fit (0 CTAs) never stays.
    table[("fwd", "ptr", 64, True, one_cta)] = (128, 0, 300_000, 0)
    assert kept(HEAD_DIM=64) == [two_ctas]
    # Nothing clean: the least bad (best occupancy) of the rest, never an empty list.
    table[("fwd", "ptr", 64, True, one_cta)] = (255, 0, 1000, 1)
    table[("fwd", "ptr", 64, True, two_ctas)] = (255, 16, 1000, 1)
    assert kept(HEAD_DIM=64) == [cap, spill]
    # Configs without figures (here: the full mask, the TMA variant, head dim 128) are kept.
    assert kept(HEAD_DIM=64, CAUSAL=False) == [cap, spill, one_cta, two_ctas]
    assert kept(HEAD_DIM=128, TMA=True) == [cap, spill, one_cta, two_ctas]


# --- CUDA only --------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", [(2, 4, 1024, 64), (1, 2, 2048, 128), (2, 3, 1000, 128)], ids=str)
def test_cuda_bf16_long_sequences(shape, causal, seed):
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o = assert_matches_reference(q, k, v, causal, seed)
    # And against PyTorch's own bf16 SDPA: no worse than a few bf16 ulps apart.
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(o, sdpa, atol=4e-2, rtol=4e-2)


@needs_cuda
@pytest.mark.cuda
def test_cuda_fp32_with_tf32(seed, monkeypatch):
    # TF32 keeps 10 mantissa bits (u = 2^-11): the float16 tolerance applies.
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    q, k, v = (torch.randn(2, 2, 300, 64, device="cuda") for _ in range(3))
    q64, k64, v64 = (x.double() for x in (q, k, v))
    o = K.attention(q, k, v, causal=True)
    torch.testing.assert_close(
        o.double(), reference(q64, k64, v64, True), atol=TOL[torch.float16], rtol=TOL[torch.float16]
    )
