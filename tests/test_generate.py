"""``complete`` against its slow oracle (greedy with the whole context recomputed per token), its
stop rules on a scripted model, top-k / top-p properties, and the ``codekiln complete`` CLI."""

from __future__ import annotations

import ast
import io
import json
import math
import pathlib

import pytest

torch = pytest.importorskip("torch")

import codekiln  # noqa: E402
from codekiln.attention import KVCache  # noqa: E402
from codekiln.cli import main  # noqa: E402
from codekiln.generate import DEFAULT_STOPS, _filter_logits, complete  # noqa: E402
from eval_helpers import model, tokenizer, write_run  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from reference_generate import reference_cut, reference_greedy, reference_greedy_ids  # noqa: E402

PROMPTS = [
    "def fibonacci(n):\n",
    "import os\n\n\nclass Stack:\n    def __init__(self):",
    "",
    "x",
]


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


# ------------------------------------------------------------------------------ the oracle


@pytest.mark.parametrize("pos_emb", ["learned", "rope"])
def test_greedy_with_cache_equals_recomputing_the_context(tok, pos_emb: str) -> None:
    kw = {"pos_emb": pos_emb, "norm": "rmsnorm", "mlp": "swiglu"} if pos_emb == "rope" else {}
    m = model(tok, seed=1, **kw)
    for prompt in PROMPTS:
        want_ids = reference_greedy_ids(m, tok, prompt, 40)
        got = complete(m, tok, prompt, temperature=0, max_new_tokens=40, stop=None, num_samples=3)
        assert got == [tok.decode(want_ids)] * 3, prompt
        with_stops = complete(m, tok, prompt, temperature=0, max_new_tokens=40)
        assert with_stops == [reference_greedy(m, tok, prompt, 40, DEFAULT_STOPS)]


def _reference_window_greedy(m, tok, prompt: str, n: int) -> list[int]:
    """Greedy recomputing the context each token, with complete()'s window policy: once the
    context exceeds block_size it restarts from the last block_size // 2 tokens."""
    block = m.config.block_size
    seq = tok.encode(prompt)[-(block - 1) :]
    start, out = 0, []
    for _ in range(n):
        if len(seq) - start > block:
            start = len(seq) - block // 2
        logits, _ = m(torch.tensor([seq[start:]]))
        t = int(logits[0, -1, : tok.vocab_size].argmax())
        if t == tok.eot_id:
            break
        seq.append(t)
        out.append(t)
    return out


@torch.no_grad()
def test_greedy_past_the_block_follows_the_window_policy(tok) -> None:
    m = model(tok, seed=2, block_size=16)
    want = tok.decode(_reference_window_greedy(m, tok, "def f(x):\n    return", 50))
    assert complete(
        m, tok, "def f(x):\n    return", temperature=0, max_new_tokens=50, stop=None
    ) == [want]


@torch.no_grad()
def test_past_the_block_each_rebuild_drops_half_the_window(tok) -> None:
    # Cost, counted in positions the model processes (not time): once the context is full,
    # a rebuild prefills block // 2 tokens and buys block // 2 one-token steps, so generating n
    # tokens processes < 2n positions after the prompt -- re-prefilling the whole window per
    # token (nanoGPT's crop) would process ~block per token.
    block, n = 16, 60
    m = model(tok, seed=5, block_size=block)
    prompt = "def f(x):\n    return"
    want = _reference_window_greedy(m, tok, prompt, n)
    seen: list[int] = []
    forward = m.forward

    def counting_forward(idx, *args, **kwargs):
        seen.append(idx.size(1))
        return forward(idx, *args, **kwargs)

    m.forward = counting_forward
    got = complete(m, tok, prompt, temperature=0, max_new_tokens=n, stop=None)
    assert got == [tok.decode(want)] and len(want) == n  # no end-of-text: the window slides
    prefill, rest = seen[0], seen[1:]
    assert prefill == len(tok.encode(prompt))
    rebuilds = [t for t in rest if t > 1]
    assert rebuilds and set(rebuilds) == {block // 2}
    assert len(rebuilds) <= -(-(n + prefill) // (block // 2))
    assert sum(rest) < 2 * n


def test_kv_cache_rejects_a_batch_size_change_mid_sequence(tok) -> None:
    # Prefilling one row and decoding two used to reallocate the buffers silently, dropping the
    # cached positions and attending to uninitialised memory (NaN logits).
    m = model(tok, seed=6)
    cache = m.new_cache()
    with torch.no_grad():
        m(torch.tensor([[1, 2, 3]]), cache=cache)
        with pytest.raises(ValueError, match=r"3 positions for a batch of 1 rows.*2 rows"):
            m(torch.tensor([[4], [5]]), cache=cache)
        cache.reset()  # a fresh sequence may change the batch size
        m(torch.tensor([[1, 2, 3], [1, 2, 3]]), cache=cache)
        step, _ = m(torch.tensor([[4], [4]]), cache=cache)
    full, _ = m(torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]]))
    assert torch.isfinite(step).all()
    torch.testing.assert_close(step[:, -1], full[:, -1], atol=1e-5, rtol=1e-5)


def test_seed_makes_sampling_reproducible(tok) -> None:
    m = model(tok, seed=3)
    a = complete(m, tok, "def f(", num_samples=4, temperature=1.0, top_p=None, seed=7)
    b = complete(m, tok, "def f(", num_samples=4, temperature=1.0, top_p=None, seed=7)
    c = complete(m, tok, "def f(", num_samples=4, temperature=1.0, top_p=None, seed=8)
    assert a == b
    assert a != c
    assert len(set(a)) > 1  # the samples of one batch differ


def test_padding_ids_beyond_the_tokenizer_are_never_chosen(tok) -> None:
    m = model(tok, seed=4, vocab_size=tok.vocab_size + 100)
    with torch.no_grad():  # make the padding rows the likeliest tokens
        m.lm_head.weight[tok.vocab_size :] = m.lm_head.weight[:100] * 5
    for temperature in (0.0, 1.0):
        texts = complete(
            m, tok, "x = ", temperature=temperature, max_new_tokens=20, stop=None, seed=0
        )
        assert texts[0]  # something came out, and decoding did not raise on an unknown id


# ------------------------------------------------------------------------------ scripted model


class Scripted(torch.nn.Module):
    """A stand-in model whose row b emits ``scripts[b][i]`` as its i-th new token (greedy).

    The prompt is prefilled once for the whole batch, so every script starts with the same
    token. Records every input it sees.
    """

    def __init__(self, scripts: list[list[int]], vocab: int, block_size: int = 64) -> None:
        super().__init__()
        self.scripts = scripts
        self.vocab = vocab
        self.config = type("C", (), {"block_size": block_size})()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[list[list[int]]] = []

    def new_cache(self) -> KVCache:
        return KVCache(0, self.config.block_size)

    def forward(self, idx, cache=None):
        B, T = idx.shape
        step = len(self.calls)  # the prefill emits token 0, each later call the next one
        self.calls.append(idx.tolist())
        logits = torch.zeros(B, T, self.vocab)
        for b in range(B):
            script = self.scripts[b % len(self.scripts)]
            logits[b, -1, script[min(step, len(script) - 1)]] = 10.0
        cache.length += T
        return logits, None


def test_each_sample_stops_on_its_own(tok) -> None:
    eot = tok.eot_id
    texts = ["x = 1\ndef g():", "x = 2", "x = 3 # never stops " * 3]
    scripts = [tok.encode(texts[0]), [*tok.encode(texts[1]), eot], tok.encode(texts[2])]
    assert len({s[0] for s in scripts}) == 1
    m = Scripted(scripts, tok.vocab_size)
    got = complete(m, tok, "p", temperature=0, num_samples=3, max_new_tokens=12)
    assert got[0] == "x = 1"  # cut before "\ndef"
    assert got[1] == "x = 2"  # end of text
    assert got[2] == tok.decode(scripts[2][:12])  # the token budget
    # a custom stop; None stops at end of text only
    m = Scripted(scripts, tok.vocab_size)
    custom = complete(m, tok, "p", temperature=0, num_samples=3, max_new_tokens=12, stop=["= 2"])
    assert custom[1] == "x "
    m = Scripted(scripts, tok.vocab_size)
    assert complete(m, tok, "p", temperature=0, num_samples=2, stop=None)[1] == "x = 2"


def test_generation_ends_when_every_sample_is_done(tok) -> None:
    eot = tok.eot_id
    m = Scripted([[*tok.encode("ab"), eot]], tok.vocab_size)
    assert complete(m, tok, "p", temperature=0, num_samples=2, max_new_tokens=100) == ["ab"] * 2
    assert len(m.calls) <= len(tok.encode("ab")) + 1


def test_stop_string_spanning_tokens_and_at_the_start(tok) -> None:
    m = Scripted([tok.encode("\n\nprint(1)")], tok.vocab_size)
    assert complete(m, tok, "p", temperature=0, max_new_tokens=20) == ["\n"]
    m = Scripted([tok.encode("\nclass A: pass")], tok.vocab_size)
    assert complete(m, tok, "p", temperature=0, max_new_tokens=20) == [""]


def test_a_long_prompt_keeps_its_tail(tok) -> None:
    m = Scripted([[*tok.encode("ok"), tok.eot_id]], tok.vocab_size, block_size=32)
    prompt = "def f(a, b):\n    return a + b\n" * 40
    assert complete(m, tok, prompt, temperature=0) == ["ok"]
    assert m.calls[0] == [tok.encode(prompt)[-31:]]  # room for one new token
    real = model(tok, block_size=32)
    assert len(complete(real, tok, prompt, temperature=0, max_new_tokens=40, stop=None)) == 1


def test_bad_arguments_are_clear(tok) -> None:
    m = model(tok)
    with pytest.raises(TypeError, match="wrap it in a list"):
        complete(m, tok, "x", stop="\n")
    for kw, word in [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"num_samples": 0}, "num_samples"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
    ]:
        with pytest.raises(ValueError, match=word):
            complete(m, tok, "x", **kw)


# ------------------------------------------------------------------------------ top-k / top-p


def _reference_keep(row: list[float], top_k: int | None, top_p: float | None) -> set[int]:
    """Indices kept, the slow way: sort, take the top k, then the shortest prefix reaching p."""
    order = sorted(range(len(row)), key=lambda i: -row[i])
    keep = order if top_k is None else [i for i in order if row[i] >= row[order[top_k - 1]]]
    if top_p is None or top_p >= 1.0:
        return set(keep)
    m = max(row[i] for i in keep)
    weights = [math.exp(row[i] - m) for i in keep]
    total = sum(weights)
    chosen, mass = [], 0.0
    for i, w in zip(keep, weights):
        if mass >= top_p:
            break
        chosen.append(i)
        mass += w / total
    return set(chosen)


@settings(max_examples=150, deadline=None)
@given(
    row=st.lists(
        st.floats(-20, 20, allow_nan=False).map(lambda x: round(x, 2)), min_size=1, max_size=40
    ),
    top_k=st.none() | st.integers(1, 50),
    top_p=st.none() | st.floats(0.01, 1.0),
)
def test_filter_logits_keeps_the_top_k_and_the_nucleus(row, top_k, top_p) -> None:
    logits = torch.tensor([row], dtype=torch.float64)
    out = _filter_logits(logits, top_k, top_p)[0]
    kept = {i for i, v in enumerate(out.tolist()) if v != float("-inf")}
    # kept logits are unchanged, and the likeliest token always stays
    assert all(out[i] == logits[0, i] for i in kept)
    assert int(logits[0].argmax()) in kept or row.count(max(row)) > 1
    if top_k is not None:
        assert len(kept) >= 1 and (len(kept) <= top_k or len(set(row)) < len(row))
    if top_p is None or top_p >= 1.0 or len(set(row)) == len(row):
        want = _reference_keep(row, top_k if top_k is None or top_k < len(row) else None, top_p)
        # ties in cumulative sums may differ by rounding at the boundary: compare the masses
        probs = torch.softmax(logits[0], dim=0)
        if top_k is None or top_k >= len(row):
            mass = float(probs[list(kept)].sum())
            assert top_p is None or mass >= top_p - 1e-9 or math.isclose(mass, top_p)
        assert (
            kept == want
            or abs(float(probs[list(kept)].sum()) - float(probs[list(want)].sum())) < 1e-9
        )


# ------------------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def run_dir(tok, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return write_run(tmp_path_factory.mktemp("gen") / "run", model(tok, seed=5), tok)


def test_cli_prints_each_sample_after_the_prompt(run_dir, capsys) -> None:
    m, tok = codekiln.load(str(run_dir), "last")
    want = complete(m, tok, "def f(x):", temperature=0, max_new_tokens=16)
    assert main(["complete", "--run", str(run_dir), "--temperature", "0", "--max-new-tokens", "16",
                 "--samples", "2", "def f(x):"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.count("===== sample ") == 2 and "sample 2/2" in out
    assert out.count("def f(x):" + want[0]) == 2
    assert main(["complete", "--run", str(run_dir), "--temperature", "0", "--max-new-tokens",
                 "16", "--json", "def f(x):"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out) == want


def test_cli_reads_the_prompt_from_a_file_or_stdin(run_dir, tmp_path, capsys, monkeypatch) -> None:
    args = ["complete", "--run", str(run_dir), "--temperature", "0", "--max-new-tokens", "8",
            "--completion-only"]  # fmt: skip
    (tmp_path / "p.py").write_text("class A:\n    def")
    assert main([*args, "--file", str(tmp_path / "p.py")]) == 0
    from_file = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("class A:\n    def"))
    assert main(args) == 0
    assert capsys.readouterr().out == from_file
    assert main([*args, "--stop", "\\n", "--no-stop", "x"]) == 1
    assert "contradict" in capsys.readouterr().err


def test_cli_errors_name_the_argument(tmp_path, capsys) -> None:
    assert main(["complete", "--run", str(tmp_path / "nope"), "x"]) == 1
    assert "--run" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["complete", "--run", str(tmp_path / "empty"), "x"]) == 1
    assert "no checkpoint in" in capsys.readouterr().err


# ------------------------------------------------------------------------------ layering


def test_generate_evaluate_and_hf_never_import_train() -> None:
    package = pathlib.Path(codekiln.__file__).parent
    files = [package / "generate.py", package / "generate_cli.py", package / "hf.py"]
    files += sorted((package / "evaluate").glob("*.py"))
    for path in files:
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            assert not [n for n in names if n.startswith("codekiln.train")], path


def test_reference_cut() -> None:
    assert reference_cut("a\ndef b\nclass", DEFAULT_STOPS) == "a"
