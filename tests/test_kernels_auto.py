"""``attention="auto"``: the measure-once chooser (fake timers, on the CPU), its on-disk cache,
the candidate list, and the dispatch to each candidate."""

from __future__ import annotations

import json
import math
import types

import pytest

torch = pytest.importorskip("torch")

import codekiln.attention as attn  # noqa: E402
from codekiln.attention_auto import (  # noqa: E402
    CANDIDATES,
    AutoChooser,
    auto_key,
    candidate_names,
    default_cache_path,
)

HAS_CUDA = torch.cuda.is_available()


class FakeTimer:
    """Returns preset milliseconds per runner (by the runner's ``name`` attribute); records calls."""

    def __init__(self, ms: dict[str, float]) -> None:
        self.ms = ms
        self.calls: list[str] = []

    def __call__(self, fn) -> float:
        self.calls.append(fn.name)
        fn()  # runs the candidate: a failing one raises here, as a real timer would
        value = self.ms[fn.name]
        if value is None:
            raise RuntimeError(f"{fn.name} is not supported here")
        return value


def runners(*names: str, failing: tuple[str, ...] = ()):
    def make(name):
        def run():
            if name in failing:
                raise RuntimeError("unsupported")

        run.name = name
        return run

    return {n: make(n) for n in names}


def test_the_fastest_is_measured_once_and_remembered_on_disk(tmp_path):
    path = tmp_path / "cache" / "auto.json"
    timer = FakeTimer({"triton": 2.0, "sdpa-flash": 1.5, "sdpa-efficient": 3.0})
    chooser = AutoChooser(path, timer)
    cands = runners("triton", "sdpa-flash", "sdpa-efficient")
    assert chooser.choose("k1", cands, "sdpa") == "sdpa-flash"
    assert timer.calls == ["triton", "sdpa-flash", "sdpa-efficient"]
    assert chooser.choose("k1", cands, "sdpa") == "sdpa-flash"
    assert len(timer.calls) == 3  # not measured again in this process
    saved = json.loads(path.read_text())
    assert saved["version"] == 1
    assert saved["entries"]["k1"]["winner"] == "sdpa-flash"
    assert saved["entries"]["k1"]["ms"] == {"triton": 2.0, "sdpa-flash": 1.5, "sdpa-efficient": 3.0}

    # A new process (a new chooser on the same file) reads the choice without measuring; another
    # key is measured and both survive in the file.
    timer2 = FakeTimer({"triton": 1.0, "sdpa-flash": 1.5})
    again = AutoChooser(path, timer2)
    assert again.cached("k1") == "sdpa-flash"
    assert again.choose("k1", cands, "sdpa") == "sdpa-flash" and timer2.calls == []
    assert again.choose("k2", runners("triton", "sdpa-flash"), "sdpa") == "triton"
    assert set(json.loads(path.read_text())["entries"]) == {"k1", "k2"}


def test_ties_go_to_the_earlier_candidate(tmp_path):
    chooser = AutoChooser(tmp_path / "a.json", FakeTimer({"triton": 1.0, "sdpa-flash": 1.0}))
    assert chooser.choose("k", runners("triton", "sdpa-flash"), "sdpa") == "triton"


def test_failing_candidates_are_skipped_and_all_failing_falls_back(tmp_path):
    path = tmp_path / "a.json"
    timer = FakeTimer({"triton": 1.0, "sdpa-flash": 5.0, "sdpa-cudnn": None})
    chooser = AutoChooser(path, timer)
    cands = runners("triton", "sdpa-flash", "sdpa-cudnn", failing=("triton",))
    assert chooser.choose("k", cands, "sdpa") == "sdpa-flash"
    assert json.loads(path.read_text())["entries"]["k"]["ms"]["triton"] is None
    nothing = runners("triton", "sdpa-flash", failing=("triton", "sdpa-flash"))
    assert chooser.choose("dead", nothing, "sdpa") == "sdpa"
    assert "dead" not in json.loads(path.read_text())["entries"]  # not remembered on disk


def test_a_remembered_winner_that_is_no_longer_offered_is_measured_again(tmp_path):
    path = tmp_path / "a.json"
    AutoChooser(path, FakeTimer({"flash-attn-3": 0.5, "triton": 1.0})).choose(
        "k", runners("flash-attn-3", "triton"), "sdpa"
    )
    timer = FakeTimer({"triton": 1.0, "sdpa-flash": 2.0})
    assert AutoChooser(path, timer).choose("k", runners("triton", "sdpa-flash"), "sdpa") == "triton"
    assert timer.calls == ["triton", "sdpa-flash"]


@pytest.mark.parametrize("content", ["{not json", '{"version": 99, "entries": {"k": 1}}', "[]"])
def test_an_unreadable_cache_is_ignored_and_rewritten(tmp_path, content):
    path = tmp_path / "a.json"
    path.write_text(content)
    timer = FakeTimer({"triton": 1.0})
    assert AutoChooser(path, timer).choose("k", runners("triton"), "sdpa") == "triton"
    assert timer.calls == ["triton"]
    assert json.loads(path.read_text())["entries"]["k"]["winner"] == "triton"


def test_an_unwritable_cache_only_costs_remeasuring(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    chooser = AutoChooser(blocker / "sub" / "a.json", FakeTimer({"triton": 1.0}))  # not a dir
    assert chooser.choose("k", runners("triton"), "sdpa") == "triton"
    assert chooser.choose("k", runners("triton"), "sdpa") == "triton"


def test_cache_path_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CODEKILN_ATTENTION_CACHE", str(tmp_path / "x.json"))
    assert default_cache_path() == tmp_path / "x.json"
    monkeypatch.delenv("CODEKILN_ATTENTION_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / "codekiln" / "attention_auto.json"


def test_keys_bucket_the_length_and_name_everything_else():
    args = ("NVIDIA H200 sm_90", torch.bfloat16, 128, True)
    names = ("triton", "sdpa-flash")
    assert auto_key(*args, 1500, True, names) == auto_key(*args, 2048, True, names)
    assert auto_key(*args, 2048, True, names) != auto_key(*args, 2049, True, names)
    assert auto_key(*args, 2048, True, names) != auto_key(*args, 2048, False, names)
    assert auto_key(*args, 2048, True, names) != auto_key(*args, 2048, True, names[:1])
    key = auto_key(*args, 1500, True, names)
    assert "H200" in key and "bfloat16" in key and "hd128" in key and "T<=2048" in key


def test_candidate_names():
    sdpa = ("sdpa-flash", "sdpa-cudnn", "sdpa-efficient")
    every = candidate_names(
        kernel_ok=True, single_pass_ok=True, sdpa_backends=sdpa, fa3_ok=True, tma_ok=True
    )
    assert every == CANDIDATES
    # Below sm_90 (no TMA) the descriptor variants are not offered.
    no_tma = candidate_names(kernel_ok=True, single_pass_ok=True, sdpa_backends=sdpa, fa3_ok=True)
    assert no_tma == tuple(n for n in CANDIDATES if "tma" not in n)
    det_tma = candidate_names(
        kernel_ok=True, single_pass_ok=False, sdpa_backends=sdpa, fa3_ok=False, tma_ok=True
    )
    assert det_tma == ("triton", "triton-tma", *sdpa)
    # torch.use_deterministic_algorithms(True): the atomic single pass is not a candidate.
    det = candidate_names(kernel_ok=True, single_pass_ok=False, sdpa_backends=sdpa, fa3_ok=False)
    assert det == ("triton", *sdpa)
    odd = candidate_names(kernel_ok=False, single_pass_ok=True, sdpa_backends=sdpa, fa3_ok=False)
    assert odd == sdpa  # head dim 48, float64, ...: the kernel is not offered


def test_auto_without_cuda_measures_nothing(monkeypatch):
    timer = FakeTimer({})
    monkeypatch.setattr(attn, "AUTO_CHOOSER", AutoChooser(None, timer))
    q = torch.randn(1, 2, 16, 32)
    assert attn.resolve_backend("auto", q, q, q, 0.0) == "sdpa"
    out = attn.attend(q, q, q, backend="auto")
    torch.testing.assert_close(out, attn.naive_attention(q, q, q))
    assert timer.calls == []


def test_auto_choice_measures_real_runners_and_attend_uses_the_winner(monkeypatch, tmp_path):
    # The CUDA path of "auto" with the device queries faked and a timer that really runs each
    # candidate (on the CPU: the kernel in the interpreter; SDPA backends that cannot run on
    # the CPU raise and are skipped) before returning preset times.
    pytest.importorskip("triton")
    if not attn._kernels().runnable_on(torch.device("cpu")):
        pytest.skip("needs the Triton interpreter (TRITON_INTERPRET=1) on a CPU machine")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake H100")
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    ran: list[str] = []

    def timer(fn):
        fn()
        ran.append(fn.__qualname__)
        return float(len(ran))  # the first candidate that runs wins

    chooser = AutoChooser(tmp_path / "a.json", timer)
    monkeypatch.setattr(attn, "AUTO_CHOOSER", chooser)
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: False)
    q, k, v = (torch.randn(1, 2, 20, 16, requires_grad=True) for _ in range(3))
    assert attn._auto_choice(q, k, v, True) == "triton"
    entry = json.loads((tmp_path / "a.json").read_text())["entries"]
    (key,) = entry
    assert "Fake H100 sm_90" in key and "fwd+bwd" in key and "triton-single-pass" in key
    assert entry[key]["ms"]["triton"] == 1.0 and entry[key]["ms"]["triton-single-pass"] == 2.0
    # Under the deterministic flag the single pass is not offered (a different key).
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
    with torch.no_grad():
        assert attn._auto_choice(q, k, v, True) == "triton"
    assert len(chooser.measured) == 2 and "single-pass" not in chooser.measured[1]
    assert "|fwd|" in chooser.measured[1]


def test_auto_offers_and_runs_the_tma_variants_on_sm90(monkeypatch, tmp_path):
    # On sm_90+ (faked here; the interpreter runs the descriptors) "auto" measures the TMA
    # variants too; the winner's runner passes tma=True to the kernel.
    pytest.importorskip("triton")
    kernels = attn._kernels()
    if not kernels.runnable_on(torch.device("cpu")):
        pytest.skip("needs the Triton interpreter (TRITON_INTERPRET=1) on a CPU machine")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake H200")
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    monkeypatch.setattr(kernels, "tma_supported", lambda device: True)
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: False)
    times = iter([5.0, 6.0, 1.0, 7.0, 8.0, 9.0, 10.0, 11.0])  # the third measured wins

    def timer(fn):
        fn()
        return next(times)

    monkeypatch.setattr(attn, "AUTO_CHOOSER", AutoChooser(tmp_path / "a.json", timer))
    q, k, v = (torch.randn(1, 2, 20, 16, requires_grad=True) for _ in range(3))
    assert attn._auto_choice(q, k, v, True) == "triton-tma"
    (key,) = json.loads((tmp_path / "a.json").read_text())["entries"]
    assert "triton,triton-single-pass,triton-tma,triton-tma-single-pass" in key
    calls = []
    real = kernels.attention
    monkeypatch.setattr(kernels, "attention", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    out = attn.run_candidate("triton-tma", q, k, v, causal=True)  # what attend runs on CUDA
    assert calls and calls[-1]["tma"] is True and calls[-1]["deterministic"] is True
    torch.testing.assert_close(out, attn.naive_attention(q, k, v), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "name", ["triton", "triton-single-pass", "triton-tma", "triton-tma-single-pass"]
)
def test_run_candidate_kernels_match_naive(name):
    pytest.importorskip("triton")
    device = "cuda" if HAS_CUDA else "cpu"
    q, k, v = (torch.randn(2, 2, 33, 32, device=device, requires_grad=True) for _ in range(3))
    out = attn.run_candidate(name, q, k, v, causal=True)
    out.backward(torch.ones_like(out))
    grads = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    want = attn.naive_attention(q, k, v, causal=True)
    want.backward(torch.ones_like(want))
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    for got, x in zip(grads, (q, k, v)):
        torch.testing.assert_close(got, x.grad, atol=1e-5, rtol=1e-5)


def test_run_candidate_flash_attn_3_layout(monkeypatch):
    # FlashAttention-3 takes and returns (B, T, nh, hs), some versions with the log-sum-exp:
    # a stand-in module checks the layout the dispatcher hands over.
    def flash_attn_func(q, k, v, causal):
        assert q.shape == (2, 33, 3, 16)  # (B, T, nh, hs)
        o = attn.naive_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal)
        return o.transpose(1, 2), None

    fake = types.SimpleNamespace(flash_attn_func=flash_attn_func)
    monkeypatch.setattr(attn, "_flash_attn_3", lambda: fake)
    q, k, v = (torch.randn(2, 3, 33, 16) for _ in range(3))
    got = attn.run_candidate("flash-attn-3", q, k, v, causal=True)
    torch.testing.assert_close(got, attn.naive_attention(q, k, v, causal=True))
    monkeypatch.setattr(attn, "_flash_attn_3", lambda: None)
    with pytest.raises(RuntimeError, match="flash_attn_interface"):
        attn.run_candidate("flash-attn-3", q, k, v, causal=True)
    with pytest.raises(ValueError, match="unknown attention implementation"):
        attn.run_candidate("fa9", q, k, v, causal=True)
    assert math.isfinite(float(got.abs().max()))
