"""Tests of llmcourse.data.packing: tokenizer, batched tokenisation and packing, token file, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmcourse.data.packing import (
    EOS,
    blocks_loader,
    make_get_batch,
    open_token_file,
    pack_blocks,
    token_stream,
    tokenize_dataset,
    train_bpe,
    write_token_file,
)

TEXT = ("def add(a, b):\n    return a + b\n\nThe quick brown fox jumps over the lazy dog. " * 40)


@pytest.fixture(scope="module")
def tok():
    return train_bpe(TEXT, vocab_size=300)


def test_bpe_roundtrip_and_determinism(tok, tmp_path):
    ids = tok.encode("The quick brown fox").ids
    assert tok.decode(ids) == "The quick brown fox"
    assert tok.token_to_id(EOS) == 0
    assert tok.get_vocab_size() <= 300
    again = train_bpe(TEXT, vocab_size=300, cache=tmp_path)
    assert again.encode(TEXT[:200]).ids == tok.encode(TEXT[:200]).ids
    assert len(list(tmp_path.glob("bpe-*.json"))) == 1
    cached = train_bpe(TEXT, vocab_size=300, cache=tmp_path)
    assert cached.encode(TEXT[:200]).ids == tok.encode(TEXT[:200]).ids


def test_tokenize_and_pack(tok):
    texts = ["hello world", "def f(x): return x", "the lazy dog"] * 10
    ds = tokenize_dataset(texts, tok)
    assert ds.column_names == ["input_ids"] and len(ds) == 30
    assert all(row[-1] == 0 for row in ds["input_ids"])  # EOS after each text
    flat = [t for row in ds["input_ids"] for t in row]
    blocks = pack_blocks(ds, block_size=8)
    rows = blocks["input_ids"]
    assert all(len(r) == 9 for r in rows)
    assert [t for r in rows for t in r] == flat[: len(rows) * 9]  # nothing reordered
    assert len(flat) - len(rows) * 9 < 9  # only a short tail is dropped


def test_token_file_memmap_and_batches(tok, tmp_path):
    ds = tokenize_dataset([TEXT[:500], TEXT[500:1500]], tok)
    path = write_token_file(token_stream(ds), tmp_path / "train.bin", vocab_size=300)
    mm = open_token_file(path)
    assert isinstance(mm, np.memmap) and mm.dtype == np.uint16
    assert mm.tolist() == [t for row in ds["input_ids"] for t in row]
    get_batch = make_get_batch(mm, batch_size=4, block_size=16)
    x1, y1 = get_batch(torch.Generator().manual_seed(3))
    x2, y2 = get_batch(torch.Generator().manual_seed(3))
    assert x1.shape == (4, 16) and x1.dtype == torch.long
    assert torch.equal(x1, x2) and torch.equal(y1, y2)  # deterministic given the seed
    assert torch.equal(x1[:, 1:], y1[:, :-1])  # targets are inputs shifted by one
    x3, _ = get_batch(torch.Generator().manual_seed(4))
    assert not torch.equal(x1, x3)


def test_blocks_loader_replays(tok):
    blocks = pack_blocks(tokenize_dataset([TEXT], tok), block_size=8)
    a = [x for x, _ in blocks_loader(blocks, 4, seed=1)]
    b = [x for x, _ in blocks_loader(blocks, 4, seed=1)]
    assert all(torch.equal(p, q) for p, q in zip(a, b)) and a[0].shape == (4, 8)


def test_bad_inputs(tok, tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe(TEXT, vocab_size=100)
    with pytest.raises(TypeError, match="text"):
        train_bpe([1, 2], vocab_size=300)
    with pytest.raises(TypeError, match="texts"):
        tokenize_dataset("not a list", tok)
    with pytest.raises(ValueError, match="block_size"):
        pack_blocks(tokenize_dataset(["a"], tok), block_size=0)
    with pytest.raises(ValueError, match="token ids"):
        write_token_file([[1, 70_000]], tmp_path / "x.bin", vocab_size=300)
    with pytest.raises(ValueError, match="no token file"):
        open_token_file(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="tokens"):
        make_get_batch(np.arange(10), batch_size=2, block_size=16)
    with pytest.raises(TypeError, match="generator"):
        make_get_batch(np.arange(100), batch_size=2, block_size=16)(0)


def test_pack_checker_agrees_with_pack_blocks(tok):
    from llmcourse.exercises.pretraining import check_pack

    def via_datasets(docs, block_size, eos):
        import datasets

        ds = datasets.Dataset.from_dict({"input_ids": [[*d, eos] for d in docs]})
        return pack_blocks(ds, block_size)["input_ids"]

    assert check_pack(via_datasets)
    assert not check_pack(lambda docs, bs, eos: [d for d in docs])


def test_token_file_pair_from_different_writes_is_refused(tmp_path):
    path = write_token_file([[1, 2, 3]], tmp_path / "t.bin", vocab_size=300)
    meta = tmp_path / "t.bin.json"
    old_meta = meta.read_text()
    write_token_file([[1, 2, 3, 4, 5]], path, vocab_size=300)
    meta.write_text(old_meta)  # as if killed between the two renames
    with pytest.raises(ValueError, match="different writes"):
        open_token_file(path)
    meta.write_text("{")
    with pytest.raises(ValueError, match="not a token-file description"):
        open_token_file(path)
    assert not list(tmp_path.glob("*.tmp"))


def test_write_token_file_refuses_float_ids_and_leaves_the_old_file_whole(tmp_path):
    path = write_token_file([[1, 2, 3]], tmp_path / "t.bin", vocab_size=300)
    before = path.read_bytes()
    for chunks in ([[4, 5], [6.0, 7.0]], [[4, 5], [2.5]], [[4], [True]]):
        with pytest.raises(TypeError, match=r"chunks\[1\] must hold integer token ids"):
            write_token_file(chunks, path, vocab_size=300)
    assert path.read_bytes() == before and open_token_file(path).tolist() == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bin", "t.bin.json"]  # no temps
    # integer ids of any kind are fine, empty chunks too
    write_token_file([np.array([1, 2], np.int32), torch.tensor([3]), [], (4,)], path)
    assert open_token_file(path).tolist() == [1, 2, 3, 4]


def test_make_get_batch_refuses_float_tokens_instead_of_truncating():
    ids = np.arange(40)
    with pytest.raises(TypeError, match="integer token ids"):
        make_get_batch(ids + 0.5, batch_size=2, block_size=4)  # 0.5 is not token 0
    a = make_get_batch(ids.astype(np.uint16), batch_size=2, block_size=4)
    b = make_get_batch(list(range(40)), batch_size=2, block_size=4)
    xa, ya = a(torch.Generator().manual_seed(0))
    xb, yb = b(torch.Generator().manual_seed(0))
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and xa.dtype == torch.long
