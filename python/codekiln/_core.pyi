"""Type stubs for the Rust extension ``codekiln._core`` (built from ``rust/`` by maturin).

The extension is private: the typed public API lives in :mod:`codekiln.tokenizer` and
:mod:`codekiln.data`, which own validation and defaults (settings have no defaults here).
Everything here releases the GIL for the heavy work.

``num_threads`` everywhere: N >= 1 keeps N cores busy, file reading included; values above
the CPUs this process may use (or above the number of work items) are capped; 0 raises
``ValueError``. Errors: I/O problems raise ``OSError`` (``FileNotFoundError``,
``PermissionError``) naming the file, bad arguments ``ValueError``, and an internal error in
a worker thread ``RuntimeError``.

Vocabulary layout shared by every function below:
  * ids 0..255 are the 256 single bytes (id == byte value);
  * id 256 + i is the token made by merge i (``merges[i] = (left_id, right_id)``);
  * special tokens other than ``<N>`` come after the merges; in ``newline="<N>"`` mode
    ``<N>`` *is* id 10 (the byte ``\\n``), so it decodes back to ``"\\n"``.
"""

import os
from collections.abc import Callable, Sequence

PATTERNS: list[str]
"""Names of the built-in pre-tokenization patterns (``"code"``, ``"gpt2"``)."""

def pretokenize(text: str, pattern: str, newline: bool) -> list[str]:
    """Split ``text`` into pieces with the built-in ``pattern``.

    ``newline=True`` is the ``<N>`` mode: every ``"\\n"`` is a piece of its own.
    ``"".join(pieces) == text`` always. Raises ``ValueError`` for an unknown pattern.
    """

def pattern_regex(pattern: str, newline: bool) -> str:
    """A regular expression that splits exactly like :func:`pretokenize` when its matches are
    taken left to right (``regex.findall``, tiktoken's fancy-regex, HF tokenizers' Oniguruma)."""

class Counter:
    """Counts pre-tokenized pieces (in parallel, ``rust/bpe/counts.rs``) and learns BPE merges
    from the counts, or writes them to a count file.

    With ``max_memory`` (bytes) and ``spill_dir`` (an existing directory) the tables of
    distinct pieces spill sorted runs under ``spill_dir`` instead of growing past the budget;
    the runs are removed when the counter is dropped. Counts are sums: the result never
    depends on the budget or the thread count."""

    def __init__(
        self,
        pattern: str,
        newline: bool,
        text_field: str = "content",
        max_memory: int | None = None,
        spill_dir: str | os.PathLike[str] | None = None,
        newline_token: bool | None = None,
    ) -> None: ...
    def add_texts(self, texts: Sequence[str], num_threads: int) -> int:
        """Count the pieces of every text (GIL released); returns how many texts were left
        out because they have no UTF-8 form (a lone surrogate such as ``"\\ud800"``)."""
    def add_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        num_threads: int,
        progress: Callable[[int, int, int, int, int], None] | None = None,
        strict: bool = False,
    ) -> dict[str, object]:
        """Read and count files: ``.jsonl``/``.jsonl.gz``/``.jsonl.zst`` (also ``.json*``,
        case-insensitive; one document per line, text in ``text_field``; lines without it are
        skipped) and anything else as one UTF-8 document per file.
        ``progress(done_bytes, total_bytes, table_entries, table_bytes, runs)`` is called now
        and then (file bytes on disk; the distinct pieces in memory, their estimated bytes, the
        runs spilled). Returns ``{"files", "documents", "bytes", "skipped_files",
        "skipped_documents", "skipped": [(path, reason), ...]}`` (``files`` includes skipped
        files). A damaged file is skipped from the damage on and listed, or with ``strict`` an
        ``OSError`` naming it; a missing file raises ``OSError`` naming it."""
    @property
    def documents(self) -> int: ...
    @property
    def total_bytes(self) -> int: ...
    @property
    def total_pieces(self) -> int: ...
    @property
    def runs(self) -> int:
        """Sorted runs spilled so far."""
    @property
    def table_bytes(self) -> int:
        """Estimated bytes of the in-memory tables."""
    def write(self, path: str | os.PathLike[str]) -> dict[str, object]:
        """Write a count file (the counter is used up); its settings and stats."""
    def train(
        self,
        num_merges: int,
        min_frequency: int,
        min_count: int,
        num_threads: int,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[tuple[int, int]], int, int]:
        """Learn up to ``num_merges`` merges (fewer when no pair reaches ``min_frequency``) from
        the counts (used up: a second ``train``/``add_*``/``write`` raises ``ValueError``),
        keeping pieces seen ``min_count``+ times: (merges, distinct pieces, multi-byte pieces
        kept). ``progress(merges_done)`` is called now and then.

        Tie-break (documented, thread-count independent, and the same as HF tokenizers'
        BpeTrainer): the pair with the highest count wins; among equal counts the pair whose
        (order(left), order(right)) is smallest, where order(byte) is the byte's position in
        GPT-2's byte-to-unicode alphabet sorted by code point and order(merge i) = 256 + i."""

def merge_count_files(
    inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]
) -> dict[str, object]:
    """Merge count files (same settings) into ``out``: settings and summed stats."""

def inspect_count_file(path: str | os.PathLike[str]) -> dict[str, object]:
    """Read a count file to its end, verifying it: ``{"pattern", "newline", "documents",
    "bytes", "pieces", "distinct_pieces"}``."""

def count_file_settings(path: str | os.PathLike[str]) -> tuple[str, bool, bool]:
    """The (pattern, newlines isolated, has <N>) settings in a count file's header (the entries
    are not read)."""

def train_count_files(
    paths: Sequence[str | os.PathLike[str]],
    num_merges: int,
    min_frequency: int,
    min_count: int,
    num_threads: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, object], list[tuple[int, int]], int, int]:
    """Learn merges from count files merged as they are read: (settings and stats, merges,
    distinct pieces, multi-byte pieces kept)."""

class Encoder:
    """An immutable BPE encoder/decoder; safe to share between threads."""

    def __init__(
        self,
        pattern: str,
        newline: bool,
        merges: Sequence[tuple[int, int]],
        special_tokens: Sequence[tuple[str, int]],
    ) -> None:
        """Raises ``ValueError`` when a merge refers to an id that does not exist yet or a
        special token id collides with a byte/merge id (``<N>`` must be 10)."""
    @property
    def vocab_size(self) -> int: ...
    def encode_ordinary(self, text: str) -> list[int]:
        """Encode with no special-token handling: every character is ordinary text."""
    def encode(self, text: str, allowed_special: Sequence[str]) -> list[int]:
        """Like :meth:`encode_ordinary` but occurrences of the listed special token strings
        become their ids (leftmost-longest match)."""
    def encode_batch(
        self, texts: Sequence[str], allowed_special: Sequence[str], num_threads: int
    ) -> list[list[int]]: ...
    def encode_batch_flat(
        self, texts: Sequence[str], allowed_special: Sequence[str], num_threads: int
    ) -> tuple[bytearray, bytearray]:
        """Every text's ids in one buffer: ``(ids, offsets)`` as native-endian ``u32`` ids and
        ``len(texts) + 1`` ``u64`` offsets, for ``numpy.frombuffer`` (no Python ints)."""
    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """Concatenate the bytes of the tokens; ``ValueError`` names the first unknown id."""
    def decode_bytes_u32(self, data: bytes) -> bytes:
        """:meth:`decode_bytes` of ids packed as native-endian ``u32`` (a numpy buffer)."""
    def token_bytes(self, id: int) -> bytes: ...

# ---- data pipeline (rust/pack/, rust/clean/; public API in codekiln.data) ----

Record = tuple[str, str | None, str | None, str | None]
"""``(text, repo_name, path, license)``."""

class Packer:
    """The parallel shard packer: read -> filters -> exact/near dedup -> split -> redact ->
    tokenize -> shards. Output bytes do not depend on ``num_threads``. Feed in output order."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        encoder: Encoder,
        eot_id: int,
        fingerprint: bytes,
        *,
        num_threads: int,
        shard_tokens: int,
        filters: dict[str, object] | None,
        exact_dedup: bool,
        near_threshold: float | None,
        near_num_perm: int,
        near_ngram: int,
        redact: bool,
        valid_fraction: float,
        text_field: str,
        resume: Sequence[tuple[int, int]] | None,
        on_shard: Callable[[dict[str, object]], None] | None,
        batch_bytes: int,
        strict: bool = False,
    ) -> None:
        """``filters``: keys ``min_bytes``, ``max_bytes``, ``max_line_length``,
        ``max_mean_line_length``, ``min_alnum_fraction``, ``auto_generated``, ``license_allow``
        (``None``: no filters). ``resume``: per split (train, valid) ``(shards kept, documents
        in them)``. ``on_shard(info)`` is called (from a writer thread, with the GIL) after each
        shard is durably renamed into place: ``{"split", "index", "file", "tokens",
        "documents", "bytes", "sha256"}``. ``fingerprint``: the tokenizer's raw 32-byte SHA-256."""
    def add_files(
        self,
        paths: Sequence[tuple[str | os.PathLike[str], str | None]],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Read ``(path, name)`` files in Rust (JSON lines / gz / zst, else one UTF-8 document
        whose path is ``name``), one after the other on the packer's pool.
        ``progress(documents, bytes)`` (cumulative over everything fed) is called now and
        then from the calling thread; an exception in it (Ctrl-C included) stops the reading
        and is raised."""
    def add_records(self, records: Sequence[Record]) -> None: ...
    def count_removed(self, reason: str, documents: int, bytes: int) -> None: ...
    def count_invalid(self, records: int) -> None: ...
    def finish(self) -> dict[str, object]:
        """Wait for all stages, close the last shards, return the report: ``files``,
        ``skipped_files``, ``documents_in``, ``bytes_in``, ``invalid_records``, ``removed``,
        ``removed_bytes``, ``redactions``, ``redacted_documents``, ``train``, ``valid`` (each
        ``{"documents", "bytes", "resumed_documents", "tokens", "shards"}``)."""
    def add_prepared(self, files: Sequence[tuple[str | os.PathLike[str], bytes]]) -> None:
        """Feed prepared files (:class:`Preparer`) in order, ``(path, key)`` pairs: their
        documents go through this packer's decisions and writer as if the input files were
        read here. A damaged or stale file is an ``OSError`` naming it."""
    def abort(self) -> None:
        """Stop after an error; unfinished shards stay ``.tmp`` files."""

class Preparer:
    """Writes a prepared file: the packer's per-document stages (filters, dedup key, MinHash
    signature, split, redaction, tokenization) for one input, for a :class:`Packer` elsewhere
    (:meth:`Packer.add_prepared`). ``out`` is written in place (write a temporary path and
    rename it), stamped with the 32-byte ``key``; the other settings are :class:`Packer`'s."""

    def __init__(
        self,
        out: str | os.PathLike[str],
        key: bytes,
        encoder: Encoder,
        eot_id: int,
        fingerprint: bytes,
        *,
        num_threads: int,
        filters: dict[str, object] | None,
        exact_dedup: bool,
        near_threshold: float | None,
        near_num_perm: int,
        near_ngram: int,
        redact: bool,
        valid_fraction: float,
        text_field: str,
        batch_bytes: int,
        strict: bool,
    ) -> None: ...
    def add_file(self, path: str | os.PathLike[str], name: str | None, shown: str) -> None:
        """Read one input file in Rust; ``name`` is the path of a plain-text document,
        ``shown`` names the file if it is skipped (the path the packing machine knows)."""
    def add_records(self, records: Sequence[Record]) -> None: ...
    def count_removed(self, reason: str, documents: int, bytes: int) -> None: ...
    def count_invalid(self, records: int) -> None: ...
    def count_skipped(self, path: str, why: str) -> None:
        """A file read in Python that could not be read to its end (``why``)."""
    def finish(self) -> dict[str, object]:
        """Write the rest and the checksum; the summary: ``files``, ``documents_in``,
        ``bytes_in``, ``invalid_records``, ``skipped_files``, ``encoded_documents``,
        ``encoded_tokens``, ``removed`` (``{reason: (documents, bytes)}``)."""

def check_prepared(path: str | os.PathLike[str], key: bytes) -> dict[str, object]:
    """The summary of a prepared file made with ``key``; ``OSError`` (naming it) when it is
    damaged, truncated, of another format version or made with another key."""

def redact(text: str) -> tuple[str, dict[str, int]]: ...
def redaction_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, kind)`` of each finding, as UTF-8 byte offsets."""

def check_document(text: str, license: str | None, filters: dict[str, object] | None) -> str | None:
    """The name of the first filter that rejects ``text`` (``filters=None``: no filters)."""

def dedup_key(text: str) -> str: ...
def split_of(
    valid_fraction: float, repo_name: str | None = None, path: str | None = None, text: str = ""
) -> str: ...
def find_near_duplicates(
    texts: Sequence[str],
    threshold: float,
    num_perm: int,
    ngram: int,
    num_threads: int,
) -> list[tuple[int, int, float]]: ...
