"""Hugging Face export and import, offline with tiny models: the same logits and token ids in
codekiln and transformers, transformers' greedy ``generate`` equal to codekiln's ``complete``,
a random GPT-2 built with transformers imported with equal logits, errors naming the field."""

from __future__ import annotations

import json
import pathlib

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import codekiln  # noqa: E402
from codekiln.cli import main  # noqa: E402
from codekiln.generate import complete  # noqa: E402
from codekiln.hf import export_hf, hf_family, import_hf  # noqa: E402
from codekiln.model import GPTConfig  # noqa: E402
from codekiln.tokenizer.format import bytes_to_unicode  # noqa: E402
from eval_helpers import model, tokenizer, write_run  # noqa: E402

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "class Stack:\n\tdef push(self, x):  # é, 中文\n        self.items.append(x)\r\n",
    "  x=1;;  \n\n\n<|endoftext|> y",
]
LLAMA = dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", tie_embeddings=False, bias=False)


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


def _logits(hf_model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(torch.tensor([ids])).logits[0]


@pytest.mark.parametrize(
    ("kw", "cls"),
    [
        ({}, "GPT2LMHeadModel"),
        (LLAMA, "LlamaForCausalLM"),
        ({**LLAMA, "bias": True, "tie_embeddings": True}, "LlamaForCausalLM"),
    ],
)
def test_export_loads_in_transformers_with_the_same_logits_ids_and_greedy_text(
    tok, tmp_path: pathlib.Path, kw, cls
) -> None:
    # vocab exactly the tokenizer's: transformers' greedy may pick padding ids, codekiln's not
    m = model(tok, seed=11, vocab_size=tok.vocab_size, **kw)
    run = write_run(tmp_path / "run", m, tok)
    (run / "evals.jsonl").write_text(
        json.dumps({"eval": "perplexity", "bits_per_byte": 1.5}) + "\n"
    )
    out = export_hf(run, tmp_path / "hf")
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    hf_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert type(hf_model).__name__ == cls
    for text in TEXTS:
        ids = tok.encode(text)
        assert hf_tok(text, add_special_tokens=False).input_ids == ids
        with torch.no_grad():
            want = m(torch.tensor([ids]))[0][0]
        torch.testing.assert_close(_logits(hf_model, ids), want, atol=2e-5, rtol=1e-4)
    prompt = "def fibonacci(n):\n"
    ids = tok.encode(prompt)
    gen = hf_model.generate(
        torch.tensor([ids]), max_new_tokens=24, do_sample=False, eos_token_id=tok.eot_id,
        pad_token_id=tok.eot_id, stop_strings=None,
    )  # fmt: skip
    hf_text = tok.decode([t for t in gen[0, len(ids) :].tolist() if t != tok.eot_id])
    assert complete(m, tok, prompt, temperature=0, max_new_tokens=24, stop=None) == [hf_text]
    card = (out and pathlib.Path(out) / "README.md").read_text()
    assert "bits_per_byte" in card and "n_layer" in card
    gen_cfg = json.loads((pathlib.Path(out) / "generation_config.json").read_text())
    assert gen_cfg["eos_token_id"] == tok.eot_id and "\ndef" in gen_cfg["stop_strings"]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"norm": "rmsnorm"}, "norm"),
        ({"mlp": "swiglu"}, "mlp"),
        ({"bias": False}, "bias"),
        ({"pos_emb": "rope"}, "norm"),
        ({"pos_emb": "rope", "norm": "rmsnorm"}, "mlp"),
    ],
)
def test_other_mixes_are_an_error_naming_the_field(kw, field) -> None:
    with pytest.raises(ValueError, match=rf"^{field}="):
        hf_family(GPTConfig(vocab_size=64, block_size=8, n_layer=1, n_head=2, n_embd=16, **kw))


def test_export_then_import_gives_back_the_same_model(tok, tmp_path: pathlib.Path) -> None:
    m = model(tok, seed=12, **LLAMA)
    run = write_run(tmp_path / "run", m, tok)
    export_hf(run, tmp_path / "hf")
    back = import_hf(tmp_path / "hf", tmp_path / "back")
    m2, tok2 = codekiln.load(back, "best")
    assert tok2 == tok and m2.config == m.config
    for k, v in m.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v, atol=0, rtol=0)


def _gpt2_style_tokenizer(tok, directory: pathlib.Path) -> None:
    """vocab.json / merges.txt in GPT-2's own layout: bytes numbered in bytes_to_unicode order
    (not byte order), then the merges, then <|endoftext|>."""
    b2u = bytes_to_unicode()
    order = list(b2u)  # GPT-2's byte order: printable ranges first
    vocab = {b2u[b]: i for i, b in enumerate(order)}
    table = [bytes([b]) for b in range(256)]
    merges = []
    for left, right in tok.merges:
        a = "".join(b2u[x] for x in table[left])
        b = "".join(b2u[x] for x in table[right])
        merges.append(f"{a} {b}")
        table.append(table[left] + table[right])
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    fast = transformers.GPT2TokenizerFast.from_pretrained(directory, local_files_only=True)
    fast.save_pretrained(directory)  # adds tokenizer.json, as distilgpt2's folder has


def test_import_a_random_gpt2_built_with_transformers(tmp_path: pathlib.Path) -> None:
    from codekiln import Tokenizer

    base = Tokenizer.train(
        [p for p in __import__("codekiln.quickstart").quickstart.stdlib_files()[:6]],
        vocab_size=330,
        pattern="gpt2",
        newline=None,
        progress=False,
        num_threads=1,
    )
    hf_dir = tmp_path / "gpt2"
    hf_dir.mkdir()
    _gpt2_style_tokenizer(base, hf_dir)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=base.vocab_size + 6, n_positions=64, n_embd=32, n_layer=2, n_head=4
    )  # a few unused rows, as padded vocabularies have
    hf_model = transformers.GPT2LMHeadModel(cfg).eval()
    hf_model.save_pretrained(hf_dir)
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)

    run = import_hf(hf_dir, tmp_path / "run")
    m, tok = codekiln.load(run, "best")
    assert tok.pattern == "gpt2" and m.config.vocab_size == cfg.vocab_size
    for text in TEXTS:
        hf_ids = hf_tok(text, add_special_tokens=False).input_ids
        # GPT-2's tokenizer reads a literal "<|endoftext|>" as the special token
        ids = tok.encode(text, allowed_special={"<|endoftext|>"})
        assert [hf_tok.convert_ids_to_tokens(i) for i in hf_ids] == [
            tok.id_to_token(i) for i in ids
        ]
        with torch.no_grad():
            ours = m(torch.tensor([ids]))[0][0]
        theirs = _logits(hf_model, hf_ids)
        # the same text gives the same scores for the same token strings
        perm = [hf_tok.convert_tokens_to_ids(tok.id_to_token(i)) for i in range(tok.vocab_size)]
        torch.testing.assert_close(ours[:, : tok.vocab_size], theirs[:, perm], atol=2e-5, rtol=1e-4)

    # ... and the imported run fine-tunes with `codekiln train --init-from` (fresh optimizer)
    from codekiln.data import PackConfig, pack
    from codekiln.train import TrainConfig, train

    files = __import__("codekiln.quickstart").quickstart.stdlib_files()[6:30]
    records = [{"content": p.read_text(encoding="utf-8"), "path": p.name} for p in files]
    pack(records, tok, tmp_path / "data", PackConfig(valid_fraction=0.3), progress=False)
    res = train(
        TrainConfig(
            data_dir=str(tmp_path / "data"),
            out_dir=str(tmp_path / "ft"),
            init_from=str(run),
            block_size=32,
            micro_batch_size=4,
            max_steps=3,
            eval_every=3,
            eval_batches=2,
            progress=False,
        )
    )
    assert res.step == 3 and res.final_val_loss < res.initial_val_loss
    ft, _ = codekiln.load(tmp_path / "ft", "last")
    assert ft.config == m.config


def test_import_llama_with_shapes_that_fit_and_errors_otherwise(
    tok, tmp_path: pathlib.Path
) -> None:
    from codekiln.hf import swiglu_hidden

    common = dict(vocab_size=tok.vocab_size, hidden_size=48, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=64)  # fmt: skip
    cfg = transformers.LlamaConfig(intermediate_size=swiglu_hidden(48), **common)
    torch.manual_seed(1)
    hf_model = transformers.LlamaForCausalLM(cfg).eval()
    hf_dir = tmp_path / "llama"
    hf_model.save_pretrained(hf_dir)
    tok.save_huggingface(hf_dir)
    run = import_hf(hf_dir, tmp_path / "run")
    m, tok2 = codekiln.load(run, "best")
    assert tok2.encode(TEXTS[0]) == tok.encode(TEXTS[0])
    ids = tok.encode(TEXTS[1])
    with torch.no_grad():
        torch.testing.assert_close(
            m(torch.tensor([ids]))[0][0], _logits(hf_model, ids), atol=2e-5, rtol=1e-4
        )

    bad = transformers.LlamaConfig(intermediate_size=100, **common)
    transformers.LlamaForCausalLM(bad).save_pretrained(tmp_path / "bad")
    with pytest.raises(ValueError, match="intermediate_size=100"):
        import_hf(tmp_path / "bad", tmp_path / "run2")
    gqa = transformers.LlamaConfig(
        intermediate_size=swiglu_hidden(48), num_key_value_heads=2, **common
    )
    transformers.LlamaForCausalLM(gqa).save_pretrained(tmp_path / "gqa")
    with pytest.raises(ValueError, match="num_key_value_heads=2"):
        import_hf(tmp_path / "gqa", tmp_path / "run3")


def test_cli_export_and_import(tok, tmp_path: pathlib.Path, capsys) -> None:
    run = write_run(tmp_path / "run", model(tok, seed=13), tok)
    assert main(["export", "hf", "--run", str(run), "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "model.safetensors").exists()
    assert main(["import", "hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]) == 0
    assert "--init-from" in capsys.readouterr().out
    assert main(["import", "hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert main(["import", "hf", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 1
    assert "config.json" in capsys.readouterr().err
    bad = write_run(tmp_path / "bad", model(tok, norm="rmsnorm"), tok)
    assert main(["export", "hf", "--run", str(bad), "--out", str(tmp_path / "hf2")]) == 1
    assert "norm='rmsnorm'" in capsys.readouterr().err
