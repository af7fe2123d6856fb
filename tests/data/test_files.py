"""Splitting a run's files inside each file when they cannot be split by file."""

import copy
import lzma
import os

import numpy as np
import pytest

from keras_lm import data
from keras_lm.data import FileSpan
from keras_lm.errors import UsageError
from keras_lm.tokenizers import ByteTokenizer, CharTokenizer
from keras_lm.tokenizers.text_sample import count_invalid_utf8, sample_text

BYTE = ByteTokenizer()


def write_lines(path, count, text="line {i} of some text\n"):
    """A file of `count` numbered lines; returns its path as a string."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(text.format(i=i) for i in range(count)))
    return str(path)


def read(span):
    with open(span.path, "rb") as f:
        return f.read()[span.start : span.end]


def test_one_file_is_split_inside_at_a_line_boundary(tmp_path):
    path = write_lines(tmp_path / "input.txt", 6000)
    size = os.path.getsize(path)
    train, val = files = data.run_files(train_files=path, validation_fraction=0.05)
    assert files.split == "within_files"
    assert train == [FileSpan(path, 0, val[0].start)]
    assert val == [FileSpan(path, val[0].start, size)]
    # The tail is validation: train + validation bytes are the file, in order.
    assert read(train[0]) + read(val[0]) == read(data.span_of(path))
    assert read(train[0]).endswith(b"\n")  # no line cut in two
    assert read(val[0]).startswith(b"line ")
    assert val[0].start >= size * 0.95 and val[0].start - size * 0.95 < 25  # within one line
    assert data.describe_split(files) == (
        f"1 file split inside at a line boundary: its last 5% ({val[0].size:,} bytes) "
        "is validation")


def test_split_point_is_the_first_line_start_at_or_after_the_fraction(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"0123456789\n" * 10)  # 110 bytes, lines start at multiples of 11
    assert data.files.split_point(str(path), 0.2) == 88  # the target, 88, is a line start
    assert data.files.split_point(str(path), 0.19) == 99  # target 89.1 -> next line start
    path.write_bytes(b"x" * 100)
    assert data.files.split_point(str(path), 0.5) == 100  # no newline: the file trains whole


def test_a_few_files_are_each_split_inside(tmp_path):
    paths = [write_lines(tmp_path / f"doc_{i}.txt", 2000 + 100 * i) for i in range(3)]
    train, val = files = data.run_files(train_files=",".join(paths), validation_fraction=0.1)
    assert files.split == "within_files"
    assert [s.path for s in train] == [s.path for s in val] == sorted(paths)
    for head, tail in zip(train, val):
        assert head.start == 0 and head.end == tail.start and tail.end == os.path.getsize(head.path)
        assert read(head).endswith(b"\n")
    assert data.describe_split(files).startswith("3 files split inside at a line boundary: "
                                                 "their last 10% (")


def test_twelve_files_are_split_by_file_as_before(tmp_path):
    paths = [write_lines(tmp_path / f"doc_{i:02}.txt", 20) for i in range(12)]
    files = data.run_files(train_files=str(tmp_path), validation_fraction=0.2)
    assert data.can_split_by_file(paths, 0.2)
    assert files.split == "by_file"
    assert tuple(files) == data.split_files(paths, 0.2)
    assert all(isinstance(f, str) for f in files.train + files.validation)
    assert data.describe_split(files).startswith(f"12 files split by file: {len(files[1])} held")


def test_files_that_would_hold_out_none_or_all_are_split_inside(tmp_path):
    paths = [write_lines(tmp_path / f"doc_{i:02}.txt", 200) for i in range(12)]
    keys = [key for key, _ in data.files._keyed_by_path(paths)]
    # Just below the smallest key no file is held out; just above the largest, all are.
    for fraction in (keys[0] / 2**32 * 0.99, min(keys[-1] / 2**32 * 1.01, 0.999)):
        assert not data.can_split_by_file(paths, fraction)
        files = data.run_files(train_files=str(tmp_path), validation_fraction=fraction,
                               min_validation_bytes=1)
        assert files.split == "within_files"
        assert [s.path for s in files.validation] == paths
    assert len(data.split_files(paths, keys[0] / 2**32 * 0.99)[1]) == 1  # its fallback, unchanged


def test_a_tiny_file_goes_wholly_to_training(tmp_path):
    big = write_lines(tmp_path / "big.txt", 6000)
    tiny = write_lines(tmp_path / "tiny.txt", 3)
    train, val = files = data.run_files(train_files=f"{big},{tiny}")
    assert FileSpan(tiny, 0, os.path.getsize(tiny)) in train
    assert [s.path for s in val] == [big]
    assert data.describe_split(files).endswith(
        "; 1 more trains whole (under 4,096 bytes of validation)")
    # A smaller minimum gives the tiny file a tail too.
    small = data.run_files(train_files=f"{big},{tiny}", validation_fraction=0.5,
                           min_validation_bytes=1)
    assert [s.path for s in small.validation] == [big, tiny]


def test_no_validation_text_at_all_is_a_usage_error(tmp_path):
    tiny = write_lines(tmp_path / "tiny.txt", 3)
    with pytest.raises(UsageError, match="validation_fraction or pass val_files") as error:
        data.run_files(train_files=tiny)
    assert error.value.argument == "val_files"


def test_short_files_fall_back_to_the_split_by_file(tmp_path):
    # Four files too short for a tail each: whole files are held out after all.
    paths = [write_lines(tmp_path / f"doc_{i}.txt", 20) for i in range(4)]
    files = data.run_files(train_files=",".join(paths))
    assert files.split == "by_file" and files == data.split_files(paths, 0.05)
    assert files.config_fields()["validation_split"] == "by_file"  # eval finds the same


def test_the_split_is_deterministic_and_can_be_forced(tmp_path):
    paths = [write_lines(tmp_path / f"doc_{i}.txt", 5000 + i) for i in range(3)]
    first = data.run_files(train_files=",".join(paths))
    assert first == data.run_files(train_files=",".join(reversed(paths)))
    assert first.config_fields() == {"validation_split": "within_files",
                                     "min_validation_bytes": 4096}
    again = data.run_files(train_files=",".join(paths), **first.config_fields())
    assert again == first and again.split == first.split
    # A run recorded before the rule existed split 2-9 files by file.
    assert data.run_files(train_files=",".join(paths), validation_split="by_file") == \
        data.split_files(paths, 0.05)
    with pytest.raises(UsageError) as error:
        data.run_files(train_files=paths[0], validation_split="by_line")
    assert error.value.argument == "validation_split"
    assert copy.deepcopy(first).split == "within_files"


def test_given_validation_files_are_kept(tmp_path):
    a, b = write_lines(tmp_path / "a.txt", 5), write_lines(tmp_path / "b.txt", 5)
    files = data.run_files(train_files=a, val_files=b)
    assert (files.split, tuple(files)) == ("given", ([a], [b]))
    assert data.describe_split(files) == "1 training file; 1 validation file given"


def head_and_tail(tmp_path, head_lines=300, tail_lines=300):
    """A file whose head is "a" lines and tail "é" lines; its two spans."""
    path = tmp_path / "two_parts.txt"
    head, tail = "aaaa aaa\n" * head_lines, "éé é ééé\n" * tail_lines
    path.write_text(head + tail, encoding="utf-8")
    cut = len(head.encode())
    return FileSpan(str(path), 0, cut), FileSpan(str(path), cut, os.path.getsize(path))


def test_text_dataset_reads_exactly_the_spans(tmp_path, monkeypatch):
    # Small chunks, so spans start and end inside chunks and a "é" straddles some.
    monkeypatch.setitem(data.text_dataset.__globals__, "CHUNK_BYTES", 7)
    head, tail = head_and_tail(tmp_path, 40, 40)
    other = write_lines(tmp_path / "other.txt", 10)
    files = [tail, other, head]
    stream = []
    for item in files:
        stream += [BYTE.bos_id] + list(data.read_span(item)) + [BYTE.eos_id]
    windows = [w.tolist() for w in data.token_windows(files, BYTE, 16).as_numpy_iterator()]
    assert len(windows) == (len(stream) - 1) // 16
    assert windows == [stream[i * 16 : i * 16 + 17] for i in range(len(windows))]
    # A character tokenizer sees whole characters across the chunk boundaries.
    chars = CharTokenizer(vocabulary=list("aé \n"))
    ids = np.concatenate([w[:-1] for w in data.token_windows([tail], chars, 30)])
    assert chars.unk_id not in ids
    assert chars.decode_text(ids[1:]) == read(tail).decode()[: len(ids) - 1]
    x, _ = next(iter(data.text_dataset([tail], BYTE, 8, 2)))
    assert set(x.numpy()[:, 1:].ravel()) <= set(read(tail))
    shuffled = data.token_windows(files, BYTE, 16, shuffle_files=True, seed=0)
    targets = np.concatenate([w[1:] for w in shuffled.as_numpy_iterator()])
    assert (targets < 256).sum() >= data.total_bytes(files) - 3 * 16  # 3 streams


def test_readers_read_only_the_bytes_of_spans(tmp_path):
    head, tail = head_and_tail(tmp_path)
    assert data.total_bytes([head, tail]) == os.path.getsize(head.path)
    # tokens per byte: every byte of the span and its <eos>.
    assert data.tokens_per_byte([tail], BYTE) == pytest.approx((tail.size + 1) / tail.size)
    assert data.xz_bits_per_byte([tail]) == pytest.approx(
        8 * len(lzma.compress(read(tail), preset=9 | lzma.PRESET_EXTREME)) / tail.size)
    windows = data.sample_windows([tail], BYTE, 16, 4)
    assert set(windows[:, 1:].ravel()) <= set(read(tail))
    assert windows.shape == (4, 17) and (windows == data.sample_windows([tail], BYTE, 16, 4)).all()
    assert set(data.sample_windows([head], BYTE, 16, 4)[:, 1:].ravel()) == set(b"a \n")
    sample = sample_text([tail, head], max_bytes=1 << 20)
    assert sorted(sample.chunks) == sorted([read(head).decode(), read(tail).decode()])
    assert sample.bytes_read == head.size + tail.size
    assert count_invalid_utf8([tail]).bytes_read == tail.size


def test_resolve_files_keeps_spans_mixed_with_paths(tmp_path):
    head, tail = head_and_tail(tmp_path)
    other = write_lines(tmp_path / "other.txt", 10)
    assert data.resolve_files([tail, other, head]) == [other, head, tail]
    with pytest.raises(UsageError, match="hold no text"):
        data.resolve_files([FileSpan(head.path, 5, 5)])
