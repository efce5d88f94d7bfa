"""Token ids in every form (codekiln.tokenizer.ids) and encode_batch's array outputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from codekiln import Tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n",
    "# é 日本語 😀\nimport os\n",
] * 5

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
TORCH_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train(CORPUS, vocab_size=300, min_frequency=1, progress=False)


text_st = st.lists(
    st.one_of(st.text(max_size=8), st.sampled_from(["\n", "    ", "def", " self", "é", "😀"])),
    max_size=8,
).map("".join)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(INT_DTYPES))
def test_every_integer_dtype_round_trips(tok: Tokenizer, data: st.DataObject, dtype: type) -> None:
    # Ids a dtype can hold: all of them for >= 16 bits, the ones below its maximum otherwise.
    high = min(tok.vocab_size - 1, int(np.iinfo(dtype).max))
    ids = data.draw(st.lists(st.integers(0, high), max_size=30))
    arr = np.array(ids, dtype=dtype)
    want = tok.decode_bytes(ids)
    assert tok.decode_bytes(arr) == want
    assert tok.decode(arr) == want.decode("utf-8", errors="replace")
    assert tok.decode_bytes(list(arr)) == want  # a list of numpy scalars
    assert tok.decode_bytes(tuple(arr)) == want
    assert tok.decode_bytes(arr[::-1][::-1]) == want  # a strided view
    if ids:
        assert tok.token_bytes(arr[0]) == tok.token_bytes(ids[0])
        assert tok.id_to_token(arr[-1]) == tok.id_to_token(ids[-1])


@settings(max_examples=30, deadline=None)
@given(text=text_st, dtype=st.sampled_from([np.uint16, np.uint32, np.int32, np.int64]))
def test_encoded_text_round_trips_through_arrays(tok: Tokenizer, text: str, dtype: type) -> None:
    ids = np.array(tok.encode(text), dtype=dtype)
    assert tok.decode(ids) == text
    assert tok.decode(list(ids)) == text  # issue 12: failed with "must be int, got np.uint16"


def test_torch_tensors(tok: Tokenizer) -> None:
    text = "def f(x):\n    return x\n"
    ids = tok.encode(text)
    for dtype in TORCH_DTYPES:
        if max(ids) <= torch.iinfo(dtype).max:
            assert tok.decode(torch.tensor(ids, dtype=dtype)) == text
    assert tok.decode(list(torch.tensor(ids))) == text  # 0-d tensors have __index__
    batch = torch.tensor([ids, ids])
    with pytest.raises(ValueError, match="decode_batch"):
        tok.decode(batch)
    assert tok.decode_batch(batch) == [text, text]
    assert tok.decode_batch(batch.numpy().astype(np.uint16)) == [text, text]
    assert tok.decode_batch([ids, ids[:3]]) == [text, tok.decode(ids[:3])]
    with pytest.raises(TypeError, match="dtype"):
        tok.decode(torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="dtype"):
        tok.decode(torch.tensor([True]))


def test_bad_ids_are_clear_errors(tok: Tokenizer) -> None:
    with pytest.raises(ValueError, match="decode_batch"):
        tok.decode(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="one-dimensional"):
        tok.decode(np.zeros((2, 3, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="two-dimensional"):
        tok.decode_batch(np.zeros(3, dtype=np.int64))
    for bad in (np.array([1.0]), np.array([True]), np.array(["a"])):
        with pytest.raises(TypeError, match="dtype"):
            tok.decode(bad)
    for bad_seq in ([1.0], [True], [np.True_], ["a"], [None]):
        with pytest.raises(TypeError, match=r"ids\[0\] must be an integer"):
            tok.decode(bad_seq)
    for not_seq in ("abc", b"abc", 5, None):
        with pytest.raises(TypeError, match="sequence of integers"):
            tok.decode(not_seq)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown token id -1"):
        tok.decode(np.array([3, -1], dtype=np.int8))
    with pytest.raises(ValueError, match="unknown token id 300"):
        tok.decode(np.array([300], dtype=np.uint16))
    with pytest.raises(ValueError, match=f"unknown token id {2**64 - 1}"):
        tok.decode(np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(ValueError, match=f"unknown token id {2**40}"):
        tok.decode([np.int64(2**40)])
    with pytest.raises(TypeError, match="bool"):
        tok.token_bytes(True)
    with pytest.raises(TypeError, match="must be an integer"):
        tok.id_to_token(1.5)  # type: ignore[arg-type]
    assert tok.decode(np.array([], dtype=np.uint16)) == "" == tok.decode([])


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(text_st, max_size=12), threads=st.sampled_from([1, 2]))
def test_encode_batch_array_outputs_equal_the_lists(
    tok: Tokenizer, texts: list[str], threads: int
) -> None:
    lists = tok.encode_batch(texts, num_threads=threads)
    ids, offsets = tok.encode_batch(texts, num_threads=threads, output="flat")
    assert ids.dtype == np.uint32 and offsets.dtype == np.int64
    assert offsets.tolist()[0] == 0 and len(offsets) == len(texts) + 1
    assert [ids[a:b].tolist() for a, b in itertools.pairwise(offsets)] == lists
    arrays = tok.encode_batch(texts, num_threads=threads, output="arrays")
    assert [a.tolist() for a in arrays] == lists
    assert all(a.dtype == np.uint32 for a in arrays)


def test_encode_batch_arrays_with_specials_and_errors(tok: Tokenizer) -> None:
    texts = ["a<|endoftext|>b", "<|endoftext|>"]
    want = tok.encode_batch(texts, allowed_special="all")
    ids, offsets = tok.encode_batch(texts, allowed_special="all", output="flat")
    assert ids.tolist() == want[0] + want[1] and offsets.tolist() == [0, 3, 4]
    ids[0] = 5  # the arrays are the caller's, writable
    empty_ids, empty_offsets = tok.encode_batch([], output="flat")
    assert empty_ids.tolist() == [] and empty_offsets.tolist() == [0]
    with pytest.raises(ValueError, match="output"):
        tok.encode_batch(["a"], output="numpy")  # type: ignore[call-overload]
