"""Exact interop with HF ``tokenizers``/``transformers`` and ``tiktoken``.

Exact means: for every text, ``to_huggingface(tok).encode(text, add_special_tokens=False).ids``
and ``to_tiktoken(tok).encode_ordinary(text)`` equal ``tok.encode(text)``. A tokenizer that
cannot be expressed exactly raises :class:`ExportError` instead of exporting something that
tokenizes differently:

* two ids with the same bytes (possible with hand-written merge lists, and in principle from
  training): both formats key tokens by their bytes/string;
* a special token whose name is also the byte-level string of an ordinary token (HF only);
* for tiktoken, a merge list that is not *proper*: tiktoken merges any adjacent pair whose
  concatenation is a token (lowest rank first), while codekiln applies the merge list. The two
  agree when every merge ``t = (a, b)`` is how BPE itself splits ``bytes(t)`` (encoding
  ``bytes(t)`` as one piece gives ``[t]``), which holds for every merge list codekiln trains
  (a merge is learned on an adjacent ``a, b`` inside a word, and merges never cross a token's
  span). Checked on export; the agreement is also tested on samples in
  ``tests/test_export.py``.

Everything here goes through the public :class:`~codekiln.Tokenizer` API (``merges``,
``special_tokens``, ``pattern_regex``, ``vocab_size``, ``fingerprint``).

In ``newline="<N>"`` mode the newline token is the ordinary byte token 10 (``"Ċ"`` in HF
form). The HF export does not list ``<N>`` as a special token (HF has no ``allowed_special``:
literal ``"<N>"`` text is always ordinary there, as in ``tok.encode(text)``). The tiktoken export
lists it as the special token ``"<N>"`` with id 10 (id 10 still decodes to ``"\n"``), so that
``encode(text, allowed_special=S)`` equals ``tok.encode(text, allowed_special=S)`` for every
``S``, ``"all"`` and sets holding ``"<N>"`` included. The price is tiktoken's usual safety
check: its default ``encode(text)`` raises on literal ``"<N>"`` in the text (as it does for
``"<|endoftext|>"``); source code, where ``Vec<N>`` is ordinary text, should go through
``encode_ordinary`` or ``disallowed_special=()``, which equal ``tok.encode(text)``.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from typing import TYPE_CHECKING, Any

from codekiln._io import atomic_write
from codekiln.tokenizer.core import Tokenizer
from codekiln.tokenizer.format import ENDOFTEXT, NEWLINE_TOKEN, bytes_to_token_str

if TYPE_CHECKING:
    import tiktoken
    import tokenizers

__all__ = [
    "ExportError",
    "load_tiktoken",
    "save_huggingface",
    "save_tiktoken",
    "to_huggingface",
    "to_tiktoken",
]

TIKTOKEN_RANKS_FILE = "tokenizer.tiktoken"
TIKTOKEN_CONFIG_FILE = "tiktoken_config.json"


GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's split, which HF's ``ByteLevel(use_regex=True)`` applies (``pattern="gpt2"``,
``newline=None``)."""


class ExportError(ValueError):
    """The tokenizer cannot be expressed exactly in the target format."""


def _token_bytes(tok: Tokenizer) -> list[bytes]:
    """The bytes of every ordinary token (ids 0 .. 255 + merges), from the merge list."""
    table = [bytes([b]) for b in range(256)]
    for left, right in tok.merges:
        table.append(table[left] + table[right])
    return table


def _ordinary_bytes(tok: Tokenizer) -> list[bytes]:
    table = _token_bytes(tok)
    first: dict[bytes, int] = {}
    for i, data in enumerate(table):
        if data in first:
            raise ExportError(
                f"tokens {first[data]} and {i} have the same bytes {data!r}; the export formats "
                "key tokens by their bytes, so this merge list cannot be exported exactly"
            )
        first[data] = i
    return table


def _others(tok: Tokenizer) -> list[tuple[str, int]]:
    """Special tokens other than ``<N>``, in id order."""
    return sorted(
        ((name, i) for name, i in tok.special_tokens.items() if name != NEWLINE_TOKEN),
        key=lambda item: item[1],
    )


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"exporting needs the {module} package: pip install 'codekiln[hf]' (or pip install "
            f"{module})"
        ) from e


# ---------------------------------------------------------------------------------- HF


def to_huggingface(tok: Tokenizer) -> tokenizers.Tokenizer:
    """A ``tokenizers.Tokenizer`` that gives the same ids as ``tok`` for every text.

    The BPE model holds the vocabulary and merges in GPT-2 byte-level form; the pre-tokenizer
    is ``Sequence([Split(Regex(tok.pattern_regex), "isolated"), ByteLevel(add_prefix_space=False,
    use_regex=False)])``, or plain GPT-2 ``ByteLevel(add_prefix_space=False, use_regex=True)``
    when the split is GPT-2's own (``pattern="gpt2"``, ``newline=None`` or merged ``<N>``);
    the decoder is ``ByteLevel``; special tokens are added as special tokens and
    ``encode_special_tokens = True`` keeps literal special-token text ordinary (as
    ``tok.encode`` does by default).
    """
    hf = _need("tokenizers")
    table = _ordinary_bytes(tok)
    vocab = {bytes_to_token_str(data): i for i, data in enumerate(table)}
    merges = [(bytes_to_token_str(table[a]), bytes_to_token_str(table[b])) for a, b in tok.merges]
    out = hf.Tokenizer(hf.models.BPE(vocab=vocab, merges=merges))
    if tok.pattern_regex == GPT2_REGEX:
        # The standard GPT-2 layout (ByteLevel splits with this very regex): readers that
        # recognise layouts instead of running the file's regex (tokie) read it as GPT-2.
        out.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        out.pre_tokenizer = hf.pre_tokenizers.Sequence(
            [
                hf.pre_tokenizers.Split(hf.Regex(tok.pattern_regex), behavior="isolated"),
                hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    out.decoder = hf.decoders.ByteLevel()
    for name, i in _others(tok):
        if name in vocab:
            raise ExportError(
                f"special token {name!r} is also the byte-level string of token "
                f"{vocab[name]}; Hugging Face tokenizers cannot hold both"
            )
        # Added one by one: HF gives each the next free id, which is our layout.
        out.add_special_tokens([hf.AddedToken(name, special=True, normalized=False)])
        if out.token_to_id(name) != i:
            raise ExportError(f"special token {name!r} got id {out.token_to_id(name)}, not {i}")
    out.encode_special_tokens = True
    return out


def save_huggingface(tok: Tokenizer, directory: str | os.PathLike[str]) -> None:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``.

    ``transformers.PreTrainedTokenizerFast.from_pretrained(directory)`` (or ``AutoTokenizer``)
    then encodes like ``tok`` (``split_special_tokens`` is on); ``<|endoftext|>``, when
    present, is the bos and eos token.
    """
    hf_tok = to_huggingface(tok)
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    others = _others(tok)
    specials: dict[str, Any] = {}
    if ENDOFTEXT in tok.special_tokens:
        specials = {"bos_token": ENDOFTEXT, "eos_token": ENDOFTEXT}
    extra = [name for name, _ in others if name != ENDOFTEXT]
    if extra:
        specials["additional_special_tokens"] = extra
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "split_special_tokens": True,
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(i): {
                "content": name,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for name, i in others
        },
        **specials,
    }
    atomic_write(
        os.path.join(directory, "tokenizer.json"), hf_tok.to_str(pretty=True).encode("utf-8")
    )
    for name, obj in (("tokenizer_config.json", config), ("special_tokens_map.json", specials)):
        data = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
        atomic_write(os.path.join(directory, name), data.encode("utf-8"))


# ---------------------------------------------------------------------------------- tiktoken


def _first_improper_merge(tok: Tokenizer) -> int | None:
    """Index of the first merge ``t = (a, b)`` for which merge-list BPE of ``bytes(t)`` is not
    ``[t]`` (see the module docstring), or ``None``."""
    table = _token_bytes(tok)
    merges = tok.merges
    rank: dict[tuple[int, int], int] = {}
    for i, pair in enumerate(merges):
        rank.setdefault(pair, i)
    for i in range(len(merges)):
        ids = list(table[256 + i])
        while len(ids) > 1:
            best = min(
                (rank.get(pair, len(merges)) for pair in itertools.pairwise(ids)),
                default=len(merges),
            )
            if best >= i + 1:  # merges after i cannot produce token 256 + i
                break
            pair, merged, j = merges[best], [], 0
            while j < len(ids):
                if j + 1 < len(ids) and (ids[j], ids[j + 1]) == pair:
                    merged.append(256 + best)
                    j += 2
                else:
                    merged.append(ids[j])
                    j += 1
            ids = merged
        if ids != [256 + i]:
            return i
    return None


def _tiktoken_parts(tok: Tokenizer) -> tuple[dict[bytes, int], dict[str, int]]:
    table = _ordinary_bytes(tok)
    bad = _first_improper_merge(tok)
    if bad is not None:
        a, b = tok.merges[bad]
        raise ExportError(
            f"merge {bad} ({a}, {b}) -> {table[256 + bad]!r} is not how BPE splits those bytes, "
            "so tiktoken's rank-based merging would tokenize differently"
        )
    specials = dict(_others(tok))
    if tok.newline == NEWLINE_TOKEN:
        specials[NEWLINE_TOKEN] = tok.special_tokens[NEWLINE_TOKEN]
    return {data: i for i, data in enumerate(table)}, specials


def _encoding(
    tiktoken: Any,
    name: str,
    pat_str: str,
    ranks: dict[bytes, int],
    specials: dict[str, int],
    n_vocab: int,
) -> tiktoken.Encoding:
    # tiktoken's explicit_n_vocab check counts ids, and "<N>" shares id 10 with the byte "\n":
    # skip it then and check the size here.
    shared = NEWLINE_TOKEN in specials
    enc = tiktoken.Encoding(
        name=name,
        pat_str=pat_str,
        mergeable_ranks=ranks,
        special_tokens=specials,
        explicit_n_vocab=None if shared else n_vocab,
    )
    if enc.n_vocab != n_vocab:
        raise ValueError(f"the tiktoken encoding has {enc.n_vocab} ids, expected {n_vocab}")
    return enc


def to_tiktoken(tok: Tokenizer) -> tiktoken.Encoding:
    """A ``tiktoken.Encoding`` with ``encode_ordinary(text) == tok.encode(text)`` for every
    text, and ``encode(text, allowed_special=S, disallowed_special=())`` equal to
    ``tok.encode(text, allowed_special=S)`` for every ``S`` (``"all"`` and ``"<N>"`` too: in
    ``<N>`` mode ``"<N>"`` is a tiktoken special token with id 10; see the module docstring
    for what that means for tiktoken's default ``encode``)."""
    tiktoken = _need("tiktoken")
    ranks, specials = _tiktoken_parts(tok)
    return _encoding(
        tiktoken,
        f"codekiln-{tok.fingerprint[:12]}",
        tok.pattern_regex,
        ranks,
        specials,
        tok.vocab_size,
    )


def save_tiktoken(tok: Tokenizer, directory: str | os.PathLike[str]) -> None:
    """Write ``tokenizer.tiktoken`` (tiktoken's ``base64(token) rank`` lines) and
    ``tiktoken_config.json`` (``name``, ``pat_str``, ``special_tokens``, ``explicit_n_vocab``);
    :func:`load_tiktoken` reads them back into a ``tiktoken.Encoding``."""
    ranks, specials = _tiktoken_parts(tok)
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    lines = "".join(f"{base64.b64encode(data).decode('ascii')} {i}\n" for data, i in ranks.items())
    atomic_write(os.path.join(directory, TIKTOKEN_RANKS_FILE), lines.encode("ascii"))
    config = {
        "name": f"codekiln-{tok.fingerprint[:12]}",
        "pat_str": tok.pattern_regex,
        "special_tokens": specials,
        "explicit_n_vocab": tok.vocab_size,
        "mergeable_ranks": TIKTOKEN_RANKS_FILE,
        "codekiln_fingerprint": tok.fingerprint,
    }
    data = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    atomic_write(os.path.join(directory, TIKTOKEN_CONFIG_FILE), data.encode("utf-8"))


def load_tiktoken(directory: str | os.PathLike[str]) -> tiktoken.Encoding:
    """Read what :func:`save_tiktoken` wrote."""
    tiktoken = _need("tiktoken")
    directory = os.fspath(directory)
    with open(os.path.join(directory, TIKTOKEN_CONFIG_FILE), encoding="utf-8") as f:
        config = json.load(f)
    ranks: dict[bytes, int] = {}
    with open(os.path.join(directory, config["mergeable_ranks"]), encoding="ascii") as f:
        for line in f:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return _encoding(
        tiktoken,
        config["name"],
        config["pat_str"],
        ranks,
        config["special_tokens"],
        config["explicit_n_vocab"],
    )
