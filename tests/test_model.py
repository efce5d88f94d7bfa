"""The GPT model: config, presets, initialisation, backends, KV cache, training helpers."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from codekiln.model import (  # noqa: E402
    GPT,
    PRESETS,
    GPTConfig,
    KVCache,
    attend,
    naive_attention,
    preset,
    resolve_backend,
)

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
REPO = Path(__file__).resolve().parents[1]


def small(**overrides) -> GPTConfig:
    """2 layers, 2 heads of 32 (a head size the Triton kernel supports), 97 tokens."""
    base = dict(vocab_size=97, block_size=32, n_layer=2, n_head=2, n_embd=64)
    return GPTConfig(**{**base, **overrides})


VARIANTS = {
    "gpt2": {},
    "modern": dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", tie_embeddings=False, bias=False),
    "rope-gelu-tied": dict(pos_emb="rope"),
    "rmsnorm-swiglu-learned": dict(norm="rmsnorm", mlp="swiglu"),
}


# --- config and presets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(n_embd=65), "multiple of n_head"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(dropout=1.0), "dropout"),
        (dict(pos_emb="alibi"), "pos_emb"),
        (dict(norm="batchnorm"), "norm"),
        (dict(mlp="relu"), "mlp"),
        (dict(attention="flash"), "attention"),
        (dict(n_embd=66, n_head=2, pos_emb="rope"), "even head size"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        small(**overrides)


def test_presets_have_the_published_sizes():
    with torch.device("meta"):  # no memory, no init cost
        gpt2 = GPT.from_preset("gpt2-small")
        codeparrot = GPT.from_preset("codeparrot-small")
        tiny = GPT.from_preset("tiny")
    # Hugging Face's gpt2 has exactly 124,439,808 parameters (tied lm_head).
    assert gpt2.num_params(non_embedding=False) == 124_439_808
    assert gpt2.num_params() == 124_439_808 - 1024 * 768  # minus the position table
    # CodeParrot-small: the same layout with 32768 tokens, "110M".
    assert codeparrot.num_params(non_embedding=False) == 124_439_808 - (50257 - 32768) * 768
    assert 0.5e6 < tiny.num_params(non_embedding=False) < 2e6
    assert set(PRESETS) == {"tiny", "gpt2-small", "codeparrot-small"}
    assert preset("tiny", pos_emb="rope").pos_emb == "rope"
    with pytest.raises(ValueError, match="unknown preset"):
        preset("gpt5")


def test_untied_model_counts_both_matrices():
    tied, untied = GPT(small()), GPT(small(tie_embeddings=False))
    extra = 97 * 64
    assert untied.num_params(non_embedding=False) == tied.num_params(non_embedding=False) + extra
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert tied.lm_head.weight is tied.transformer.wte.weight
    # Non-embedding counts the matmul weights: the same for both (one V x C output matmul).
    assert untied.num_params() == tied.num_params()


# --- forward, init, variants --------------------------------------------------------------------


def test_forward_shapes_and_initial_loss_near_uniform():
    torch.manual_seed(0)
    model = GPT(small(vocab_size=500))
    idx, targets = torch.randint(0, 500, (2, 3, 20))
    logits, loss = model(idx, targets=targets)
    assert logits.shape == (3, 20, 500) and loss is not None and loss.ndim == 0
    # GPT-2 init keeps the logits small, so the first loss is close to log(vocab). (Targets
    # equal to the inputs would score lower: with tied embeddings x . wte[x] is already large.)
    assert abs(loss.item() - math.log(500)) < 0.1
    logits2, loss2 = model(idx)
    assert loss2 is None and torch.equal(logits, logits2)


def test_targets_of_another_shape_are_an_error():
    model = GPT(small())
    idx = torch.randint(0, 97, (2, 10))
    with pytest.raises(ValueError, match=r"targets must have the shape of idx \(2, 10\)"):
        model(idx, targets=torch.randint(0, 97, (10, 2)))  # same numel, transposed
    with pytest.raises(ValueError, match="targets must have the shape"):
        model(idx, targets=idx[:, :-1])
    with pytest.raises(ValueError, match=r"\(batch, time\)"):
        model(idx[0])


def test_targets_minus_one_are_ignored():
    torch.manual_seed(0)
    model = GPT(small())
    idx = torch.randint(0, 97, (2, 10))
    targets = idx.clone()
    targets[:, 5:] = -1
    _, loss = model(idx, targets=targets)
    logits, _ = model(idx)
    want = torch.nn.functional.cross_entropy(logits[:, :5].reshape(-1, 97), idx[:, :5].reshape(-1))
    torch.testing.assert_close(loss, want)


def test_gpt2_initialisation_scales_residual_projections():
    torch.manual_seed(0)
    cfg = small(n_layer=8, n_embd=256, n_head=4)
    model = GPT(cfg)
    block = model.transformer.h[3]
    want_proj = 0.02 / math.sqrt(2 * cfg.n_layer)
    for w in (block.attn.c_proj.weight, block.mlp.c_proj.weight):
        assert abs(w.std().item() - want_proj) / want_proj < 0.05
    for w in (block.attn.c_attn.weight, block.mlp.c_fc.weight, model.transformer.wte.weight):
        assert abs(w.std().item() - 0.02) / 0.02 < 0.05
    assert torch.all(block.attn.c_attn.bias == 0)
    assert torch.all(block.ln_1.weight == 1)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_trains_every_parameter(variant):
    torch.manual_seed(0)
    model = GPT(small(**VARIANTS[variant]))
    idx = torch.randint(0, 97, (2, 16))
    _, loss = model(idx, targets=torch.roll(idx, -1, 1))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    has_wpe = "wpe" in model.transformer
    assert has_wpe == (model.config.pos_emb == "learned")


def test_swiglu_hidden_size_matches_gelu_parameter_count():
    gelu = GPT(small(n_embd=192, n_head=3)).transformer.h[0].mlp
    swiglu = GPT(small(n_embd=192, n_head=3, mlp="swiglu")).transformer.h[0].mlp
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert swiglu.c_proj.in_features % 64 == 0
    assert abs(n(swiglu) - n(gelu)) / n(gelu) < 0.05


def test_rope_is_relative():
    # Rotary scores depend on position differences only: shifting every position by the same
    # offset (here: continuing after a cache) leaves q.k unchanged.
    from codekiln.model import apply_rope, rope_tables

    cos, sin = rope_tables(32, 64)
    q, k = torch.randn(1, 1, 1, 32), torch.randn(1, 1, 1, 32)
    s1 = apply_rope(q, cos[[10]], sin[[10]]) @ apply_rope(k, cos[[7]], sin[[7]]).mT
    s2 = apply_rope(q, cos[[40]], sin[[40]]) @ apply_rope(k, cos[[37]], sin[[37]]).mT
    torch.testing.assert_close(s1, s2, atol=1e-5, rtol=1e-5)
    s3 = apply_rope(q, cos[[10]], sin[[10]]) @ apply_rope(k, cos[[2]], sin[[2]]).mT
    assert not torch.allclose(s1, s3, atol=1e-3)


# --- attention backends ----------------------------------------------------------------------


def _loss_and_grads(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    _, loss = model(idx, targets=torch.roll(idx, -1, 1))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _same_model(cfg: GPTConfig, backend: str, like: GPT) -> GPT:
    other = GPT(GPTConfig(**{**cfg.__dict__, "attention": backend}))
    other.load_state_dict(like.state_dict())
    return other


@pytest.mark.parametrize("variant", ["gpt2", "modern"])
def test_naive_and_sdpa_backends_agree_in_float64(variant):
    torch.manual_seed(0)
    cfg = small(attention="sdpa", **VARIANTS[variant])
    sdpa = GPT(cfg).double()
    naive = _same_model(cfg, "naive", sdpa).double()
    idx = torch.randint(0, 97, (2, 21))
    loss_a, grads_a = _loss_and_grads(sdpa, idx)
    loss_b, grads_b = _loss_and_grads(naive, idx)
    torch.testing.assert_close(loss_a, loss_b, atol=1e-12, rtol=1e-12)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("variant", ["gpt2", "modern"])
def test_triton_backend_matches_sdpa_loss_and_gradients(variant):
    # On a machine without CUDA this runs the real kernels in Triton's interpreter.
    pytest.importorskip("triton", reason="the triton backend needs triton")
    torch.manual_seed(0)
    device = "cuda" if HAS_CUDA else "cpu"
    cfg = small(attention="sdpa", **VARIANTS[variant])
    sdpa = GPT(cfg).to(device)
    triton_model = _same_model(cfg, "triton", sdpa).to(device)
    idx = torch.randint(0, 97, (2, 27), device=device)  # 27: not a multiple of any block
    loss_a, grads_a = _loss_and_grads(sdpa, idx)
    loss_b, grads_b = _loss_and_grads(triton_model, idx)
    # fp32 throughout; both are exact-softmax attention, differing by summation order only.
    torch.testing.assert_close(loss_a, loss_b, atol=1e-5, rtol=1e-5)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=2e-5, rtol=1e-3, msg=name)


def test_backend_resolution():
    q = torch.randn(1, 2, 8, 32)
    assert resolve_backend("auto", q, q, q, 0.0) == "sdpa"  # CPU tensors
    assert resolve_backend("naive", q, q, q, 0.0) == "naive"
    assert resolve_backend("sdpa", q, q, q, 0.1) == "sdpa"
    kv = torch.randn(1, 2, 12, 32)
    assert resolve_backend("triton", q, kv, kv, 0.0) == "sdpa"  # decoding against a cache
    with pytest.raises(ValueError, match="no attention dropout"):
        resolve_backend("triton", q, q, q, 0.1)


def test_triton_backend_with_dropout_in_training_raises():
    model = GPT(small(attention="triton", dropout=0.1))
    idx = torch.randint(0, 97, (1, 8))
    with pytest.raises(ValueError, match="no attention dropout"):
        model(idx)
    model.eval()  # dropout off: fine
    if HAS_CUDA or os.environ.get("TRITON_INTERPRET") == "1":
        logits, _ = model(idx)
        assert torch.isfinite(logits).all()


def test_triton_without_cuda_or_interpreter_raises_a_clear_error():
    script = textwrap.dedent(
        """
        import torch
        from codekiln.model import GPT, GPTConfig
        model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=64,
                              attention="triton"))
        try:
            model(torch.randint(0, 50, (1, 8)))
        except RuntimeError as err:
            print("ERROR:", err)
        else:
            print("NO ERROR")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "python"), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "ERROR:" in out.stdout, out.stdout
    assert "needs CUDA tensors" in out.stdout and "TRITON_INTERPRET=1" in out.stdout


def test_bottom_right_causal_mask_for_queries_after_a_cache():
    torch.manual_seed(0)
    q = torch.randn(2, 3, 4, 16, dtype=torch.float64)
    k, v = (
        torch.randn(2, 3, 10, 16, dtype=torch.float64),
        torch.randn(2, 3, 10, 16, dtype=torch.float64),
    )
    got_naive = naive_attention(q, k, v, causal=True)
    got_sdpa = attend(q, k, v, backend="sdpa")
    # Query i is at position 6 + i: it sees keys 0 .. 6 + i, the last row sees all ten.
    for i in range(4):
        want = naive_attention(q[:, :, i : i + 1], k[:, :, : 7 + i], v[:, :, : 7 + i], causal=False)
        torch.testing.assert_close(got_naive[:, :, i : i + 1], want)
        torch.testing.assert_close(got_sdpa[:, :, i : i + 1], want)


# --- KV cache and generation ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sdpa", "naive", "triton"])
@pytest.mark.parametrize("pos_emb", ["learned", "rope"])
def test_kv_cache_decoding_equals_full_forward(pos_emb, backend):
    if backend == "triton":
        pytest.importorskip("triton", reason="the triton backend needs triton")
    torch.manual_seed(0)
    device = "cuda" if HAS_CUDA and backend == "triton" else "cpu"
    model = GPT(small(pos_emb=pos_emb, attention=backend)).to(device).eval()
    idx = torch.randint(0, 97, (2, 20), device=device)
    full, _ = model(idx)

    cache = model.new_cache()
    pieces = []
    for lo, hi in [(0, 7), (7, 10), *[(t, t + 1) for t in range(10, 20)]]:  # prefill, chunk, steps
        logits, _ = model(idx[:, lo:hi], cache=cache)
        assert logits.shape == (2, hi - lo, 97)
        assert cache.length == hi
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_limits():
    model = GPT(small(block_size=16)).eval()
    with pytest.raises(ValueError, match="block_size"):
        model(torch.randint(0, 97, (1, 17)))
    cache = model.new_cache(max_len=8)
    model(torch.randint(0, 97, (1, 6)), cache=cache)
    with pytest.raises(ValueError, match="KV cache is full"):
        model(torch.randint(0, 97, (1, 3)), cache=cache)
    with pytest.raises(ValueError, match="max_len"):
        model.new_cache(max_len=17)
    cache.reset()
    assert cache.length == 0 and isinstance(cache, KVCache)


def test_greedy_generation_with_cache_equals_recomputing_everything():
    torch.manual_seed(0)
    model = GPT(small(block_size=16, pos_emb="rope")).eval()
    prompt = torch.randint(0, 97, (2, 10))
    # 12 new tokens from a 10-token prompt overflows block_size=16: exercises the window slide.
    seen: list[int] = []
    forward = model.forward

    def counting_forward(idx, *args, **kwargs):
        seen.append(idx.size(1))
        return forward(idx, *args, **kwargs)

    model.forward = counting_forward
    got = model.generate(prompt, max_new_tokens=30, top_k=1)
    del model.forward
    # Reference without a cache: the context starts at `start`, which moves to the last
    # block // 2 tokens whenever the window would exceed the block.
    want, start = prompt, 0
    with torch.no_grad():
        for _ in range(30):
            if want.size(1) - start > 16:
                start = want.size(1) - 8
            logits, _ = model(want[:, start:])
            want = torch.cat((want, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
    assert got.shape == (2, 40)
    assert torch.equal(got, want)
    # Cost: after the prompt, rebuilds prefill block // 2 positions, fewer than 2 per token
    # (re-prefilling the whole window per token would be ~16 per token).
    assert seen[0] == 10 and {t for t in seen[1:] if t > 1} == {8}
    assert sum(seen[1:]) < 2 * 30


def test_sampling_respects_top_k_and_generator():
    torch.manual_seed(0)
    model = GPT(small()).eval()
    prompt = torch.randint(0, 97, (3, 4))
    a = model.generate(
        prompt, 6, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(1)
    )
    b = model.generate(
        prompt, 6, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(a, b) and torch.equal(a[:, :4], prompt)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompt, 1, temperature=0.0)


# --- training helpers --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["gpt2", "modern"])
def test_tiny_model_overfits_one_batch(variant):
    torch.manual_seed(0)
    model = GPT(small(vocab_size=64, **VARIANTS[variant]))
    idx = torch.randint(0, 64, (4, 32))
    x, y = idx[:, :-1], idx[:, 1:]
    opt = model.configure_optimizers(weight_decay=0.0, learning_rate=3e-3, device_type="cpu")
    _, first = model(x, targets=y)
    for _ in range(80):
        _, loss = model(x, targets=y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert first.item() > 4.0  # ~ log(64) = 4.16
    assert loss.item() < 0.1, f"loss after 80 steps: {loss.item():.3f}"


def test_configure_optimizers_decays_matrices_only():
    model = GPT(small(tie_embeddings=True))
    opt = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cpu")
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # tied matrix once
    assert opt.defaults["lr"] == 6e-4 and opt.defaults["betas"] == (0.9, 0.95)
    assert not opt.defaults.get("fused")


@needs_cuda
@pytest.mark.cuda
def test_configure_optimizers_fused_on_cuda():
    model = GPT(small()).cuda()
    opt = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cuda")
    assert opt.defaults["fused"] is True


def test_flops_per_token_and_mfu():
    with torch.device("meta"):
        model = GPT.from_preset("gpt2-small")
    n = model.num_params()
    assert model.flops_per_token() == 6 * n + 12 * 12 * 768 * 1024
    assert model.flops_per_token(seq_len=256) == 6 * n + 12 * 12 * 768 * 256
    # 8 sequences of 1024 tokens in 0.5 s on a 100 TFLOP/s device:
    flops = model.flops_per_token() * 1024 * 8
    assert model.estimate_mfu(8, 0.5, 100e12) == pytest.approx(flops / 0.5 / 100e12)
    assert 0 < model.estimate_mfu(8, 0.5, 100e12) < 1


@pytest.mark.parametrize("tied", [True, False])
def test_resize_vocab_initialises_new_rows_from_a_token(tied):
    torch.manual_seed(0)
    model = GPT(small(tie_embeddings=tied))
    old_wte = model.transformer.wte.weight.detach().clone()
    old_head = model.lm_head.weight.detach().clone()
    tab = 9  # say, the id of "\t"
    model.resize_vocab(105, init_from=tab)
    wte, head = model.transformer.wte.weight, model.lm_head.weight
    assert model.config.vocab_size == 105 and wte.shape == head.shape == (105, 64)
    assert torch.equal(wte[:97], old_wte) and torch.equal(head[:97], old_head)
    assert torch.equal(wte[97:], old_wte[tab].expand(8, -1))
    assert torch.equal(head[97:], old_head[tab].expand(8, -1))
    assert (head is wte) == tied
    # The new ids work, and the new tokens start out as exact copies of the source token.
    idx = torch.tensor([[1, tab, 3], [1, 100, 3]])
    logits, loss = model(idx, targets=idx)
    torch.testing.assert_close(logits[0], logits[1])
    assert logits.shape == (2, 3, 105)
    loss.backward()
    assert wte.grad is not None


def test_resize_vocab_per_row_sources_random_init_and_shrink():
    torch.manual_seed(0)
    model = GPT(small())
    old = model.transformer.wte.weight.detach().clone()
    model.resize_vocab(100, init_from=[5, 6, 7])
    assert torch.equal(model.transformer.wte.weight[97:], old[[5, 6, 7]])
    model.resize_vocab(110)  # N(0, 0.02) rows
    new_rows = model.transformer.wte.weight[100:]
    assert new_rows.abs().max() < 0.2 and new_rows.std() > 0.005
    model.resize_vocab(50)
    assert model.transformer.wte.weight.shape == (50, 64)
    assert torch.equal(model.transformer.wte.weight, old[:50])
    with pytest.raises(ValueError, match="outside the old vocabulary"):
        model.resize_vocab(60, init_from=55)
    with pytest.raises(ValueError, match="3 ids for 10 new rows"):
        model.resize_vocab(60, init_from=[1, 2, 3])


# --- CUDA only --------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.cuda
def test_auto_backend_uses_triton_on_cuda_and_matches_sdpa_in_bf16():
    pytest.importorskip("triton")
    q = torch.randn(1, 2, 64, 64, device="cuda", dtype=torch.bfloat16)
    # "auto" measures the candidates on this GPU and takes the fastest (attention_auto).
    from codekiln.attention_auto import CANDIDATES

    assert resolve_backend("auto", q, q, q, 0.0) in (*CANDIDATES, "sdpa")
    odd = torch.randn(1, 2, 64, 48, device="cuda", dtype=torch.bfloat16)
    assert resolve_backend("auto", odd, odd, odd, 0.0) == "sdpa"  # head dim 48 unsupported
    torch.manual_seed(0)
    cfg = small(n_embd=256, n_head=4, block_size=512, attention="sdpa")
    sdpa = GPT(cfg).cuda()
    auto = _same_model(cfg, "auto", sdpa).cuda()
    idx = torch.randint(0, 97, (4, 500), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, a = sdpa(idx, targets=idx)
        _, b = auto(idx, targets=idx)
    torch.testing.assert_close(a, b, atol=2e-2, rtol=2e-2)
