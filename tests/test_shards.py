"""PackedDataset and BlockSampler: blocks, windows, documents, sampling, resume, formats."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from codekiln import Tokenizer
from codekiln.data import BlockSampler, FilterConfig, PackConfig, PackedDataset, pack
from codekiln.data.shards import HEADER_BYTES, MAGIC, Shard, ShardError, read_header
from data_helpers import make_docs


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    docs = make_docs(40, seed=3)
    tok = Tokenizer.train([d["content"] for d in docs], vocab_size=330, progress=False)
    out = tmp_path_factory.mktemp("packed")
    cfg = PackConfig(
        filters=FilterConfig.none(),
        dedup="none",
        redact=False,
        valid_fraction=0.0,
        shard_tokens=2_500,
    )
    pack([docs], tok, out, cfg, progress=False)
    stream = []
    for d in docs:
        stream.extend(tok.encode(d["content"]))
        stream.append(tok.eot_id)
    return out, tok, docs, np.array(stream, dtype=np.int64)


def test_header_layout_is_the_documented_one(packed):
    out, tok, _, _ = packed
    raw = (out / "train-000000.bin").read_bytes()
    assert raw[:8] == MAGIC
    version, hsize, tbytes, vocab = struct.unpack_from("<IIII", raw, 8)
    tokens, docs, index_off = struct.unpack_from("<QQQ", raw, 24)
    (eot,) = struct.unpack_from("<I", raw, 48)
    assert (version, hsize, tbytes, vocab, eot) == (1, 256, 2, tok.vocab_size, tok.eot_id)
    assert raw[56:88].hex() == tok.fingerprint
    assert index_off == HEADER_BYTES + 2 * tokens
    assert len(raw) == index_off + 8 * (docs + 1)
    h = read_header(out / "train-000000.bin")
    assert (h.token_count, h.doc_count) == (tokens, docs)
    Shard(out / "train-000000.bin").check_index()


def test_contiguous_blocks_cover_the_stream(packed):
    out, _, _, stream = packed
    ds = PackedDataset(out, "train", block_size=100, as_numpy=True)
    assert len(ds.shards) > 3  # blocks cross shard boundaries below
    assert ds.num_tokens == len(stream)
    assert len(ds) == (len(stream) - 101) // 100 + 1
    for i in (0, 1, len(ds) // 2, len(ds) - 1):
        np.testing.assert_array_equal(ds[i], stream[i * 100 : i * 100 + 101])
    x, y = ds.batch([0, 5])
    assert x.shape == y.shape == (2, 100)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_sliding_windows(packed):
    out, _, _, stream = packed
    ds = PackedDataset(out, "train", block_size=64, stride=16, as_numpy=True)
    assert len(ds) == (len(stream) - 65) // 16 + 1
    for i in (0, 7, len(ds) - 1):
        np.testing.assert_array_equal(ds[i], stream[i * 16 : i * 16 + 65])


def test_documents_through_the_index(packed):
    out, tok, docs, _ = packed
    ds = PackedDataset(out, "train", block_size=8)
    assert ds.num_documents == len(docs)
    for i in (0, 17, len(docs) - 1):
        assert tok.decode(ds.document_tokens(i).tolist()) == docs[i]["content"]
    with pytest.raises(IndexError):
        ds.document_tokens(len(docs))


def test_torch_items_and_dataloader(packed):
    out, _, _, stream = packed
    ds = PackedDataset(out, "train", block_size=32)
    item = ds[3]
    assert isinstance(item, torch.Tensor) and item.dtype == torch.int64
    assert torch.equal(item, torch.from_numpy(stream[96:129]))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)
    assert next(iter(loader)).shape == (4, 33)


def test_sampler_is_seeded_sharded_and_resumable():
    n = 103
    a = BlockSampler(n, seed=7)
    b = BlockSampler(n, seed=7)
    c = BlockSampler(n, seed=8)
    first = [i for _, i in zip(range(n), a)]
    assert sorted(first) == list(range(n))
    assert first == [i for _, i in zip(range(n), b)]
    assert first != [i for _, i in zip(range(n), c)]
    # Ranks split one epoch into disjoint, equal shares.
    shares = [list(BlockSampler(n, seed=7, rank=r, world_size=4)._order(0)) for r in range(4)]
    assert all(len(s) == n // 4 for s in shares)
    assert len(set().union(*map(set, shares))) == 4 * (n // 4)
    # Save mid-epoch-2, restore in a fresh sampler: identical continuation.
    s = BlockSampler(n, seed=1, rank=1, world_size=2)
    it = s.stream()
    seen = [next(it) for _ in range(70)]
    state = s.state_dict()
    rest = [next(it) for _ in range(60)]
    t = BlockSampler(n, seed=1, rank=1, world_size=2)
    t.load_state_dict(state)
    assert [i for _, i in zip(range(60), t.stream())] == rest
    assert state["epoch"] == 1 and seen
    with pytest.raises(ValueError, match="seed"):
        BlockSampler(n, seed=2, rank=1, world_size=2).load_state_dict(state)
    assert list(BlockSampler(5, shuffle=False)._order(0)) == [0, 1, 2, 3, 4]


def test_iter_batches_resume_sees_the_same_batches(packed):
    out, _, _, _ = packed
    ds = PackedDataset(out, "train", block_size=16, as_numpy=True)
    s = BlockSampler(len(ds), seed=3)
    batches = ds.iter_batches(8, s)
    for _ in range(5):
        next(batches)
    state = s.state_dict()
    want = [next(batches)[0] for _ in range(3)]
    s2 = BlockSampler(len(ds), seed=3)
    s2.load_state_dict(state)
    got = []
    for x, _ in ds.iter_batches(8, s2):
        got.append(x)
        if len(got) == 3:
            break
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_wide_vocabulary_uses_uint32(tmp_path):
    # Every byte pair is a merge (65,536 merges); "zz" is the last one, id 65,791.
    zz = (ord("z"), ord("z"))
    merges = [(i, j) for i in range(256) for j in range(256) if (i, j) != zz] + [zz]
    tok = Tokenizer.from_merges(merges, special_tokens=["<|endoftext|>"])
    assert tok.vocab_size == 256 + 65_536 + 1
    text = "zz = 'zz'\n" * 50
    cfg = PackConfig(filters=FilterConfig.none(), valid_fraction=0)
    m = pack([[text]], tok, tmp_path, cfg, progress=False)
    assert m["tokenizer"]["token_dtype"] == "uint32"
    ds = PackedDataset(tmp_path, "train", block_size=1, as_numpy=True)
    assert ds.shards[0].header.token_bytes == 4
    ids = ds.document_tokens(0).tolist()
    assert 65_791 in ids and tok.decode(ids) == text
    assert ds.eot_id == tok.vocab_size - 1 > 65_536


def test_empty_or_missing_split_is_an_error(tmp_path, packed):
    out, _, _, _ = packed
    with pytest.raises(ShardError, match="no 'valid' shards"):
        PackedDataset(out, "valid")
    with pytest.raises(ValueError, match="no split"):
        PackedDataset(out, "test")


def test_dataloader_epoch_ends_after_len_batches(packed):
    """A DataLoader over a BlockSampler ends each epoch; the next epoch is a new order."""
    out, _, _, _ = packed
    ds = PackedDataset(out, "train", block_size=16)
    sampler = BlockSampler(len(ds), seed=5)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler)
    first = [b for b in loader]
    assert len(first) == len(loader) == -(-len(ds) // 4)
    assert sampler.state_dict()["epoch"] in (0, 1)
    second = [b for b in loader]
    assert len(second) == len(loader)
    assert not all(torch.equal(a, b) for a, b in zip(first, second))  # reshuffled
    # the stream goes on across epochs; a state saved at an epoch's end resumes the next one
    s = BlockSampler(10, seed=1)
    one = list(s)
    assert sorted(one) == list(range(10)) and list(s) != one
    t = BlockSampler(10, seed=1)
    assert [i for _, i in zip(range(25), t.stream())][:20] == one + list(
        BlockSampler(10, seed=1)._order(1)
    )


def _copy_pack(packed, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(packed[0], out)
    return out


def test_a_flipped_token_byte_is_caught_when_the_block_is_read(packed, tmp_path):
    """verify=False (the default) still never serves an id outside the vocabulary."""
    out = _copy_pack(packed, tmp_path)
    shard = out / "train-000001.bin"
    raw = bytearray(shard.read_bytes())
    raw[HEADER_BYTES + 2 * 10 + 1] ^= 0xFF  # high byte of token 10: id far above 330
    shard.write_bytes(bytes(raw))
    ds = PackedDataset(out, "train", block_size=50, as_numpy=True)  # opens fine
    first = int(ds._tok_starts[1])
    block = first // 50
    with pytest.raises(ShardError, match=r"train-000001.bin: token 10 has id \d+, not below"):
        ds[block]
    with pytest.raises(ShardError, match="not below the vocabulary size 330"):
        [ds.document_tokens(i) for i in range(ds.num_documents)]
    assert ds[0].max() < 330  # blocks of intact shards still read


def test_a_corrupt_index_or_header_is_caught_on_open(packed, tmp_path):
    out = _copy_pack(packed, tmp_path)
    shard = out / "train-000002.bin"
    h = read_header(shard)
    raw = bytearray(shard.read_bytes())
    off = h.index_offset + 8 * 1 + 3  # a middle byte of document 1's offset
    raw[off] ^= 0x40
    shard.write_bytes(bytes(raw))
    with pytest.raises(ShardError, match=r"train-000002\.bin: corrupt document index"):
        PackedDataset(out, "train", block_size=50)
    raw[off] ^= 0x40
    struct.pack_into("<I", raw, 20, 70_000)  # vocabulary size in the header
    shard.write_bytes(bytes(raw))
    with pytest.raises(ShardError, match=r"corrupt header|vocabulary size"):
        PackedDataset(out, "train", block_size=50)


def test_pickles_by_path_and_reopens(packed, tmp_path):
    import pickle

    out = packed[0]
    ds = PackedDataset(out, "train", block_size=64)
    data = pickle.dumps(ds)
    one = ds.shards[0]
    assert len(pickle.dumps(one)) < 1000 < one.header.token_count * 2  # by path, not data
    assert len(data) < sum(s.header.file_size for s in ds.shards) // 2
    back = pickle.loads(data)
    assert len(back) == len(ds) and torch.equal(back[len(ds) - 1], ds[len(ds) - 1])
    # A shard replaced between pickling and unpickling is an error, not silently other data.
    moved = _copy_pack(packed, tmp_path)
    ds2 = PackedDataset(moved, "train", block_size=64)
    data2 = pickle.dumps(ds2)
    (moved / "train-000000.bin").write_bytes((moved / "train-000001.bin").read_bytes())
    with pytest.raises(ShardError, match="changed on disk"):
        pickle.loads(data2)


def test_dataloader_workers_under_spawn(packed):
    out, _, _, stream = packed
    ds = PackedDataset(out, "train", block_size=64)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, num_workers=1, multiprocessing_context="spawn"
    )
    first = next(iter(loader))
    np.testing.assert_array_equal(first[0].numpy(), stream[:65])
