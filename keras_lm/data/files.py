"""Resolving file sets (files, directories, globs) and splitting them.

A file set's items are paths, or `FileSpan`s (a byte range of a file, cut
at line boundaries): a run whose files cannot be split by file is split
inside each file instead (`run_files`), and every reader of file sets
(`text_dataset`, `tokens_per_byte`, `xz_bits_per_byte`, `sample_windows`,
`sample_text`) accepts both, mixed.
"""

import dataclasses
import glob
import math
import os
import zlib

from keras_lm.data.corpora import corpus_files
from keras_lm.errors import UsageError
from keras_lm.file_spans import (  # noqa: F401  (re-exported: part of keras_lm.data)
    FileSpan,
    read_blocks,
    read_span,
    span_of,
    span_path,
    total_bytes,
)

# A by-file split needs this many files: with fewer, one held-out file is a
# large, arbitrary share of the text (and often none is held out at all).
MIN_FILES_TO_SPLIT_BY_FILE = 10
# A file's validation tail shorter than this goes wholly to training: it
# would not hold one window of a typical context. `run_files` takes another.
MIN_VALIDATION_BYTES = 4096
# The rules `run_files` applies (`RunFiles.split`).
SPLITS = ("given", "by_file", "within_files")


def resolve_files(patterns, name="files"):
    """Expands files, directories and glob patterns into a sorted file list.

    `patterns` is a list or one comma-separated string. A directory stands
    for every file below it; a `FileSpan` stands for itself (its path made
    absolute). `name` is the argument named in errors.

    Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> _ = open(os.path.join(root, "a.txt"), "w").write("hello")
    >>> [os.path.basename(f) for f in resolve_files(root + "/*.txt")]
    ['a.txt']
    """
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    files = set()
    for pattern in patterns:
        if isinstance(pattern, FileSpan):
            files.add(dataclasses.replace(pattern, path=os.path.abspath(pattern.path)))
            continue
        pattern = os.path.expanduser(os.fspath(pattern).strip())
        if os.path.isdir(pattern):
            matched = _walk(pattern, name)
        else:
            matched = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
            for directory in glob.glob(pattern, recursive=True):
                if os.path.isdir(directory):
                    matched += _walk(directory, name)
        if not matched:
            raise UsageError(f"{name}: no file matches {pattern!r}", argument=name)
        files.update(os.path.abspath(p) for p in matched)
    if not files:
        raise UsageError(f"{name}: the file set is empty (got {patterns!r})", argument=name)
    for item in files:
        if not os.access(span_path(item), os.R_OK):
            raise UsageError(f"{name}: file {span_path(item)!r} is not readable", argument=name)
    if total_bytes(files) == 0:
        raise UsageError(f"{name}: the files hold no text (all {len(files)} are empty)",
                         argument=name)
    # Paths and spans mixed: in file order, a file's spans in byte order.
    return sorted(files, key=lambda f: (span_path(f), 0, 0) if isinstance(f, str) else
                  (f.path, f.start, f.end))


def _walk(directory, name):
    if not os.access(directory, os.R_OK | os.X_OK):
        raise UsageError(f"{name}: directory {directory!r} is not readable", argument=name)
    found = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        found += [os.path.join(root, n) for n in sorted(names)]
    return [p for p in found if os.path.isfile(p)]


def split_files(files, validation_fraction=0.05):
    """Splits files into (train, validation) deterministically, by file.

    A file's side depends only on its path relative to the files' common
    root, so the split is the same on every machine and every run. At least
    one file goes to each side (so 2 files are the minimum); `run_files`
    splits a file set this small inside its files instead.

    Example:
    >>> train, val = split_files([f"/c/{i}.py" for i in range(100)], 0.1)
    >>> len(train) + len(val), 0 < len(val) < 30
    (100, True)
    """
    _check_fraction(validation_fraction)
    if len(files) < 2:
        raise UsageError(
            f"files: cannot split {len(files)} file into train and validation by file; "
            "pass validation files explicitly (val_files)", argument="files")
    keyed = _keyed_by_path(files)
    val = _held_out(keyed, validation_fraction) or [keyed[0][1]]
    train = [f for f in files if f not in set(val)]
    if not train:
        train, val = [f for f in files if f != keyed[-1][1]], [keyed[-1][1]]
    return sorted(train), sorted(val)


def _check_fraction(validation_fraction):
    if not 0 < validation_fraction < 1:
        raise UsageError(
            f"validation_fraction must be in (0, 1), got {validation_fraction}",
            argument="validation_fraction")


def _keyed_by_path(files):
    """`(crc32 of the path relative to the common root, path)`, sorted."""
    root = os.path.commonpath(files) if len(files) > 1 else ""
    return sorted((zlib.crc32(os.path.relpath(f, root).encode()), f) for f in files)


def _held_out(keyed, validation_fraction):
    """The files whose key falls in the validation share (maybe none, maybe all)."""
    threshold = validation_fraction * 2**32
    return [f for key, f in keyed if key < threshold]


def can_split_by_file(files, validation_fraction=0.05):
    """Whether `files` split by file: >= 10 files, >= 1 held out and >= 1 left.

    The files held out are then exactly `split_files`' choice (its fallbacks,
    which force one file to a side, are not needed).

    Example:
    >>> can_split_by_file(["/c/input.txt"]), can_split_by_file([f"/c/{i}.py" for i in range(100)])
    (False, True)
    """
    if len(files) < MIN_FILES_TO_SPLIT_BY_FILE:
        return False
    held_out = _held_out(_keyed_by_path(files), validation_fraction)
    return 0 < len(held_out) < len(files)


def split_point(path, validation_fraction):
    """Where `path`'s validation tail starts: a line start near its last `validation_fraction`.

    The first byte that follows a newline and lies at or after byte
    `size * (1 - validation_fraction)` (never byte 0: the first line always
    trains); the file's size when no such byte exists (the whole file
    trains). Reads the file from there only.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("line one\\nline two\\nline three\\n")
    >>> split_point(path, 0.5), open(path).read()[split_point(path, 0.5):]
    (18, 'line three\\n')
    """
    size = os.path.getsize(path)
    # A newline just before the target makes the target itself a line start.
    offset = max(math.ceil(size * (1 - validation_fraction)) - 1, 0)
    for block in read_blocks(FileSpan(path, min(offset, size), size)):
        newline = block.find(b"\n")
        if newline >= 0:
            return offset + newline + 1
        offset += len(block)
    return size


def split_within_files(files, validation_fraction=0.05, min_validation_bytes=MIN_VALIDATION_BYTES):
    """Splits each file inside: its head trains, its tail (from `split_point`) validates.

    Returns `(train, validation)` lists of `FileSpan`s, in file order. A
    file whose tail would hold fewer than `min_validation_bytes` goes wholly
    to training (its tail is too short for a window of validation text).

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "input.txt")
    >>> _ = open(path, "w").write("a line of text\\n" * 1000)
    >>> train, val = split_within_files([path], 0.1, min_validation_bytes=100)
    >>> train[0].end == val[0].start, val[0].end, val[0].size
    (True, 15000, 1500)
    """
    _check_fraction(validation_fraction)
    train, val = [], []
    for path in sorted(files):
        size = os.path.getsize(path)
        # Skip the read when even the longest possible tail is too short.
        fits = size - math.ceil(size * (1 - validation_fraction)) >= min_validation_bytes
        cut = split_point(path, validation_fraction) if fits else size
        if size - cut < min_validation_bytes:
            cut = size
        train.append(FileSpan(path, 0, cut))
        if cut < size:
            val.append(FileSpan(path, cut, size))
    return train, val


class RunFiles(tuple):
    """A run's `(train, validation)` files, with `split`: the rule that made them.

    It unpacks and indexes as the pair (`train, val = run_files()`).
    `split` is one of `SPLITS`: "given" (`val_files`), "by_file" or
    "within_files" (items are `FileSpan`s); `config_fields()` is what a
    run's config.json records so that `run_files` makes the same split again.
    """

    def __new__(cls, train, validation, split, validation_fraction=None,
                min_validation_bytes=MIN_VALIDATION_BYTES):
        self = super().__new__(cls, (train, validation))
        self.split = split
        self.validation_fraction = validation_fraction
        self.min_validation_bytes = min_validation_bytes
        return self

    def __getnewargs__(self):  # copy and pickle rebuild it whole
        return (*self, self.split, self.validation_fraction, self.min_validation_bytes)

    @property
    def train(self):
        return self[0]

    @property
    def validation(self):
        return self[1]

    def config_fields(self):
        """The `run_files` arguments config.json records beside the run's files.

        Example:
        >>> RunFiles(["/c/a.txt"], ["/c/b.txt"], "by_file").config_fields()
        {'validation_split': 'by_file'}
        """
        fields = {"validation_split": self.split}
        if self.split == "within_files":
            fields["min_validation_bytes"] = self.min_validation_bytes
        return fields


def run_files(corpus="pystdlib", train_files=None, val_files=None, validation_fraction=0.05,
              validation_split=None, min_validation_bytes=MIN_VALIDATION_BYTES):
    """The `(train, validation)` files of a run, as training resolves them: a `RunFiles`.

    `train_files` (files, directories or globs) or else the built-in `corpus`;
    `val_files`, or else a deterministic split of the training files:

    - by file (`split_files`) when that is possible (`can_split_by_file`:
      10 files or more, and at least one held out and one left);
    - else inside each file (`split_within_files`): its head trains, its
      last `validation_fraction` of bytes, from a line boundary, validates;
      a file whose tail is under `min_validation_bytes` trains whole;
    - and when no file is long enough for that, by file after all (2 files
      or more).

    `validation_split` ("by_file" or "within_files") forces a rule: a run's
    config.json records the one applied (`RunFiles.config_fields`), so
    `eval`, `export` and the probes find the same validation text.
    `describe_split` says in one line what was done.

    Example:
    >>> train, val = run_files()  # the Python standard library, split by file
    >>> len(train) > len(val) > 0
    True
    >>> run_files().split
    'by_file'
    """
    if train_files:
        train = resolve_files(train_files, "train_files")
    else:
        train = corpus_files(corpus)
    if val_files:
        return RunFiles(train, resolve_files(val_files, "val_files"), "given")
    if validation_split not in (None, "by_file", "within_files"):
        raise UsageError(
            f"validation_split must be 'by_file' or 'within_files' (or None: chosen), got "
            f"{validation_split!r}", argument="validation_split")
    _check_fraction(validation_fraction)
    chosen = validation_split
    if chosen is None:
        chosen = "by_file" if can_split_by_file(train, validation_fraction) else "within_files"
    if chosen == "by_file":
        return RunFiles(*split_files(train, validation_fraction), "by_file", validation_fraction)
    train_spans, val_spans = split_within_files(train, validation_fraction, min_validation_bytes)
    if not val_spans and validation_split is None and len(train) >= 2:
        # Files too short to give a tail each: hold out whole files after all.
        return RunFiles(*split_files(train, validation_fraction), "by_file", validation_fraction)
    if not val_spans:
        raise UsageError(
            f"val_files: cannot hold out validation text: the {_count(train, 'file')} do not "
            f"split by file, and no file's last {_percent(validation_fraction)} holds "
            f"{min_validation_bytes:,} bytes (min_validation_bytes); raise "
            "validation_fraction or pass val_files",
            argument="val_files")
    return RunFiles(train_spans, val_spans, "within_files", validation_fraction,
                    min_validation_bytes)


def describe_split(files):
    """One line saying how a `RunFiles` was split, for the start of a run.

    Example:
    >>> print(describe_split(RunFiles([FileSpan("/c/in.txt", 0, 9500)],
    ...                               [FileSpan("/c/in.txt", 9500, 10000)], "within_files", 0.05)))
    1 file split inside at a line boundary: its last 5% (500 bytes) is validation
    """
    train, val = files
    if files.split == "given":
        return f"{_count(train, 'training file')}; {_count(val, 'validation file')} given"
    if files.split == "by_file":
        return (f"{_count(train + val, 'file')} split by file: {len(val):,} held out for "
                f"validation ({_percent(files.validation_fraction)} of files)")
    split = len(val)
    line = (f"{_count(val, 'file')} split inside at a line boundary: "
            f"{'its' if split == 1 else 'their'} last {_percent(files.validation_fraction)} "
            f"({total_bytes(val):,} bytes) is validation")
    whole = len(train) - split
    if whole:
        line += (f"; {whole:,} more train{'s' if whole == 1 else ''} whole (under "
                 f"{files.min_validation_bytes:,} bytes of validation)")
    return line


def _count(items, noun):
    return f"{len(items):,} {noun}{'' if len(items) == 1 else 's'}"


def _percent(fraction):
    return f"{fraction * 100:g}%"
