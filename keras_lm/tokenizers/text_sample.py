"""Bounded samples of a corpus as Python text, and a count of its invalid UTF-8.

Vocabulary training reads a sample, not the corpus: `sample_text` takes up
to `max_bytes`, a block from each file in a spread order until the budget
is spent (not the first files only: a corpus sorted by name would give one
topic).

Example:
>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> paths = [os.path.join(root, f"{i}.txt") for i in range(3)]
>>> for i, p in enumerate(paths):
...     _ = open(p, "wb").write(b"ok \\xff" * (i + 1))
>>> sample = sample_text(paths, max_bytes=1 << 20)
>>> sample.invalid_sequences, len(sample.chunks)
(6, 3)
"""

import codecs
import dataclasses
import logging

import numpy as np

from keras_lm.file_spans import read_blocks, read_span

logger = logging.getLogger("keras_lm")
SAMPLE_BLOCK_BYTES = 1 << 16  # read from each chosen file at most


@dataclasses.dataclass
class TextSample:
    """`chunks` of text (str) and what decoding them found."""

    chunks: list
    bytes_read: int = 0
    invalid_sequences: int = 0
    files_with_invalid: list = dataclasses.field(default_factory=list)

    def report(self, what):
        """Logs one warning if any invalid UTF-8 was replaced (U+FFFD)."""
        if self.invalid_sequences:
            logger.warning(
                "%s: %d invalid UTF-8 sequence(s) in %d file(s) (first: %s) were replaced "
                "by U+FFFD", what, self.invalid_sequences, len(self.files_with_invalid),
                self.files_with_invalid[0],
            )


# One registered error handler; `_REPLACED[0]` counts its calls (reset per file).
_REPLACED = [0]


def _replace_and_count(error):
    _REPLACED[0] += 1
    return "\ufffd", error.end


codecs.register_error("keras_lm_replace_and_count", _replace_and_count)


def _counting_decoder():
    _REPLACED[0] = 0
    return codecs.getincrementaldecoder("utf-8")(errors="keras_lm_replace_and_count"), _REPLACED


def sample_text(files, max_bytes, block_bytes=SAMPLE_BLOCK_BYTES):
    """Up to `max_bytes` of text from `files`: up to `block_bytes` from each, in a spread order.

    The files are visited in a fixed pseudo-random order (seed 0), so the
    sample covers the whole list, not its first files, and the same files
    give the same sample. Invalid UTF-8 is replaced by U+FFFD and counted.
    `files` are paths or `keras_lm.data.FileSpan`s (a block from a span's start).
    """
    files = list(files)
    sample = TextSample(chunks=[])
    for index in np.random.default_rng(0).permutation(len(files)):
        if sample.bytes_read >= max_bytes:
            break
        path = files[index]
        data = read_span(path, min(block_bytes, max_bytes - sample.bytes_read))
        decoder, counter = _counting_decoder()
        sample.chunks.append(decoder.decode(data, final=False))
        sample.bytes_read += len(data)
        if counter[0]:
            sample.invalid_sequences += counter[0]
            sample.files_with_invalid.append(path)
    return sample


def count_invalid_utf8(files, block_bytes=1 << 20):
    """A `TextSample` (no chunks kept) counting invalid UTF-8 in whole files or spans, streaming."""
    sample = TextSample(chunks=[])
    for path in files:
        decoder, counter = _counting_decoder()
        for block in read_blocks(path, block_bytes):
            decoder.decode(block)
            sample.bytes_read += len(block)
        decoder.decode(b"", final=True)
        if counter[0]:
            sample.invalid_sequences += counter[0]
            sample.files_with_invalid.append(path)
    return sample
