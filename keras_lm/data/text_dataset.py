"""Text files -> windows of consecutive tokens: streamed by tf.data, or sampled.

`text_dataset` and `token_windows` stream every window of the files (for
training and evaluation); `sample_windows` takes a few at random from the
start of some of them (for calibrating and checking an exported model).
Each takes paths and `FileSpan`s (byte ranges of files), mixed: a span is
a document of its own, read from its first byte to its last.
"""

import codecs
import os

import numpy as np
import tensorflow as tf

from keras_lm.data.files import read_span, resolve_files, span_of
from keras_lm.errors import UsageError

# Files are read in chunks of this many bytes, never whole.
CHUNK_BYTES = 1 << 16
# `sample_windows` cuts its windows from this much of the start of each file.
SAMPLE_SOURCE_BYTES = 1 << 16
# Files read side by side (interleaved) when training shuffles.
STREAMS = 8


def text_dataset(
    files,
    tokenizer,
    sequence_length,
    batch_size,
    *,
    shuffle=False,
    repeat=False,
    seed=None,
    shuffle_buffer=2048,
):
    """A `tf.data.Dataset` of `(inputs, targets)` batches for language modelling.

    Streams `files` (paths or `FileSpan`s, each read in 64 KiB chunks), encodes each as
    `<bos> text <eos>`, packs the token stream into windows of
    `sequence_length + 1` tokens (consecutive windows overlap by one token, so
    every token is a target exactly once), then shuffles windows in a bounded
    buffer, batches and prefetches. Inputs are `window[:-1]`, targets
    `window[1:]`, both `(batch, sequence_length)` int32.

    With `repeat=True` (training) the file order is reshuffled every pass and
    the last partial batch is dropped; otherwise one pass keeps every window.

    Example:
    >>> import tempfile
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("hello world, " * 10)
    >>> ds = text_dataset([path], ByteTokenizer(), sequence_length=8, batch_size=2)
    >>> x, y = next(iter(ds))
    >>> x.shape, y.shape
    (TensorShape([2, 8]), TensorShape([2, 8]))
    """
    if int(sequence_length) < 2:
        raise UsageError(f"sequence_length must be >= 2, got {sequence_length}")
    if int(batch_size) <= 0:
        raise UsageError(f"batch_size must be > 0, got {batch_size}")
    windows = token_windows(
        files, tokenizer, sequence_length, shuffle_files=shuffle, repeat=repeat, seed=seed
    )
    if shuffle:
        windows = windows.shuffle(shuffle_buffer, seed=seed)
    batches = windows.batch(batch_size, drop_remainder=repeat)
    batches = batches.map(lambda w: (w[:, :-1], w[:, 1:]), num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def token_windows(files, tokenizer, sequence_length, *, shuffle_files=False, repeat=False, seed=None):
    """A dataset of int32 windows `(sequence_length + 1,)` of consecutive tokens.

    In order, one file after the other; with `shuffle_files` (training),
    `STREAMS` files are read side by side, their windows interleaved, so
    consecutive windows come from different files however large each file
    is. Memory stays bounded either way: each stream holds one 64 KiB chunk
    and a window's worth of tokens.
    """
    if not shuffle_files:
        files = _spans_dataset(files)
        files = files.repeat() if repeat else files
        return _pack(files.flat_map(_documents(tokenizer)), int(sequence_length))
    count = len(files)
    files = _spans_dataset(files)
    # A new order every pass, the same for every stream (each takes its own
    # share of it): a stateless shuffle keyed by (seed, pass). A stateful
    # `Dataset.shuffle` hands each stream's iterator a different order.
    seed = int(np.random.randint(2**31)) if seed is None else int(seed)
    passes = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)

    def one_pass(index):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), index])
        )

        def reorder(*columns):  # path, start, end, file size
            return tuple(tf.gather(column, order) for column in columns)

        return files.batch(count).map(reorder).unbatch()

    files = passes.flat_map(one_pass)
    streams = min(STREAMS, count)

    def stream(index):
        mine = files.shard(streams, index)  # every `streams`-th file of the order
        return _pack(mine.flat_map(_documents(tokenizer)), int(sequence_length))

    return tf.data.Dataset.range(streams).interleave(
        stream, cycle_length=streams, block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def sample_windows(files, tokenizer, length, count, *, argument="files"):
    """Up to `count` int32 arrays of `length + 1` consecutive tokens from `files`.

    Spread over the files: up to `count` of them, evenly spaced in sorted
    order, each giving windows at seeded random offsets within its first
    `SAMPLE_SOURCE_BYTES` (its text after `<bos>`; a span's own first bytes,
    invalid UTF-8 replaced by U+FFFD). The same files give the
    same windows. Raises UsageError naming `argument` when the files cannot
    be read or hold too little text.

    Example:
    >>> import tempfile
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("hello world, " * 10)
    >>> sample_windows([path], ByteTokenizer(), 8, 3).shape
    (3, 9)
    """
    files = resolve_files(files, argument)
    chosen = [files[int(i)] for i in np.linspace(0, len(files) - 1, min(count, len(files)))]
    per_file = -(-count // len(chosen))
    rng = np.random.default_rng(0)
    windows = []
    for path in chosen:
        try:
            raw = read_span(path, SAMPLE_SOURCE_BYTES)
        except OSError as error:
            raise UsageError(
                f"{argument}: cannot read {str(path)!r} ({error.strerror})", argument=argument
            ) from None
        # A character cut by the byte budget is dropped, not replaced.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(raw, final=len(raw) < SAMPLE_SOURCE_BYTES)
        ids = np.concatenate([[tokenizer.bos_id], tokenizer.encode(text).numpy()])
        if len(ids) > length:
            for start in rng.integers(0, len(ids) - length, per_file):
                windows.append(ids[start : start + length + 1].astype(np.int32))
    if not windows:
        raise UsageError(
            f"{argument}: no file holds {length + 1} tokens of text, got {len(files)} file(s)",
            argument=argument,
        )
    return np.stack(windows[:count])


def _spans_dataset(files):
    """`(path, start, end, file size)` of each of `files` (paths or spans)."""
    spans = [span_of(f) for f in files]
    sizes = [os.path.getsize(span.path) for span in spans]
    columns = ([s.path for s in spans], [s.start for s in spans], [s.end for s in spans], sizes)
    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(columns[0], tf.string), *(tf.constant(c, tf.int64) for c in columns[1:])))


def _documents(tokenizer):
    """`document_tokens` as a `flat_map` function of `_spans_dataset`'s elements."""
    return lambda path, start, end, file_size: document_tokens(
        path, tokenizer, start, end, file_size)


def document_tokens(path, tokenizer, start, end, file_size):
    """The chunks of ids of a file's bytes `[start, end)`: `[<bos>]`, the text's ids..., `[<eos>]`.

    `file_size` is the file's size: a fixed-length record reader skips
    `start` bytes of header and `file_size - end` of footer, and needs the
    sizes to read the last, shorter chunk (it rejects a partial record).

    Example:
    >>> import tempfile
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("head\\ntail\\n")
    >>> ds = document_tokens(path, ByteTokenizer(), 5, 10, 10)
    >>> bytes(int(i) for i in tf.concat(list(ds), 0)[1:-1])
    b'tail\\n'
    """
    start, end, file_size = (tf.cast(x, tf.int64) for x in (start, end, file_size))
    tail = (end - start) % CHUNK_BYTES
    chunks = tf.data.FixedLengthRecordDataset(
        path, CHUNK_BYTES, header_bytes=start, footer_bytes=file_size - end + tail)
    last = tf.data.FixedLengthRecordDataset(
        path, tf.maximum(tail, 1), header_bytes=end - tail, footer_bytes=file_size - end)
    chunks = chunks.concatenate(last.take(tf.minimum(tail, 1)))
    # An empty chunk marks the end of the document (real chunks are never empty).
    chunks = chunks.concatenate(tf.data.Dataset.from_tensors(tf.constant("")))
    text = chunks.scan(tf.constant(""), _cut_at_character_boundary)
    ids = text.map(tokenizer.encode)
    bos = tf.data.Dataset.from_tensors(tf.constant([tokenizer.bos_id], tf.int32))
    eos = tf.data.Dataset.from_tensors(tf.constant([tokenizer.eos_id], tf.int32))
    return bos.concatenate(ids).concatenate(eos)


def _cut_at_character_boundary(carry, chunk):
    """Scan step: emits whole UTF-8 characters, carries a split one onward.

    A character split between two chunks would otherwise decode as two
    replacement characters in a character-level tokenizer.
    """
    text = carry + chunk
    size = tf.strings.length(text)
    at_end = tf.equal(tf.strings.length(chunk), 0)
    cut = tf.where(at_end, size, _complete_prefix_length(text))
    return tf.strings.substr(text, cut, size - cut), tf.strings.substr(text, 0, cut)


def _complete_prefix_length(text):
    """Length of `text` without a trailing, incomplete UTF-8 sequence."""
    size = tf.strings.length(text)
    k = tf.minimum(size, 3)
    tail = tf.cast(tf.io.decode_raw(tf.strings.substr(text, size - k, k), tf.uint8), tf.int32)
    # Bytes a sequence needs, by its lead byte (0 for ASCII and continuations).
    needed = tf.where(tail >= 0xF0, 4, tf.where(tail >= 0xE0, 3, tf.where(tail >= 0xC0, 2, 0)))
    incomplete = tf.cast(needed > k - tf.range(k), tf.int32)
    # A sentinel 1 at the end makes "none incomplete" cut at `size`.
    first = tf.argmax(tf.concat([incomplete, [1]], 0), output_type=tf.int32)
    return size - k + first


def _pack(token_chunks, sequence_length):
    """Packs a stream of id chunks into overlapping windows, carrying the rest."""

    def step(carry, chunk):
        buffer = tf.concat([carry, chunk], axis=0)
        count = tf.maximum((tf.size(buffer) - 1) // sequence_length, 0)
        index = tf.range(count)[:, None] * sequence_length + tf.range(sequence_length + 1)
        # Keep the last window's final token: it is the next window's first.
        return buffer[count * sequence_length :], tf.gather(buffer, index)

    return token_chunks.scan(tf.zeros([0], tf.int32), step).unbatch()


def tokens_per_byte(files, tokenizer, max_bytes=8 << 20):
    """Predicted tokens per byte of text, over up to `max_bytes`.

    `files` are paths or `FileSpan`s (a span is a document of its own).
    Converts a loss in nats per token into bits per byte, the scale on which
    models with different tokenizers (and xz) compare. A document of `n`
    ids is coded as `n + 1` predictions: its ids and `<eos>` (its `<bos>`
    is given, never predicted), so that is what is counted.
    """
    sample, total = [], 0
    for item in files:
        if total >= max_bytes and sample:
            break
        sample.append(span_of(item))
        total += sample[-1].size
    if total == 0:
        raise UsageError("cannot measure tokens per byte: the files hold no text")
    ds = _spans_dataset(sample).flat_map(_documents(tokenizer))
    tokens = ds.reduce(tf.constant(0, tf.int64), lambda n, ids: n + tf.size(ids, tf.int64))
    return (int(tokens) - len(sample)) / total  # less one <bos> per document
