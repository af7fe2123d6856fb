"""Byte ranges of files (`FileSpan`) and reading them: the ground floor of file sets.

A file set's items are paths or `FileSpan`s (a run whose files cannot be
split by file is split inside each file: see `keras_lm.data.run_files`).
Everything that reads a file set, down to the tokenizers' vocabulary
samples, reads through these few functions.
"""

import dataclasses
import os

_BLOCK_BYTES = 1 << 16


@dataclasses.dataclass(frozen=True, order=True)
class FileSpan:
    """The bytes `[start, end)` of the file at `path`.

    Example:
    >>> span = FileSpan("/corpus/input.txt", 0, 950)
    >>> str(span), span.size
    ('/corpus/input.txt[0:950]', 950)
    """

    path: str
    start: int
    end: int

    def __post_init__(self):
        if not 0 <= self.start <= self.end:
            raise ValueError(f"FileSpan: need 0 <= start <= end, got [{self.start}:{self.end}]")

    @property
    def size(self):
        return self.end - self.start

    def __str__(self):
        return f"{self.path}[{self.start}:{self.end}]"


def span_of(item):
    """`item` as a `FileSpan`: a span stays itself, a path becomes its whole file.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("hello")
    >>> span_of(path).size, span_of(span_of(path)) == span_of(path)
    (5, True)
    """
    if isinstance(item, FileSpan):
        return item
    path = os.fspath(item)
    return FileSpan(path, 0, os.path.getsize(path))


def total_bytes(files):
    """Bytes of text in `files` (paths and spans): what an epoch reads.

    Example:
    >>> total_bytes([FileSpan("/any/file", 100, 350)])
    250
    """
    return sum(span_of(f).size for f in files)


def read_blocks(item, block_bytes=_BLOCK_BYTES, max_bytes=None):
    """Yields the bytes of `item` (a path or span), in blocks, at most `max_bytes` in all.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("head\\ntail\\n")
    >>> b"".join(read_blocks(FileSpan(path, 5, 10)))
    b'tail\\n'
    """
    span = span_of(item)
    left = span.size if max_bytes is None else min(span.size, max_bytes)
    with open(span.path, "rb") as f:
        f.seek(span.start)
        while left > 0:
            block = f.read(min(block_bytes, left))
            if not block:  # the file shrank since it was measured
                break
            left -= len(block)
            yield block


def read_span(item, max_bytes=None):
    """The bytes of `item` (a path or span), or its first `max_bytes`."""
    return b"".join(read_blocks(item, max_bytes=max_bytes))


def span_path(item):
    """The path of the file that `item` (a path or span) reads."""
    return item.path if isinstance(item, FileSpan) else os.fspath(item)
