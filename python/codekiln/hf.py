"""Carry models to and from the Hugging Face ``transformers`` ecosystem.

``export_hf(run_dir, out_dir)`` writes a directory that ``AutoModelForCausalLM.from_pretrained``
and ``AutoTokenizer.from_pretrained`` load: ``config.json``, ``model.safetensors``, the tokenizer
files (:meth:`codekiln.Tokenizer.save_huggingface`: same ids for every text), a
``generation_config.json`` with the end-of-text id and the stop strings, ``codekiln.json`` and
``codekiln-tokenizer.json`` (the exact :class:`~codekiln.model.GPTConfig` and tokenizer, for a
lossless import back) and a
``README.md`` model card (training config, data summary, evaluations from ``RUN/evals.jsonl``).

Which architecture (the model's knobs decide; any other mix is a ``ValueError`` naming the
field):

* ``pos_emb="learned"``, ``norm="layernorm"``, ``mlp="gelu"``, ``bias=True`` -- GPT-2:
  ``GPT2LMHeadModel`` (same parameter names; ``Conv1D`` stores weights transposed);
* ``pos_emb="rope"``, ``norm="rmsnorm"``, ``mlp="swiglu"`` -- Llama: ``LlamaForCausalLM``
  (``c_attn`` split into q/k/v, ``c_fc`` into gate/up; RoPE in the same rotate-half layout).

``import_hf(local_dir, run_dir)`` is the reverse for a checkpoint already on disk (GPT-2
family, and Llama family when the shapes fit codekiln's: one KV head per query head, the SwiGLU
width codekiln derives): a run directory to continue training or fine-tune with
``codekiln train --init-from``. A byte-level BPE tokenizer (GPT-2's) becomes a codekiln
tokenizer with the ``"gpt2"`` pattern; its ids are renumbered (codekiln's first 256 ids are the
bytes in order) and the embedding rows follow, so the logits of a text are the same.

Offline only: paths are read with ``local_files_only=True``, nothing is downloaded. Models are
loaded through :mod:`codekiln.checkpoint`; this module never imports ``codekiln.train``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from codekiln.model import GPT, GPTConfig
    from codekiln.tokenizer import Tokenizer

__all__ = ["add_hf_commands", "export_hf", "hf_family", "import_hf"]

CODEKILN_FILE = "codekiln.json"
CODEKILN_TOKENIZER_FILE = "codekiln-tokenizer.json"


def _need_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "Hugging Face export/import needs transformers and safetensors: "
            "pip install 'codekiln[hf]'"
        ) from None
    return transformers


def swiglu_hidden(n_embd: int) -> int:
    """The SwiGLU width codekiln uses: 8/3 of ``n_embd`` rounded up to a multiple of 64."""
    return 64 * math.ceil(8 * n_embd / 3 / 64)


def hf_family(cfg: GPTConfig) -> str:
    """``"gpt2"`` or ``"llama"`` for ``cfg``; ``ValueError`` naming the field that fits neither."""
    if cfg.pos_emb == "learned":
        for field, want in (("norm", "layernorm"), ("mlp", "gelu"), ("bias", True)):
            if getattr(cfg, field) != want:
                raise ValueError(
                    f"{field}={getattr(cfg, field)!r} with pos_emb='learned': a GPT-2 export "
                    f"needs {field}={want!r} (or use pos_emb='rope', norm='rmsnorm', "
                    "mlp='swiglu' for a Llama export)"
                )
        return "gpt2"
    for field, want in (("norm", "rmsnorm"), ("mlp", "swiglu")):
        if getattr(cfg, field) != want:
            raise ValueError(
                f"{field}={getattr(cfg, field)!r} with pos_emb='rope': a Llama export needs "
                f"{field}={want!r} (or use pos_emb='learned', norm='layernorm', mlp='gelu' for "
                "a GPT-2 export)"
            )
    return "llama"


# ------------------------------------------------------------------------------ weights


_GPT2_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _to_gpt2(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Same names as GPT2LMHeadModel; its Conv1D stores (in, out), our Linear (out, in).
    return {k: (v.t().contiguous() if k.endswith(_GPT2_CONV1D) else v) for k, v in sd.items()}


def _from_gpt2(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if k.endswith((".attn.bias", ".attn.masked_bias")):  # old causal-mask buffers
            continue
        out[k] = v.t().contiguous() if k.endswith(_GPT2_CONV1D) else v
    return out


def _to_llama(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    C, hidden = cfg.n_embd, swiglu_hidden(cfg.n_embd)
    out = {
        "model.embed_tokens.weight": sd["transformer.wte.weight"],
        "model.norm.weight": sd["transformer.ln_f.weight"],
        "lm_head.weight": sd["lm_head.weight"],
    }
    for i in range(cfg.n_layer):
        src, dst = f"transformer.h.{i}.", f"model.layers.{i}."
        out[dst + "input_layernorm.weight"] = sd[src + "ln_1.weight"]
        out[dst + "post_attention_layernorm.weight"] = sd[src + "ln_2.weight"]
        names = ("weight", "bias") if cfg.bias else ("weight",)
        for p in names:
            q, k, v = sd[src + f"attn.c_attn.{p}"].split(C, dim=0)
            out[dst + f"self_attn.q_proj.{p}"] = q
            out[dst + f"self_attn.k_proj.{p}"] = k
            out[dst + f"self_attn.v_proj.{p}"] = v
            out[dst + f"self_attn.o_proj.{p}"] = sd[src + f"attn.c_proj.{p}"]
            gate, up = sd[src + f"mlp.c_fc.{p}"].split(hidden, dim=0)
            out[dst + f"mlp.gate_proj.{p}"] = gate
            out[dst + f"mlp.up_proj.{p}"] = up
            out[dst + f"mlp.down_proj.{p}"] = sd[src + f"mlp.c_proj.{p}"]
    return out


def _from_llama(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    import torch

    out = {
        "transformer.wte.weight": sd["model.embed_tokens.weight"],
        "transformer.ln_f.weight": sd["model.norm.weight"],
        "lm_head.weight": sd.get("lm_head.weight", sd["model.embed_tokens.weight"]),
    }
    for i in range(cfg.n_layer):
        src, dst = f"model.layers.{i}.", f"transformer.h.{i}."
        out[dst + "ln_1.weight"] = sd[src + "input_layernorm.weight"]
        out[dst + "ln_2.weight"] = sd[src + "post_attention_layernorm.weight"]
        for p in ("weight", "bias") if cfg.bias else ("weight",):
            out[dst + f"attn.c_attn.{p}"] = torch.cat(
                [sd[src + f"self_attn.{n}_proj.{p}"] for n in "qkv"], dim=0
            )
            out[dst + f"attn.c_proj.{p}"] = sd[src + f"self_attn.o_proj.{p}"]
            out[dst + f"mlp.c_fc.{p}"] = torch.cat(
                [sd[src + f"mlp.gate_proj.{p}"], sd[src + f"mlp.up_proj.{p}"]], dim=0
            )
            out[dst + f"mlp.c_proj.{p}"] = sd[src + f"mlp.down_proj.{p}"]
    return out


def _hf_config(cfg: GPTConfig, family: str, eot: int | None) -> Any:
    tf = _need_transformers()
    ids = {"bos_token_id": eot, "eos_token_id": eot}
    if family == "gpt2":
        return tf.GPT2Config(
            vocab_size=cfg.vocab_size,
            n_positions=cfg.block_size,
            n_embd=cfg.n_embd,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_inner=4 * cfg.n_embd,
            activation_function="gelu_new",  # the tanh approximation, as codekiln's MLP
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            layer_norm_epsilon=cfg.norm_eps,
            tie_word_embeddings=cfg.tie_embeddings,
            architectures=["GPT2LMHeadModel"],
            **ids,
        )
    return tf.LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.n_embd,
        intermediate_size=swiglu_hidden(cfg.n_embd),
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_head,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.block_size,
        rms_norm_eps=cfg.norm_eps,
        rope_theta=cfg.rope_base,
        attention_bias=cfg.bias,
        mlp_bias=cfg.bias,
        attention_dropout=cfg.dropout,
        hidden_act="silu",
        tie_word_embeddings=cfg.tie_embeddings,
        architectures=["LlamaForCausalLM"],
        **ids,
    )


def to_transformers(model: GPT, eot: int | None = None) -> Any:
    """The ``transformers`` model (``GPT2LMHeadModel`` or ``LlamaForCausalLM``, eval mode, on
    the CPU) holding ``model``'s weights."""
    import torch

    tf = _need_transformers()
    cfg = model.config
    family = hf_family(cfg)
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    hf_cfg = _hf_config(cfg, family, eot)
    cls = tf.GPT2LMHeadModel if family == "gpt2" else tf.LlamaForCausalLM
    hf_model = cls(hf_cfg)
    mapped = _to_gpt2(sd) if family == "gpt2" else _to_llama(sd, cfg)
    if cfg.tie_embeddings:
        mapped.pop("lm_head.weight", None)
    missing, unexpected = hf_model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not (cfg.tie_embeddings and k == "lm_head.weight")]
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping mismatch: missing {missing}, unexpected {unexpected}")
    if cfg.tie_embeddings:
        hf_model.tie_weights()
    return hf_model.eval()


# ------------------------------------------------------------------------------ export


def _model_card(run_dir: str, family: str, cfg: GPTConfig, state: dict[str, Any]) -> str:
    from codekiln.checkpoint import load_run_config

    try:
        run = load_run_config(run_dir)
    except ValueError:
        run = {}
    train = run.get("train", {}) or {}
    lines = [
        "---",
        "library_name: transformers",
        "tags: [code, codekiln]",
        "pipeline_tag: text-generation",
        "---",
        "",
        f"# {os.path.basename(os.path.abspath(run_dir))}",
        "",
        f"A {family.upper()}-architecture code model trained with "
        "[codekiln](https://github.com/) and exported with `codekiln export hf`.",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'tok = AutoTokenizer.from_pretrained("PATH")',
        'model = AutoModelForCausalLM.from_pretrained("PATH")',
        'ids = tok("def fibonacci(n):", return_tensors="pt").input_ids',
        "out = model.generate(ids, max_new_tokens=64, do_sample=False, tokenizer=tok)",
        "```",
        "",
        "## Model",
        "",
        "| field | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in dataclasses.asdict(cfg).items()]
    lines += ["", f"Checkpoint step {state.get('step')}, validation loss {state.get('val_loss')}."]
    if train:
        lines += ["", "## Training config", "", "```json", json.dumps(train, indent=2), "```"]
    manifest_path = os.path.join(str(train.get("data_dir") or ""), "manifest.json")
    if train.get("data_dir") and os.path.isfile(manifest_path):
        try:
            with open(manifest_path, encoding="utf-8") as f:
                manifest = json.load(f)
            lines += ["", "## Data", "", "| split | documents | tokens |", "|---|---|---|"]
            for name, split in manifest.get("splits", {}).items():
                lines.append(f"| {name} | {split.get('documents')} | {split.get('tokens')} |")
        except (OSError, ValueError):
            pass
    evals_path = os.path.join(run_dir, "evals.jsonl")
    if os.path.isfile(evals_path):
        lines += ["", "## Evaluation", ""]
        with open(evals_path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    figures = {
                        k: (round(v, 4) if isinstance(v, float) else v)
                        for k, v in rec.items()
                        if k.startswith("pass@") or k in ("loss", "perplexity", "bits_per_byte")
                    }
                    where = rec.get("split") or rec.get("input") or rec.get("limit")
                    lines.append(f"- {rec.get('eval')} ({where}): {figures}")
    return "\n".join(lines) + "\n"


def export_hf(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    checkpoint: str = "best",
    stops: Sequence[str] | None = None,
) -> str:
    """Write the model of ``run_dir`` as a ``transformers`` directory (see the module
    docstring); returns ``out_dir``."""
    from codekiln.checkpoint import load_checkpoint, load_model, resolve_checkpoint
    from codekiln.generate import DEFAULT_STOPS

    tf = _need_transformers()
    run_dir, out_dir = os.fspath(run_dir), os.fspath(out_dir)
    model, tok = load_model(run_dir, checkpoint, device="cpu")
    family = hf_family(model.config)
    hf_model = to_transformers(model, tok.eot_id)
    os.makedirs(out_dir, exist_ok=True)
    hf_model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_huggingface(out_dir)
    eot = tok.eot_id
    gen = tf.GenerationConfig(
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        stop_strings=list(DEFAULT_STOPS if stops is None else stops) or None,
        do_sample=True,
        temperature=0.8,
        top_p=0.95,
        max_new_tokens=256,
    )
    gen.save_pretrained(out_dir)
    tok.save(os.path.join(out_dir, CODEKILN_TOKENIZER_FILE))
    meta = {"format": "codekiln-hf-export", "model_config": dataclasses.asdict(model.config)}
    with open(os.path.join(out_dir, CODEKILN_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f)
    state = load_checkpoint(resolve_checkpoint(run_dir, checkpoint))
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(_model_card(run_dir, family, model.config, state))
    return out_dir


# ------------------------------------------------------------------------------ import


def _config_from_hf(hf_cfg: Any) -> dict[str, Any]:
    kind = getattr(hf_cfg, "model_type", None)
    if kind == "gpt2":
        act = hf_cfg.activation_function
        if act not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(
                f"activation_function={act!r}: codekiln's GPT-2 MLP is the tanh-approximated "
                "GELU (gelu_new)"
            )
        if hf_cfg.n_inner not in (None, 4 * hf_cfg.n_embd):
            raise ValueError(f"n_inner={hf_cfg.n_inner}: codekiln's GPT-2 MLP is 4 x n_embd")
        for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
            if getattr(hf_cfg, flag, False):
                raise ValueError(f"{flag}=True is not supported by codekiln's attention")
        return dict(
            vocab_size=hf_cfg.vocab_size,
            block_size=hf_cfg.n_positions,
            n_layer=hf_cfg.n_layer,
            n_head=hf_cfg.n_head,
            n_embd=hf_cfg.n_embd,
            bias=True,
            pos_emb="learned",
            norm="layernorm",
            mlp="gelu",
            tie_embeddings=bool(getattr(hf_cfg, "tie_word_embeddings", True)),
            norm_eps=hf_cfg.layer_norm_epsilon,
        )
    if kind == "llama":
        C, nh = hf_cfg.hidden_size, hf_cfg.num_attention_heads
        checks = [
            ("num_key_value_heads", getattr(hf_cfg, "num_key_value_heads", nh) or nh, nh),
            ("head_dim", getattr(hf_cfg, "head_dim", None) or C // nh, C // nh),
            ("intermediate_size", hf_cfg.intermediate_size, swiglu_hidden(C)),
            ("hidden_act", hf_cfg.hidden_act, "silu"),
            ("mlp_bias", bool(getattr(hf_cfg, "mlp_bias", False)), bool(hf_cfg.attention_bias)),
        ]
        for name, got, want in checks:
            if got != want:
                raise ValueError(
                    f"{name}={got!r}: codekiln's Llama layout needs {want!r} (the shapes must fit "
                    "codekiln's model)"
                )
        rope = getattr(hf_cfg, "rope_parameters", None) or {}
        if not rope:  # transformers 4: rope_theta and rope_scaling attributes
            rope = dict(getattr(hf_cfg, "rope_scaling", None) or {})
            rope.setdefault("rope_theta", getattr(hf_cfg, "rope_theta", 10000.0))
        if (rope.get("rope_type") or rope.get("type") or "default") != "default":
            raise ValueError(f"rope_parameters={rope!r}: only plain RoPE is supported")
        base = rope.get("rope_theta", 10000.0)
        return dict(
            vocab_size=hf_cfg.vocab_size,
            block_size=hf_cfg.max_position_embeddings,
            n_layer=hf_cfg.num_hidden_layers,
            n_head=nh,
            n_embd=C,
            bias=bool(hf_cfg.attention_bias),
            pos_emb="rope",
            norm="rmsnorm",
            mlp="swiglu",
            tie_embeddings=bool(getattr(hf_cfg, "tie_word_embeddings", False)),
            norm_eps=hf_cfg.rms_norm_eps,
            rope_base=float(base),
        )
    raise ValueError(
        f"model_type={kind!r}: codekiln imports the GPT-2 family (gpt2, distilgpt2, ...) and "
        "Llama-family checkpoints whose shapes fit"
    )


def _tokenizer_from_hf(local_dir: str, model_vocab: int) -> tuple[Tokenizer, list[int]]:
    """A codekiln tokenizer equal to the byte-level BPE in ``local_dir`` and the permutation
    ``perm`` of the model's rows: codekiln id ``i`` is Hugging Face id ``perm[i]``."""
    from codekiln import _core
    from codekiln.tokenizer import Tokenizer
    from codekiln.tokenizer.format import bytes_to_unicode

    ours_path = os.path.join(local_dir, CODEKILN_TOKENIZER_FILE)
    if os.path.isfile(ours_path):  # a codekiln export: the ids are already ours
        return Tokenizer.load(ours_path), list(range(model_vocab))
    tf = _need_transformers()
    try:
        fast = tf.AutoTokenizer.from_pretrained(local_dir, local_files_only=True)
        spec = json.loads(fast.backend_tokenizer.to_str())
    except (OSError, ValueError, AttributeError) as e:
        raise ValueError(f"{local_dir}: no readable fast tokenizer ({e})") from None
    bpe = spec.get("model") or {}
    if bpe.get("type") != "BPE":
        raise ValueError(
            f"{local_dir}: tokenizer model {bpe.get('type')!r}; only byte-level BPE converts"
        )
    pre = spec.get("pre_tokenizer") or {}
    pattern, newline = _pattern_of(pre, _core)
    vocab: dict[str, int] = bpe["vocab"]
    ours: dict[str, int] = {}
    perm: list[int] = []
    for b in range(256):
        s = bytes_to_unicode()[b]
        if s not in vocab:
            raise ValueError(f"{local_dir}: byte {b} ({s!r}) is not in the vocabulary")
        ours[s] = b
        perm.append(vocab[s])
    merges = []
    for m in bpe.get("merges", []):
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        if left not in ours or right not in ours or left + right not in vocab:
            raise ValueError(f"{local_dir}: merge {left!r} + {right!r} refers to unknown tokens")
        merges.append((ours[left], ours[right]))
        ours[left + right] = 256 + len(merges) - 1
        perm.append(vocab[left + right])
    specials = sorted(
        (t["id"], t["content"]) for t in spec.get("added_tokens", []) if t.get("special")
    )
    # A Split regex that isolates newlines is the strict <N> rule (the merged rule exports the
    # newline=None regex and imports as newline=None: the same ids).
    tok = Tokenizer.from_merges(
        merges,
        pattern=pattern,
        newline=newline,
        newline_rule="strict",
        special_tokens=[s for _, s in specials],
    )
    perm += [i for i, _ in specials]
    if len(set(perm)) != len(perm) or max(perm) >= model_vocab:
        raise ValueError(f"{local_dir}: the tokenizer's ids do not fit the model's vocabulary")
    taken = set(perm)
    perm += [i for i in range(model_vocab) if i not in taken]  # unused rows keep their order
    return tok, perm


def _pattern_of(pre: dict[str, Any], core: Any) -> tuple[str, str | None]:
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt2", None
    if pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers", [])
        if (
            len(parts) == 2
            and parts[0].get("type") == "Split"
            and parts[1].get("type") == "ByteLevel"
        ):
            regex = parts[0].get("pattern", {}).get("Regex")
            for name in core.PATTERNS:
                for newline, flag in ((None, False), ("<N>", True)):
                    if core.pattern_regex(name, flag) == regex:
                        return name, newline
    raise ValueError(
        f"pre-tokenizer {pre.get('type')!r}: only GPT-2's byte-level pre-tokenizer (or a "
        "codekiln export) converts"
    )


def import_hf(local_dir: str | os.PathLike[str], run_dir: str | os.PathLike[str]) -> str:
    """Turn a local ``transformers`` checkpoint into a codekiln run directory (see the module
    docstring); returns ``run_dir``. ``run_dir`` must not already hold checkpoints."""
    import torch

    from codekiln import checkpoint as ckpt
    from codekiln._io import atomic_write_json
    from codekiln.model import GPT, GPTConfig

    tf = _need_transformers()
    local_dir, run_dir = os.fspath(local_dir), os.fspath(run_dir)
    if not os.path.isfile(os.path.join(local_dir, "config.json")):
        raise FileNotFoundError(2, "not a transformers model directory (no config.json)", local_dir)
    if ckpt.list_checkpoints(run_dir):
        raise ValueError(f"{run_dir}: already holds a run; choose another --out")
    hf_cfg = tf.AutoConfig.from_pretrained(local_dir, local_files_only=True)
    fields = _config_from_hf(hf_cfg)
    meta_path = os.path.join(local_dir, CODEKILN_FILE)
    if os.path.isfile(meta_path):  # keep the fields transformers has no place for
        with open(meta_path, encoding="utf-8") as f:
            fields = {**json.load(f)["model_config"], **fields}
    cfg = GPTConfig(**fields)
    tok, perm = _tokenizer_from_hf(local_dir, cfg.vocab_size)
    hf_model = tf.AutoModelForCausalLM.from_pretrained(
        local_dir, local_files_only=True, dtype=torch.float32
    )
    sd = {k: v.detach().float() for k, v in hf_model.state_dict().items()}
    mapped = _from_gpt2(sd) if cfg.pos_emb == "learned" else _from_llama(sd, cfg)
    if "lm_head.weight" not in mapped:
        mapped["lm_head.weight"] = mapped["transformer.wte.weight"]
    index = torch.tensor(perm)
    for name in ("transformer.wte.weight", "lm_head.weight"):
        mapped[name] = mapped[name][index].contiguous()
    model = GPT(cfg)
    model.load_state_dict(mapped, strict=True)
    os.makedirs(os.path.join(run_dir, ckpt.CHECKPOINT_DIR), exist_ok=True)
    tok.save(os.path.join(run_dir, ckpt.TOKENIZER_FILE))
    model_config = dataclasses.asdict(cfg)
    atomic_write_json(
        os.path.join(run_dir, ckpt.CONFIG_FILE),
        {
            "model": model_config,
            "tokenizer_fingerprint": tok.fingerprint,
            "imported_from": {
                "path": os.path.abspath(local_dir),
                "model_type": hf_cfg.model_type,
                "architectures": getattr(hf_cfg, "architectures", None),
            },
        },
    )
    ckpt.save_checkpoint(
        os.path.join(run_dir, ckpt.CHECKPOINT_DIR, ckpt.step_name(0)),
        {
            "step": 0,
            "model": model.state_dict(),
            "model_config": model_config,
            "tokenizer_fingerprint": tok.fingerprint,
        },
    )
    return run_dir


# ------------------------------------------------------------------------------ command line


def add_hf_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    e = sub.add_parser("export", help="export a trained model (hf: a transformers directory)")
    esub = e.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    p = esub.add_parser(
        "hf",
        help="a directory transformers loads (AutoModelForCausalLM / AutoTokenizer)",
        description="Export the model of a run directory for Hugging Face transformers: "
        "GPT2LMHeadModel for GPT-2 layouts, LlamaForCausalLM for rope+rmsnorm+swiglu.",
    )
    p.add_argument("--run", required=True, help="run directory written by `codekiln train`")
    p.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_export)

    i = sub.add_parser("import", help="import a model (hf: a local transformers directory)")
    isub = i.add_subparsers(dest="import_format", required=True, metavar="FORMAT")
    q = isub.add_parser(
        "hf",
        help="a local GPT-2 / Llama-family transformers checkpoint -> a codekiln run directory",
        description="Turn a transformers checkpoint on disk into a run directory, to continue "
        "training or fine-tune with `codekiln train --init-from`.",
    )
    q.add_argument("local_dir", help="directory with config.json, weights and tokenizer files")
    q.add_argument("--out", required=True, help="run directory to create")
    q.set_defaults(func=_import)


def _export(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.run):
        raise FileNotFoundError(2, "no such run directory (--run)", args.run)
    out = export_hf(args.run, args.out, checkpoint=args.checkpoint)
    print(f"exported to {out} (AutoModelForCausalLM.from_pretrained({out!r}))")
    return 0


def _import(args: argparse.Namespace) -> int:
    out = import_hf(args.local_dir, args.out)
    print(f"imported into {out} (fine-tune with: codekiln train --init-from {out} ...)")
    return 0
