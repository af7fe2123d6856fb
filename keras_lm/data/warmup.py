"""Warm-ups of a training stream: shorter windows, or smaller batches, first.

Both keep one stream of windows, so no window is seen twice or skipped; the
first steps only see them cut differently. The step's shape changes once,
so a compiled train step compiles twice. `tokens_after` and
`steps_for_tokens` count tokens when the first steps are smaller.
"""

import math

import tensorflow as tf

from keras_lm.errors import UsageError

# Each warm-up divides a step's windows (or rows) by this.
WARMUP_FACTOR = 4


def short_windows_first(dataset, steps, factor=WARMUP_FACTOR):
    """`dataset`'s first `steps` batches cut into `factor` times shorter windows.

    A sequence-length warm-up that keeps every step's tokens: a batch of
    `(batch, length)` becomes `(batch * factor, length // factor)`, each
    window cut into `factor` consecutive pieces (the model sees the same
    tokens with less context), and from batch `steps` on `dataset` goes on
    unchanged.

    Example:
    >>> ds = tf.data.Dataset.from_tensors((tf.zeros((2, 8), tf.int32),) * 2).repeat(3)
    >>> [tuple(x.shape) for x, _ in short_windows_first(ds, 1)]
    [(8, 2), (2, 8), (2, 8)]
    """
    steps, factor = _check_steps(steps), int(factor)
    if steps == 0 or factor == 1:
        return dataset

    def cut(index, batch):
        def shorter(tensor):
            return tf.reshape(tensor, (-1, tf.shape(tensor)[1] // factor))

        return tuple(tf.cond(index < steps, lambda t=t: shorter(t), lambda t=t: t)
                     for t in batch)

    return dataset.enumerate().map(cut)


def small_batches_first(dataset, steps, factor=WARMUP_FACTOR):
    """A batch-size warm-up: `dataset`'s batches split into `factor` smaller ones
    until `steps` small batches have gone out, then its batches unchanged.

    `steps` counts the small steps (a multiple of `factor`): they read the
    first `steps // factor` batches, row by row, so the model takes `factor`
    times as many updates on those tokens. Each batch's rows must divide by
    `factor`.

    Example:
    >>> ds = tf.data.Dataset.from_tensors((tf.zeros((8, 3), tf.int32),) * 2).repeat(3)
    >>> [tuple(x.shape) for x, _ in small_batches_first(ds, 4)]
    [(2, 3), (2, 3), (2, 3), (2, 3), (8, 3), (8, 3)]
    """
    steps, factor = _check_steps(steps), int(factor)
    if steps % factor:
        raise UsageError(f"steps must be a multiple of {factor}, got {steps}", argument="steps")
    if steps == 0 or factor == 1:
        return dataset
    split_batches = steps // factor

    def split(index, batch):
        pieces = tf.where(index < split_batches, factor, 1)
        return tf.data.Dataset.from_tensor_slices(tuple(
            tf.reshape(t, tf.concat([[pieces, -1], tf.shape(t)[1:]], 0)) for t in batch))

    return dataset.enumerate().flat_map(split)


def tokens_after(steps, tokens_per_step, small_batch_steps=0, factor=WARMUP_FACTOR):
    """Tokens read by `steps` training steps when the first `small_batch_steps` read
    `tokens_per_step / factor` each (`small_batches_first`).

    Example:
    >>> tokens_after(10, 100), tokens_after(10, 100, small_batch_steps=4)
    (1000, 700)
    """
    small = min(steps, small_batch_steps)
    return small * tokens_per_step // factor + (steps - small) * tokens_per_step


def steps_for_tokens(tokens, tokens_per_step, small_batch_steps=0, factor=WARMUP_FACTOR):
    """The fewest steps that read at least `tokens` (the inverse of `tokens_after`).

    Example:
    >>> steps_for_tokens(1000, 100), steps_for_tokens(700, 100, small_batch_steps=4)
    (10, 10)
    """
    small_tokens = tokens_after(small_batch_steps, tokens_per_step, small_batch_steps, factor)
    if tokens <= small_tokens:
        return math.ceil(tokens * factor / tokens_per_step)
    return small_batch_steps + math.ceil((tokens - small_tokens) / tokens_per_step)


def _check_steps(steps):
    steps = int(steps)
    if steps < 0:
        raise UsageError(f"steps must be >= 0, got {steps}", argument="steps")
    return steps
