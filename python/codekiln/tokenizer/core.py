"""The :class:`Tokenizer` class: train, encode, decode, save and load.

The heavy work (pre-tokenization, parallel counting, the merge loop, encoding) is done by the
Rust extension ``codekiln._core`` with the GIL released; this class owns validation, defaults,
progress bars, the file format and the documentation (``docs/tokenizer.md``).

Vocabulary layout: ids 0..255 are the bytes, id ``256 + i`` is merge ``i``, then the special
tokens other than ``<N>`` in the order given. In ``newline="<N>"`` mode ``<N>`` *is* id 10 (the
byte ``"\\n"``); ``newline_rule`` says whether newlines merge with the indentation after them
(``"merged"``, the default) or are always a token of their own (``"strict"``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, SupportsIndex, overload

import numpy as np

from codekiln import _core, corpus
from codekiln._io import atomic_write
from codekiln._threads import resolve_threads
from codekiln.tokenizer import trainer
from codekiln.tokenizer.format import (
    ENDOFTEXT,
    FORMAT_NAME,
    MAX_VOCAB_SIZE,
    NEWLINE_ID,
    NEWLINE_RULES,
    NEWLINE_TOKEN,
    TokenizerFileError,
    bytes_to_token_str,
    check_header,
    parse_merges,
    read_json,
)
from codekiln.tokenizer.ids import as_id, as_id_array

if TYPE_CHECKING:
    import tiktoken
    import tokenizers

__all__ = ["Tokenizer", "load_tokenizer"]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_config(pattern: str, newline: str | None, newline_rule: str) -> bool:
    """Validate; whether the pre-tokenizer isolates every newline (the strict ``<N>`` rule)."""
    if pattern not in _core.PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; choose one of {_core.PATTERNS}")
    if newline not in (NEWLINE_TOKEN, None):
        raise ValueError(f"newline must be {NEWLINE_TOKEN!r} or None, got {newline!r}")
    if newline_rule not in NEWLINE_RULES:
        raise ValueError(f"newline_rule must be one of {NEWLINE_RULES}, got {newline_rule!r}")
    return newline == NEWLINE_TOKEN and newline_rule == "strict"


def _other_specials(special_tokens: Iterable[str], newline: str | None) -> list[str]:
    """The special tokens that get ids after the merges (``<N>`` is id 10, not one of them)."""
    if isinstance(special_tokens, str):
        raise TypeError(
            f"special_tokens must be a list of names, not one str; did you mean [{special_tokens!r}]?"
        )
    out: list[str] = []
    for name in special_tokens:
        if not isinstance(name, str) or not name:
            raise ValueError(f"special token names must be non-empty str, got {name!r}")
        if name == NEWLINE_TOKEN:
            if newline != NEWLINE_TOKEN:
                raise ValueError(
                    f"{NEWLINE_TOKEN!r} is the newline token: use newline={NEWLINE_TOKEN!r} "
                    "instead of listing it in special_tokens"
                )
            continue  # implied by newline="<N>"
        if name in out:
            raise ValueError(f"special token {name!r} is listed twice")
        out.append(name)
    return out


class Tokenizer:
    """A byte-level BPE tokenizer for source code (Rust core, GIL released).

    Build one with :meth:`train`, :meth:`load` or :meth:`from_merges`.

    >>> tok = Tokenizer.train(["def add(a, b):\\n    return a + b\\n"] * 50, vocab_size=270,
    ...                       progress=False)
    >>> ids = tok.encode("def add(x, y):\\n    return x + y\\n")
    >>> tok.decode(ids)
    'def add(x, y):\\n    return x + y\\n'
    >>> tok.special_tokens
    {'<N>': 10, '<|endoftext|>': 269}
    >>> ids.count(10)  # the first newline merged with the indentation after it
    1
    >>> strict = Tokenizer.train(["def add(a, b):\\n    return a + b\\n"] * 50, vocab_size=270,
    ...                          newline_rule="strict", progress=False)
    >>> strict.encode("def add(x, y):\\n    return x + y\\n").count(10)  # every newline alone
    2
    """

    train_report: dict[str, Any] | None
    """What training read and learned (``None`` for :meth:`from_merges`): ``files``,
    ``documents``, ``bytes``, ``skipped_files``, ``skipped_documents``, ``skipped`` (a list of
    ``(path, reason)``, at most 100 kept), ``pieces``, ``unique_pieces``, ``kept_pieces``
    (multi-byte pieces the merge phase used), ``min_piece_count``, ``max_memory``,
    ``spill_runs`` (``docs/scale.md``), ``merges_requested``, ``merges_learned``,
    ``min_frequency``, ``num_threads``, ``seconds``. Saved in the file under ``"training"`` and
    restored by :meth:`load`."""

    def __init__(
        self,
        merges: Sequence[tuple[int, int]],
        *,
        pattern: str = "code",
        newline: str | None = NEWLINE_TOKEN,
        newline_rule: str = "merged",
        special_tokens: Iterable[str] = (ENDOFTEXT,),
    ) -> None:
        """Same as :meth:`from_merges`."""
        split_newlines = _check_config(pattern, newline, newline_rule)
        others = _other_specials(special_tokens, newline)
        checked: list[tuple[int, int]] = []
        for i, pair in enumerate(merges):
            try:
                left, right = (int(x) for x in pair)
            except (TypeError, ValueError):
                raise ValueError(f"merge {i} must be a pair of ints, got {pair!r}") from None
            if not (0 <= left < 256 + i and 0 <= right < 256 + i):
                raise ValueError(
                    f"merge {i} = ({left}, {right}) refers to an id that does not exist yet "
                    f"(ids below {256 + i} exist before it)"
                )
            checked.append((left, right))
        first_special = 256 + len(checked)
        specials = {NEWLINE_TOKEN: NEWLINE_ID} if newline == NEWLINE_TOKEN else {}
        specials.update({name: first_special + k for k, name in enumerate(others)})

        self._pattern = pattern
        self._newline = newline
        # Recorded for <N> only: without <N> the pre-tokenizer never isolates newlines.
        self._newline_rule = newline_rule if newline == NEWLINE_TOKEN else "merged"
        self._split_newlines = split_newlines
        self._merges = checked
        self._specials = specials
        self._encoder = _core.Encoder(pattern, split_newlines, checked, list(specials.items()))
        self._vocab_size = first_special + len(others)
        self.train_report = None

    # ----------------------------------------------------------------------------- building

    @classmethod
    def from_merges(
        cls,
        merges: Sequence[tuple[int, int]],
        *,
        pattern: str = "code",
        newline: str | None = NEWLINE_TOKEN,
        newline_rule: str = "merged",
        special_tokens: Iterable[str] = (ENDOFTEXT,),
    ) -> Tokenizer:
        """A tokenizer from its merge list (``merges[i] = (left_id, right_id)`` makes id 256+i).

        ``special_tokens`` get the ids after the merges in the given order; ``<N>`` is implied
        by ``newline="<N>"``.

        >>> tok = Tokenizer.from_merges([(ord("a"), ord("b"))], special_tokens=[])
        >>> tok.encode("abab"), tok.vocab_size
        ([256, 256], 257)
        """
        return cls(
            merges,
            pattern=pattern,
            newline=newline,
            newline_rule=newline_rule,
            special_tokens=special_tokens,
        )

    @classmethod
    def train(
        cls,
        source: object,
        *,
        vocab_size: int,
        pattern: str = "code",
        newline: str | None = NEWLINE_TOKEN,
        newline_rule: str = "merged",
        special_tokens: Iterable[str] = (ENDOFTEXT,),
        min_frequency: int = 2,
        num_threads: int | None = None,
        progress: bool = True,
        text_field: str = "content",
        include: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        max_memory: int | str | None = None,
        spill_dir: str | os.PathLike[str] | None = None,
        min_piece_count: int = 1,
        strict: bool = False,
    ) -> Tokenizer:
        """Learn a tokenizer from ``source``.

        ``source`` follows the one input rule of :mod:`codekiln.corpus` (the same as
        :func:`codekiln.data.pack`; also in ``docs/tokenizer.md``):

        * a single ``str`` or :class:`os.PathLike` is one path: a file, a directory (walked
          for the ``include`` patterns, by default :data:`codekiln.corpus.DEFAULT_INCLUDE`:
          ``*.py``, ``*.jsonl[.gz|.zst]``, ``*.parquet``) or a glob such as
          ``"data/**/*.py"``;
        * an iterable of :class:`os.PathLike` (e.g. :class:`pathlib.Path`) is a list of paths;
        * an iterable of ``str`` is a list of texts (drained lazily in batches of ~4 MB);
        * dicts (and ``datasets`` objects) are records with their text under ``text_field``.

        ``.jsonl`` files hold one JSON document per line with its text under ``text_field``.
        Texts without a UTF-8 form (a lone surrogate) are skipped and counted in
        ``skipped_documents``. Files or lines that cannot be decoded, files that are not regular files (FIFOs), and
        files that cannot be read to their end (unreadable, a truncated ``.gz``: the documents
        before the damage count) are skipped and listed in :attr:`train_report`; with
        ``strict=True`` such a damaged file is an ``OSError`` naming it instead.

        ``vocab_size`` counts the 256 bytes, the merges and the special tokens other than
        ``<N>``. If no pair occurs ``min_frequency`` times before that, fewer merges are learned:
        a warning says so and :attr:`vocab_size` is the real, smaller size. Training is
        deterministic and independent of ``num_threads``: ``None`` (default) is the CPUs this
        process may use, ``N`` at most ``N`` cores busy including reading, capped to the CPU
        count; 0 or less is a ``ValueError`` (see :mod:`codekiln._threads`).

        Large corpora (``docs/scale.md``): ``max_memory`` (bytes, or a string such as
        ``"4GB"``) bounds the tables of distinct pieces while counting; past it, sorted partial
        counts spill to a temporary directory under ``spill_dir`` (default: the system's temp
        dir) and are merged from disk. The result is identical to training in memory.
        ``min_piece_count=N`` drops pieces seen fewer than ``N`` times before the merge phase
        (less memory, a slightly different tokenizer; 1, the default, keeps all).

        Raises ``FileNotFoundError`` for a missing input path and ``ValueError`` for a
        ``vocab_size`` below 256 + the special tokens or above :data:`MAX_VOCAB_SIZE`
        (``2**32 - 1``: ids are 32-bit), checked before anything is read or allocated, or a
        corpus without any text.

        >>> tok = Tokenizer.train(["x = 1\\n", "y = 2\\n"] * 10, vocab_size=260, progress=False)
        >>> len(tok.merges), tok.train_report["documents"]
        (3, 20)
        """
        split_newlines = _check_config(pattern, newline, newline_rule)
        others = _other_specials(special_tokens, newline)
        vocab_size = _check_int("vocab_size", vocab_size, 0)
        minimum = 256 + len(others)
        if vocab_size < minimum:
            raise ValueError(
                f"vocab_size={vocab_size} is too small: it must be at least {minimum} "
                f"(256 byte tokens + {len(others)} special token(s))"
            )
        if vocab_size > MAX_VOCAB_SIZE:
            raise ValueError(
                f"vocab_size={vocab_size} is too large: token ids are 32-bit, so it must be at "
                f"most {MAX_VOCAB_SIZE:,} (real vocabularies are 32k-256k)"
            )
        min_frequency = _check_int("min_frequency", min_frequency, 1)
        threads = resolve_threads(num_threads)
        if not isinstance(text_field, str) or not text_field:
            raise ValueError(f"text_field must be a non-empty str, got {text_field!r}")
        budget = trainer.parse_memory(max_memory)
        if spill_dir is not None and budget is None:
            raise ValueError("spill_dir is only used with max_memory; give both")
        min_piece_count = _check_int("min_piece_count", min_piece_count, 1)
        num_merges = vocab_size - minimum
        merges, report = trainer.count_and_merge(
            corpus.resolve(source, include=include, exclude=exclude, text_field=text_field),
            pattern=pattern,
            newline=split_newlines,
            text_field=text_field,
            num_merges=num_merges,
            min_frequency=min_frequency,
            num_threads=threads,
            progress=progress,
            max_memory=budget,
            spill_dir=spill_dir,
            min_piece_count=min_piece_count,
            strict=bool(strict),
        )
        if len(merges) < num_merges:
            warnings.warn(
                f"learned only {len(merges)} of {num_merges} merges: no pair of tokens occurs "
                f"{min_frequency}+ times in the corpus any more; vocab_size is "
                f"{256 + len(merges) + len(others)} instead of {vocab_size}",
                UserWarning,
                stacklevel=2,
            )
        tok = cls(
            merges,
            pattern=pattern,
            newline=newline,
            newline_rule=newline_rule,
            special_tokens=others,
        )
        tok.train_report = report
        return tok

    # ----------------------------------------------------------------------------- properties

    @property
    def vocab_size(self) -> int:
        """Number of ids: 256 bytes + merges + special tokens other than ``<N>``."""
        return self._vocab_size

    @property
    def pattern(self) -> str:
        """Name of the pre-tokenization pattern (``"code"`` or ``"gpt2"``)."""
        return self._pattern

    @property
    def pattern_regex(self) -> str:
        """The regex that splits text into pieces exactly like the Rust pre-tokenizer."""
        return _core.pattern_regex(self._pattern, self._split_newlines)

    @property
    def newline(self) -> str | None:
        """``"<N>"`` (the newline is the token ``<N>``, id 10) or ``None`` (a plain byte)."""
        return self._newline

    @property
    def newline_rule(self) -> str:
        """How newlines are split in ``<N>`` mode: ``"merged"`` (a newline run and the next
        line's indentation are one piece, as with ``newline=None``) or ``"strict"`` (every
        newline is a token of its own). ``"merged"`` when ``newline`` is ``None``."""
        return self._newline_rule

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token name -> id (a copy); ``<N>`` maps to 10 in ``newline="<N>"`` mode."""
        return dict(self._specials)

    @property
    def merges(self) -> list[tuple[int, int]]:
        """The merge list (a copy): ``merges[i] = (left_id, right_id)`` made id ``256 + i``."""
        return list(self._merges)

    @property
    def eot_id(self) -> int | None:
        """Id of ``<|endoftext|>``, or ``None`` if it is not a special token here."""
        return self._specials.get(ENDOFTEXT)

    @functools.cached_property
    def _bytes_table(self) -> list[bytes]:
        table = [bytes([b]) for b in range(256)]
        for left, right in self._merges:
            table.append(table[left] + table[right])
        return table

    @functools.cached_property
    def _special_by_id(self) -> dict[int, str]:
        return {i: name for name, i in self._specials.items() if name != NEWLINE_TOKEN}

    @functools.cached_property
    def _token_strs(self) -> list[str]:
        # The byte-level form maps byte by byte, so a merged token's string is the
        # concatenation of its operands' strings.
        strs = [bytes_to_token_str(bytes([b])) for b in range(256)]
        for left, right in self._merges:
            strs.append(strs[left] + strs[right])
        return strs

    @functools.cached_property
    def _token_str_to_id(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, s in enumerate(self._token_strs):
            out.setdefault(s, i)  # first id wins for duplicate bytes
        return out

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON of what defines the tokenization: format,
        version, pattern, its regex, newline, vocab size, special tokens and merges (not the
        training report). Equal fingerprints mean identical ids for every text."""
        payload = json.dumps(
            self._canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
        return hashlib.sha256(payload.encode("ascii")).hexdigest()

    def _file_version(self) -> int:
        # Files that version 1 describes completely stay version 1 (same bytes, same
        # fingerprint); the merged <N> rule needs version 2, so older codekiln refuses it.
        return 2 if self._newline == NEWLINE_TOKEN and self._newline_rule == "merged" else 1

    def _canonical(self) -> dict[str, Any]:
        out = self._canonical_base()
        if out["version"] >= 2:
            out["newline_rule"] = self._newline_rule
        return out

    def _canonical_base(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": self._file_version(),
            "pattern": self._pattern,
            "pattern_regex": self.pattern_regex,
            "newline": self._newline,
            "vocab_size": self._vocab_size,
            "special_tokens": self._specials,
            "merges": [list(m) for m in self._merges],
        }

    # ----------------------------------------------------------------------------- encoding

    def _allowed(self, allowed_special: Iterable[str] | str) -> list[str]:
        if allowed_special == "all":
            return list(self._specials)
        if isinstance(allowed_special, str):
            raise ValueError(
                f"allowed_special must be 'all' or a collection of names, not the str "
                f"{allowed_special!r}; did you mean {{{allowed_special!r}}}?"
            )
        names = list(allowed_special)
        for name in names:
            if name not in self._specials:
                raise ValueError(
                    f"unknown special token {name!r}; this tokenizer has {list(self._specials)}"
                )
        return names

    def encode(self, text: str, *, allowed_special: Iterable[str] | str = ()) -> list[int]:
        """Encode ``text`` to ids.

        By default every character is ordinary text, including literal ``"<|endoftext|>"``;
        names listed in ``allowed_special`` (or ``"all"``) are turned into their ids instead.

        >>> tok = Tokenizer.from_merges([], special_tokens=["<|endoftext|>"])
        >>> tok.encode("a\\n<|endoftext|>", allowed_special="all")
        [97, 10, 256]
        >>> len(tok.encode("<|endoftext|>"))  # literal text: 13 byte tokens
        13
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        allowed = self._allowed(allowed_special)
        if allowed:
            return self._encoder.encode(text, allowed)
        return self._encoder.encode_ordinary(text)

    @overload
    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: Iterable[str] | str = ...,
        num_threads: int | None = ...,
        output: Literal["lists"] = ...,
    ) -> list[list[int]]: ...
    @overload
    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: Iterable[str] | str = ...,
        num_threads: int | None = ...,
        output: Literal["arrays"],
    ) -> list[np.ndarray]: ...
    @overload
    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: Iterable[str] | str = ...,
        num_threads: int | None = ...,
        output: Literal["flat"],
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: Iterable[str] | str = (),
        num_threads: int | None = None,
        output: Literal["lists", "arrays", "flat"] = "lists",
    ) -> list[list[int]] | list[np.ndarray] | tuple[np.ndarray, np.ndarray]:
        """Encode many texts in parallel (GIL released); same ids as :meth:`encode` each.

        ``output`` chooses the form of the result:

        * ``"lists"`` (default): one ``list[int]`` per text;
        * ``"flat"``: ``(ids, offsets)``, one ``uint32`` array of every id and an ``int64``
          array of ``len(texts) + 1`` offsets: text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``;
        * ``"arrays"``: one ``uint32`` numpy array per text (views into one flat array).

        The array forms are built in Rust without Python ints, so they scale with threads
        (the lists are made on one thread; BENCHMARKS.md has both).

        ``num_threads``: ``None`` (default) is the CPUs this process may use; never more
        threads than CPUs or than texts.

        >>> tok = Tokenizer.from_merges([], special_tokens=[])
        >>> tok.encode_batch(["a", "bc"])
        [[97], [98, 99]]
        >>> ids, offsets = tok.encode_batch(["a", "bc"], output="flat")
        >>> ids.tolist(), offsets.tolist()
        ([97, 98, 99], [0, 1, 3])
        >>> [a.tolist() for a in tok.encode_batch(["a", "bc"], output="arrays")]
        [[97], [98, 99]]
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch takes a list of texts; for one text use encode()")
        if output not in ("lists", "arrays", "flat"):
            raise ValueError(f"output must be 'lists', 'arrays' or 'flat', got {output!r}")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be str, not {type(text).__name__}")
        allowed = self._allowed(allowed_special)
        threads = resolve_threads(num_threads, work_items=len(texts))
        if output == "lists":
            return self._encoder.encode_batch(texts, allowed, threads)
        raw_ids, raw_offsets = self._encoder.encode_batch_flat(texts, allowed, threads)
        flat = np.frombuffer(raw_ids, dtype=np.uint32)
        offsets = np.frombuffer(raw_offsets, dtype=np.uint64).astype(np.int64)
        if output == "flat":
            return flat, offsets
        bounds = offsets.tolist()
        return [flat[a:b] for a, b in itertools.pairwise(bounds)]

    def core_encoder(self) -> _core.Encoder:
        """The immutable, thread-safe ``codekiln._core.Encoder`` behind this tokenizer.

        An internal handle for codekiln's own Rust pipelines (the shard packer takes it so that
        tokenization runs in Rust without the GIL); not part of the stable API."""
        return self._encoder

    def decode_bytes(self, ids: Iterable[SupportsIndex] | np.ndarray) -> bytes:
        """The bytes of the tokens ``ids``; special tokens give their name's bytes.

        ``ids`` is any sequence of integers (lists, tuples, numpy arrays of any integer dtype,
        numpy integer scalars, 1-D torch tensors; see :mod:`codekiln.tokenizer.ids`).

        >>> Tokenizer.from_merges([], special_tokens=[]).decode_bytes([104, 105])
        b'hi'
        """
        arr = as_id_array(ids, self._vocab_size)
        return self._encoder.decode_bytes_u32(arr.tobytes())

    def decode(self, ids: Iterable[SupportsIndex] | np.ndarray) -> str:
        """Decode ids to text; bytes that do not form valid UTF-8 (a token sequence cut inside
        a character) become U+FFFD. Takes ids in any form :meth:`decode_bytes` takes.

        >>> tok = Tokenizer.from_merges([], special_tokens=[])
        >>> tok.decode(tok.encode("é")), tok.decode(tok.encode("é")[:1])
        ('é', '�')
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_batch(self, batch: Iterable[Iterable[SupportsIndex]] | np.ndarray) -> list[str]:
        """:meth:`decode` of each row: a list of id sequences, a 2-D numpy array or a 2-D
        torch tensor (one text per row).

        >>> Tokenizer.from_merges([], special_tokens=[]).decode_batch([[104, 105], [33]])
        ['hi', '!']
        """
        if isinstance(batch, (str, bytes)):
            raise TypeError(f"batch must be a sequence of id sequences, not {type(batch).__name__}")
        ndim = getattr(batch, "ndim", None)
        if ndim is not None and ndim != 2:
            raise ValueError(f"batch must be two-dimensional (one row per text), got {ndim}-D")
        return [self.decode(row) for row in batch]

    def token_bytes(self, id: SupportsIndex) -> bytes:
        """The bytes of one token (a special token's name for specials other than ``<N>``)."""
        id = as_id(id, self._vocab_size)
        if id in self._special_by_id:
            return self._special_by_id[id].encode("utf-8")
        return self._bytes_table[id]

    def id_to_token(self, id: SupportsIndex) -> str:
        """The token's string in GPT-2 byte-level form (``" def"`` is ``"Ġdef"``, ``"\\n"`` is
        ``"Ċ"``), as in HF ``vocab.json``; a special token's name for specials.

        >>> tok = Tokenizer.from_merges([(32, 100)], special_tokens=[])
        >>> tok.id_to_token(256), tok.id_to_token(10)
        ('Ġd', 'Ċ')
        """
        id = as_id(id, self._vocab_size)
        if id in self._special_by_id:
            return self._special_by_id[id]
        return bytes_to_token_str(self._bytes_table[id])

    def token_to_id(self, token: str) -> int:
        """Inverse of :meth:`id_to_token`; special token names (``"<N>"`` too) are accepted.
        Raises ``ValueError`` for a string that is not a token.

        >>> Tokenizer.from_merges([(32, 100)], special_tokens=[]).token_to_id("Ġd")
        256
        """
        if token in self._specials:
            return self._specials[token]
        try:
            return self._token_str_to_id[token]
        except (KeyError, TypeError):
            raise ValueError(f"{token!r} is not a token of this tokenizer") from None

    def __len__(self) -> int:
        return self._vocab_size

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self._vocab_size}, pattern={self._pattern!r}, "
            f"newline={self._newline!r}, newline_rule={self._newline_rule!r}, "
            f"special_tokens={list(self._specials)!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tokenizer):
            return NotImplemented
        return self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "merges": self._merges,
            "pattern": self._pattern,
            "newline": self._newline,
            "newline_rule": self._newline_rule,
            "special_tokens": list(self._special_by_id.values()),
            "train_report": self.train_report,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        report = state.pop("train_report", None)
        state.setdefault("newline_rule", "strict")  # pickled before the rule existed
        self.__init__(state.pop("merges"), **state)  # type: ignore[misc]
        self.train_report = report

    # ----------------------------------------------------------------------------- files

    def to_dict(self) -> dict[str, Any]:
        """The content of the tokenizer file (see :meth:`save`)."""
        merges: list[str | list[int]] = []
        first = self._token_str_to_id
        strs = self._token_strs
        for left, right in self._merges:
            a, b = strs[left], strs[right]
            if first[a] == left and first[b] == right:
                merges.append(f"{a} {b}")
            else:  # an operand shares its bytes with an earlier token: only ids are unambiguous
                merges.append([left, right])
        out: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": self._file_version(),
            "pattern": self._pattern,
            "pattern_regex": self.pattern_regex,
            "newline": self._newline,
            **({"newline_rule": self._newline_rule} if self._file_version() >= 2 else {}),
            "vocab_size": self._vocab_size,
            "special_tokens": dict(self._specials),
            "fingerprint": self.fingerprint,
        }
        if self.train_report is not None:
            out["training"] = self.train_report
        out["merges"] = merges
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer as versioned, human-readable JSON (atomically: a temporary file
        in the same directory is fsynced, then renamed over ``path``).

        The file: ``{"format": "codekiln-tokenizer", "version": 1, "pattern", "pattern_regex",
        "newline", "vocab_size", "special_tokens": {name: id}, "fingerprint", "training",
        "merges": ["Ġ t", ...]}`` where each merge is its two tokens in GPT-2 byte-level form
        separated by one space (as in HF ``merges.txt``).
        """
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"
        atomic_write(os.fspath(path), text.encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read a file written by :meth:`save`.

        Raises ``FileNotFoundError`` if it does not exist and :class:`TokenizerFileError` (a
        ``ValueError``) naming the file and the problem if it is corrupt, truncated, of another
        format or written by a newer codekiln.
        """
        path = os.fspath(path)
        obj = read_json(path)
        try:
            return cls._from_dict(obj)
        except (KeyError, TypeError, ValueError) as e:
            problem = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            raise TokenizerFileError(f"{path}: {problem}") from None

    @classmethod
    def _from_dict(cls, obj: object) -> Tokenizer:
        obj = check_header(obj)
        pattern, newline, specials = obj["pattern"], obj["newline"], obj["special_tokens"]
        if not isinstance(specials, dict):
            raise ValueError('"special_tokens" must be an object {name: id}')
        merges = parse_merges(obj["merges"])
        others = sorted((i, n) for n, i in specials.items() if n != NEWLINE_TOKEN)
        # Version 1 files predate the merged rule: their <N> is strict.
        rule = obj.get("newline_rule", "strict") if obj["version"] >= 2 else "strict"
        tok = cls(
            merges,
            pattern=pattern,
            newline=newline,
            newline_rule=rule,
            special_tokens=[n for _, n in others],
        )
        if tok._specials != specials:
            raise ValueError(
                f'"special_tokens" {specials} do not follow the layout; expected {tok._specials}'
            )
        if obj["vocab_size"] != tok.vocab_size:
            raise ValueError(
                f'"vocab_size" is {obj["vocab_size"]} but 256 bytes + {len(merges)} merges + '
                f"{len(others)} special tokens make {tok.vocab_size}"
            )
        if "pattern_regex" in obj and obj["pattern_regex"] != tok.pattern_regex:
            raise ValueError(
                f"pattern {pattern!r} splits text differently in this codekiln version than in "
                "the one that trained this tokenizer; use the codekiln version that wrote it"
            )
        if "fingerprint" in obj and obj["fingerprint"] != tok.fingerprint:
            raise ValueError(
                '"fingerprint" does not match the content (edited or corrupt file); if the '
                'edit was intended, delete the "fingerprint" key'
            )
        training = obj.get("training")
        tok.train_report = training if isinstance(training, dict) else None
        return tok

    # ----------------------------------------------------------------------------- interop

    def to_huggingface(self) -> tokenizers.Tokenizer:
        """An equivalent HF ``tokenizers.Tokenizer``: ``encode(t, add_special_tokens=False).ids``
        equals :meth:`encode` for every text (literal special-token text stays ordinary text).
        Needs the ``tokenizers`` package (``pip install 'codekiln[hf]'``)."""
        from codekiln.tokenizer import interop

        return interop.to_huggingface(self)

    def save_huggingface(self, directory: str | os.PathLike[str]) -> None:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` so
        that ``transformers.PreTrainedTokenizerFast.from_pretrained(directory)`` loads it."""
        from codekiln.tokenizer import interop

        interop.save_huggingface(self, directory)

    def to_tiktoken(self) -> tiktoken.Encoding:
        """An equivalent ``tiktoken.Encoding``: ``encode_ordinary(t)`` equals :meth:`encode`."""
        from codekiln.tokenizer import interop

        return interop.to_tiktoken(self)


def load_tokenizer(tokenizer: Tokenizer | str | os.PathLike[str]) -> Tokenizer:
    """``tokenizer`` itself, or the tokenizer saved at a path: the one loader behind every
    ``--tokenizer FILE`` flag and every API that takes "a Tokenizer or the path of one".

    A directory that holds a ``tokenizer.json`` (a pack directory, a run) is read from that
    file. Errors: ``FileNotFoundError`` naming the path, :class:`TokenizerFileError` (a
    ``ValueError``) for a file that is not a readable codekiln tokenizer, ``TypeError`` for
    anything that is neither a tokenizer nor a path.
    """
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if not isinstance(tokenizer, (str, os.PathLike)):
        raise TypeError(
            f"tokenizer must be a Tokenizer or the path of a saved one, "
            f"not {type(tokenizer).__name__}"
        )
    path = os.fspath(tokenizer)
    if os.path.isdir(path):
        inner = os.path.join(path, "tokenizer.json")
        if not os.path.isfile(inner):
            raise FileNotFoundError(
                2, "a directory without tokenizer.json; pass the tokenizer's .json file", path
            )
        path = inner
    return Tokenizer.load(path)
