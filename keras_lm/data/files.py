"""Resolving file sets (files, directories, globs) and splitting them."""

import glob
import os
import zlib

from keras_lm.data.corpora import corpus_files
from keras_lm.errors import UsageError


def resolve_files(patterns, name="files"):
    """Expands files, directories and glob patterns into a sorted file list.

    `patterns` is a list or one comma-separated string. A directory stands
    for every file below it. `name` is the argument named in errors.

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
        pattern = os.path.expanduser(pattern.strip())
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
    for path in files:
        if not os.access(path, os.R_OK):
            raise UsageError(f"{name}: file {path!r} is not readable", argument=name)
    if sum(os.path.getsize(p) for p in files) == 0:
        raise UsageError(f"{name}: the files hold no text (all {len(files)} are empty)",
                         argument=name)
    return sorted(files)


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
    root, so the split is the same on every machine and every run.

    Example:
    >>> train, val = split_files([f"/c/{i}.py" for i in range(100)], 0.1)
    >>> len(train) + len(val), 0 < len(val) < 30
    (100, True)
    """
    if not 0 < validation_fraction < 1:
        raise UsageError(
            f"validation_fraction must be in (0, 1), got {validation_fraction}",
            argument="validation_fraction")
    if len(files) < 2:
        raise UsageError(
            f"files: cannot split {len(files)} file into train and validation by file; "
            "pass validation files explicitly (val_files)", argument="files")
    root = os.path.commonpath(files) if len(files) > 1 else ""
    keyed = sorted((zlib.crc32(os.path.relpath(f, root).encode()), f) for f in files)
    threshold = validation_fraction * 2**32
    val = [f for key, f in keyed if key < threshold] or [keyed[0][1]]
    train = [f for f in files if f not in set(val)]
    if not train:
        train, val = [f for f in files if f != keyed[-1][1]], [keyed[-1][1]]
    return sorted(train), sorted(val)


def run_files(corpus="pystdlib", train_files=None, val_files=None, validation_fraction=0.05):
    """The `(train, validation)` file lists of a run, as training resolves them.

    `train_files` (files, directories or globs) or else the built-in `corpus`;
    `val_files`, or else a deterministic split of the training files. `eval`,
    `export` and the probes call it with a finished run's settings and find
    the same validation text.

    Example:
    >>> train, val = run_files()  # the Python standard library, split by file
    >>> len(train) > len(val) > 0
    True
    """
    if train_files:
        train = resolve_files(train_files, "train_files")
    else:
        train = corpus_files(corpus)
    if val_files:
        return train, resolve_files(val_files, "val_files")
    return split_files(train, validation_fraction)
