import os

import numpy as np
import pytest

from keras_lm import data
from keras_lm.data.text_dataset import STREAMS
from keras_lm.errors import UsageError
from keras_lm.tokenizers import ByteTokenizer, CharTokenizer

BYTE = ByteTokenizer()


def expected_stream(paths, tokenizer):
    """The token stream written independently: <bos> bytes <eos> per file."""
    stream = []
    for path in paths:
        with open(path, "rb") as f:
            stream += [tokenizer.bos_id] + list(f.read()) + [tokenizer.eos_id]
    return stream


def test_windows_are_consecutive_tokens_with_separators(corpus):
    length = 16
    windows = [w.tolist() for w in data.token_windows(corpus, BYTE, length).as_numpy_iterator()]
    stream = expected_stream(corpus, BYTE)
    assert len(windows) == (len(stream) - 1) // length
    for i, window in enumerate(windows):
        assert window == stream[i * length : i * length + length + 1]
    # Documents are separated by <eos> then <bos>.
    flat = sum((w[:-1] for w in windows), [])
    assert flat.count(BYTE.eos_id) >= len(corpus) - 1


def test_batches_are_shifted_inputs_and_targets(corpus):
    ds = data.text_dataset(corpus, BYTE, sequence_length=8, batch_size=4)
    x, y = next(iter(ds))
    assert x.shape == y.shape == (4, 8)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_files_larger_than_a_chunk_keep_multibyte_characters(tmp_path):
    # "é€" straddles the 64 KiB chunk boundaries at many offsets.
    path = tmp_path / "big.txt"
    text = "ab é€ " * 30000
    path.write_text(text, encoding="utf-8")
    assert os.path.getsize(path) > 3 * data.text_dataset.__globals__["CHUNK_BYTES"]
    tokenizer = CharTokenizer(vocabulary=list("ab é€"))
    windows = list(data.token_windows([str(path)], tokenizer, 1000).as_numpy_iterator())
    ids = np.concatenate([w[:-1] for w in windows])
    assert tokenizer.unk_id not in ids
    assert tokenizer.decode_text(ids[1:]) == text[: len(ids) - 1]


def test_byte_pipeline_is_exact_for_invalid_utf8(tmp_path):
    path = tmp_path / "bad.bin"
    raw = bytes(range(256)) * 3
    path.write_bytes(raw)
    windows = list(data.token_windows([str(path)], BYTE, 64).as_numpy_iterator())
    stream = expected_stream([str(path)], BYTE)
    assert [w.tolist() for w in windows][0] == stream[:65]


def test_training_shuffle_is_seeded(corpus):
    def first_batches(seed):
        ds = data.text_dataset(corpus, BYTE, 8, 4, shuffle=True, repeat=True, seed=seed)
        return [x.numpy() for x, _ in ds.take(3)]

    np.testing.assert_array_equal(first_batches(1), first_batches(1))
    assert not np.array_equal(first_batches(1), first_batches(2))


def test_split_is_deterministic_and_by_file():
    files = [f"/corpus/dir/file_{i}.txt" for i in range(200)]
    train, val = data.split_files(files, 0.1)
    assert (train, val) == data.split_files(list(reversed(files)), 0.1)
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(files)
    assert 5 <= len(val) <= 40


def test_resolve_files_expands_globs_and_directories(corpus, tmp_path):
    directory = os.path.dirname(corpus[0])
    assert data.resolve_files(directory) == sorted(corpus)
    assert data.resolve_files(f"{directory}/doc_0.txt,{directory}/doc_1*") == sorted(corpus[:2])


def test_resolve_files_errors_name_the_argument(tmp_path):
    with pytest.raises(UsageError, match=r"^train_files: no file matches '.*nothing\*'") as error:
        data.resolve_files(str(tmp_path / "nothing*"), "train_files")
    assert error.value.argument == "train_files"
    with pytest.raises(UsageError, match="file set is empty"):
        data.resolve_files(" , ", "train_files")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(UsageError, match="hold no text"):
        data.resolve_files(str(empty), "train_files")


def test_unreadable_directory_is_reported(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "a.txt").write_text("text")
    # chmod 0 binds no one when CI runs as root: the permission check itself
    # answers "no" for this directory, as it does for a locked one.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (
        os.fspath(path) != str(locked) and real_access(path, mode)))
    with pytest.raises(UsageError, match="directory .*locked.* is not readable"):
        data.resolve_files(str(locked), "train_files")


def test_pystdlib_corpus_is_real_python_without_tests():
    files = data.pystdlib_files()
    assert len(files) > 300
    assert all(f.endswith(".py") for f in files)
    assert not any(f"{os.sep}test{os.sep}" in f or "idlelib" in f for f in files)


def test_tokens_per_byte_counts_predicted_tokens(corpus):
    # Every byte and each document's <eos> are predicted; its <bos> is given.
    size = sum(os.path.getsize(p) for p in corpus)
    assert data.tokens_per_byte(corpus, BYTE) == pytest.approx((size + len(corpus)) / size)


def test_xz_reference_is_computed_per_file(corpus):
    import lzma

    compressed = sum(
        len(lzma.compress(open(p, "rb").read(), preset=9 | lzma.PRESET_EXTREME)) for p in corpus
    )
    size = sum(os.path.getsize(p) for p in corpus)
    assert data.xz_bits_per_byte(corpus) == pytest.approx(8 * compressed / size)


def test_shuffled_files_are_read_side_by_side_each_token_once(tmp_path):
    """Training reads several files at once (interleaved), each token still a target once."""
    paths = []
    for i, letter in enumerate("abcdefghij"):
        path = tmp_path / f"{letter}.txt"
        path.write_text(letter * (40 + 7 * i))
        paths.append(str(path))
    windows = [w.numpy() for w in data.token_windows(paths, BYTE, 8, shuffle_files=True, seed=3)]
    targets = np.concatenate([w[1:] for w in windows])
    sizes = [40 + 7 * i for i in range(10)]
    for letter, size in zip("abcdefghij", sizes):
        assert 0 < (targets == ord(letter)).sum() <= size  # no file read twice
    # Only each stream's last partial window is lost.
    assert (targets < 256).sum() >= sum(sizes) - STREAMS * 8
    # Neighbouring windows mostly come from different files.
    majority = [np.bincount(w[w < 256]).argmax() for w in windows]
    changes = sum(a != b for a, b in zip(majority, majority[1:]))
    assert changes > 0.8 * (len(windows) - 1)
    again = [w.numpy() for w in data.token_windows(paths, BYTE, 8, shuffle_files=True, seed=3)]
    np.testing.assert_array_equal(np.stack(windows), np.stack(again))


def test_short_windows_first_cuts_the_first_batches_and_keeps_every_token(corpus):
    tokenizer = ByteTokenizer()
    plain = data.text_dataset(corpus, tokenizer, 16, 2, repeat=True)  # one order for both
    warm = data.short_windows_first(plain, steps=2, factor=4)
    expected = [(x.numpy(), y.numpy()) for x, y in plain.take(4)]
    got = [(x.numpy(), y.numpy()) for x, y in warm.take(4)]
    for (x, y), (wx, wy) in zip(expected[:2], got[:2]):
        assert wx.shape == wy.shape == (8, 4)  # 4x the windows, 4x shorter
        np.testing.assert_array_equal(wx.reshape(2, 16), x)  # the same tokens, in order
        np.testing.assert_array_equal(wy.reshape(2, 16), y)
    for (x, y), (wx, wy) in zip(expected[2:], got[2:]):  # then the rest of the one stream
        np.testing.assert_array_equal(wx, x)
        np.testing.assert_array_equal(wy, y)
    with pytest.raises(UsageError, match="steps must be >= 0, got -1"):
        data.short_windows_first(plain, steps=-1)


def test_small_batches_first_splits_the_first_batches_and_keeps_every_token(corpus):
    tokenizer = ByteTokenizer()
    plain = data.text_dataset(corpus, tokenizer, 16, 8, repeat=True)  # one order for both
    warm = data.small_batches_first(plain, steps=8, factor=4)  # 8 small steps: 2 batches
    expected = [(x.numpy(), y.numpy()) for x, y in plain.take(4)]
    got = [(x.numpy(), y.numpy()) for x, y in warm.take(10)]
    assert [x.shape for x, _ in got] == [(2, 16)] * 8 + [(8, 16)] * 2
    small_x = np.concatenate([x for x, _ in got[:8]])
    small_y = np.concatenate([y for _, y in got[:8]])
    np.testing.assert_array_equal(small_x, np.concatenate([x for x, _ in expected[:2]]))
    np.testing.assert_array_equal(small_y, np.concatenate([y for _, y in expected[:2]]))
    for (x, y), (wx, wy) in zip(expected[2:], got[8:]):  # then the rest of the one stream
        np.testing.assert_array_equal(wx, x)
        np.testing.assert_array_equal(wy, y)
    with pytest.raises(UsageError, match="steps must be a multiple of 4, got 6"):
        data.small_batches_first(plain, steps=6)


def test_token_counts_of_a_batch_warm_up_invert():
    # 4 small steps of 25 tokens, then 100 a step.
    assert [data.tokens_after(s, 100, 4) for s in (0, 3, 4, 5, 10)] == [0, 75, 100, 200, 700]
    for tokens in range(1, 1200, 7):
        steps = data.steps_for_tokens(tokens, 100, 4)
        assert data.tokens_after(steps, 100, 4) >= tokens > data.tokens_after(steps - 1, 100, 4)
