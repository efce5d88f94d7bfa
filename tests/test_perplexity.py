"""Loss, perplexity and bits per byte: the batched path against a per-token loop (the slow
oracle), a uniform model against the closed form, packed shards and raw files, the CLI."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from codekiln.cli import main  # noqa: E402
from codekiln.evaluate.perplexity import (  # noqa: E402
    bits_per_byte_on_files,
    encode_documents,
    evaluate_files,
    evaluate_packed,
    evaluate_tokens,
)
from codekiln.quickstart import stdlib_files  # noqa: E402
from eval_helpers import model, tokenizer, write_run  # noqa: E402
from train_helpers import make_packed  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


@pytest.fixture(scope="module")
def files() -> list[pathlib.Path]:
    return stdlib_files()[20:23]


@torch.no_grad()
def _reference(m, tok, tokens: np.ndarray, block: int) -> tuple[float, float, int, int]:
    """(summed nats, summed nats over text tokens, predicted tokens, text bytes), one target at
    a time, each window recomputed on its own."""
    specials = {i for name, i in tok.special_tokens.items() if name != "<N>"}
    nats = text_nats = 0.0
    count = nbytes = 0
    for start in range(0, len(tokens) - 1, block):
        w = tokens[start : start + block + 1]
        logits, _ = m(torch.tensor(w[:-1])[None])
        logp = torch.log_softmax(logits[0].double(), dim=-1)
        for t, target in enumerate(w[1:].tolist()):
            nll = -float(logp[t, target])
            nats += nll
            count += 1
            if target not in specials:
                text_nats += nll
                nbytes += len(tok.decode_bytes([target]))
    return nats, text_nats, count, nbytes


@pytest.mark.parametrize(("block", "batch"), [(None, 1), (None, 3), (16, 4)])
def test_batched_figures_equal_the_per_token_loop(tok, files, block, batch) -> None:
    m = model(tok, seed=7)
    stream, _docs = encode_documents(tok, files, max_tokens=700)
    got = evaluate_tokens(m, tok, stream, block_size=block, batch_size=batch)
    nats, text_nats, count, nbytes = _reference(m, tok, stream, block or m.config.block_size)
    assert got.tokens == count == len(stream) - 1
    assert got.bytes == nbytes
    assert got.loss == pytest.approx(nats / count, rel=1e-5)
    assert got.perplexity == pytest.approx(math.exp(nats / count), rel=1e-5)
    assert got.bits_per_byte == pytest.approx(text_nats / math.log(2) / nbytes, rel=1e-5)


def test_a_uniform_model_scores_log_vocab(tok, files) -> None:
    m = model(tok)
    with torch.no_grad():
        m.lm_head.weight.zero_()  # every logit 0: uniform over the model's vocabulary
    result = evaluate_files(m, tok, files)
    vocab = m.config.vocab_size
    assert result.loss == pytest.approx(math.log(vocab), rel=1e-6)
    assert result.perplexity == pytest.approx(vocab, rel=1e-5)
    text = [p.read_bytes() for p in files]
    first = len(tok.decode_bytes(tok.encode(text[0].decode())[:1]))  # never predicted
    assert result.bytes == sum(len(t) for t in text) - first  # every other byte, once
    assert result.documents == len(files)
    want = result.text_tokens * math.log2(vocab) / result.bytes
    assert result.bits_per_byte == pytest.approx(want, rel=1e-6)


def test_inputs_follow_the_corpus_rule(tok, files, tmp_path) -> None:
    m = model(tok)
    texts = [p.read_text() for p in files]
    by_paths = evaluate_files(m, tok, files)
    by_texts = evaluate_files(m, tok, texts)
    (tmp_path / "d").mkdir()
    rows = "".join(json.dumps({"content": t}) + "\n" for t in texts)
    (tmp_path / "d" / "docs.jsonl").write_text(rows)
    by_jsonl = evaluate_files(m, tok, str(tmp_path / "d"))
    assert by_paths == by_texts == by_jsonl
    with pytest.raises(FileNotFoundError, match="nope"):
        evaluate_files(m, tok, str(tmp_path / "nope.py"))
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_tokens(m, tok, [1])


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return make_packed(tmp_path_factory.mktemp("ppl") / "data", files=16, vocab_size=320)


def test_packed_split_equals_its_token_stream(packed) -> None:
    from codekiln.data import PackedDataset
    from codekiln.tokenizer import Tokenizer

    ptok = Tokenizer.load(packed / "tokenizer.json")
    m = model(ptok, seed=8)
    got = evaluate_packed(m, ptok, packed, "valid", max_tokens=900)
    ds = PackedDataset(packed, "valid", block_size=1, as_numpy=True)
    assert got == evaluate_tokens(m, ptok, ds.tokens(0, 900))
    full = evaluate_packed(m, ptok, packed, "valid")
    assert full.documents == ds.num_documents and full.tokens == ds.num_tokens - 1
    with pytest.raises(ValueError, match="packed with tokenizer"):
        evaluate_packed(model(tokenizer()), tokenizer(), packed, "valid")
    with pytest.raises(FileNotFoundError, match="--data"):
        evaluate_packed(m, ptok, packed / "missing", "valid")


def test_cli_perplexity_on_packed_and_raw(packed, files, tmp_path, capsys) -> None:
    from codekiln.tokenizer import Tokenizer

    ptok = Tokenizer.load(packed / "tokenizer.json")
    run = write_run(tmp_path / "run", model(ptok, seed=9), ptok)
    assert main(["eval", "perplexity", "--run", str(run), "--data", str(packed),
                 "--max-tokens", "500", "--json", "--no-progress"]) == 0  # fmt: skip
    on_packed = json.loads(capsys.readouterr().out)
    assert on_packed["tokens"] == 499 and on_packed["bits_per_byte"] > 0
    assert main(["eval", "perplexity", "--run", str(run), "--input", *map(str, files),
                 "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "bits per byte" in out and "perplexity" in out
    evals = [json.loads(x) for x in (run / "evals.jsonl").read_text().splitlines()]
    assert [e["eval"] for e in evals] == ["perplexity", "perplexity"]
    assert evals[0]["split"] == "valid" and evals[1]["input"] == [str(f) for f in files]
    api = bits_per_byte_on_files(run, files, checkpoint="last", device="cpu")
    assert api.bits_per_byte == pytest.approx(evals[1]["bits_per_byte"])
    assert main(["eval", "perplexity", "--run", str(run), "--data", str(packed),
                 "--split", "nope"]) == 1  # fmt: skip
    assert "nope" in capsys.readouterr().err
    assert main(["eval", "perplexity", "--run", str(run), "--input", str(tmp_path / "x.py")]) == 1
    assert "x.py" in capsys.readouterr().err


def test_cli_perplexity_defaults_to_the_runs_own_data(
    packed, tmp_path, capsys, monkeypatch
) -> None:
    import shutil

    from codekiln.tokenizer import Tokenizer

    ptok = Tokenizer.load(packed / "tokenizer.json")
    run = write_run(tmp_path / "run", model(ptok, seed=9), ptok)
    args = ["eval", "perplexity", "--run", str(run), "--max-tokens", "300", "--json",
            "--no-progress", "--no-record"]  # fmt: skip
    # A run whose config names no data: the error says what to give.
    assert main(args) == 1
    assert "--data" in capsys.readouterr().err
    # data_dir as training wrote it, relative to the run's parent (training ran there).
    shutil.copytree(packed, tmp_path / "shards")
    config = json.loads((run / "config.json").read_text())
    config["train"] = {"data_dir": "shards"}
    (run / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path / "run")  # not where training ran
    assert main(args) == 0
    default = json.loads(capsys.readouterr().out)
    assert main([*args, "--data", str(packed)]) == 0
    assert json.loads(capsys.readouterr().out) == default
    shutil.rmtree(tmp_path / "shards")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "'shards'" in err and "--data" in err
