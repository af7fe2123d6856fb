"""Byte-level tokenizer: 256 byte ids plus <pad>, <bos>, <eos>."""

import tensorflow as tf

from keras_lm.tokenizers.tokenizer import BOS, EOS, PAD, Tokenizer


class ByteTokenizer(Tokenizer):
    """Each byte of the UTF-8 text is one id (0-255); specials are 256-258.

    Lossless for any input, invalid UTF-8 included. We do not wrap
    `keras_hub.tokenizers.ByteTokenizer`: it has no special-token ids, drops
    id 0 (NUL bytes) when decoding and replaces invalid UTF-8, so it cannot
    round-trip arbitrary bytes.

    Example:
    >>> tokenizer = ByteTokenizer()
    >>> ids = tokenizer.encode("hé")
    >>> ids.numpy().tolist()
    [104, 195, 169]
    >>> tokenizer.decode_text(ids)
    'hé'
    """

    kind = "byte"

    def __init__(self, name=None, normalize="none"):
        pieces = [bytes([i]) for i in range(256)] + [b"", b"", b""]
        special_ids = {PAD: 256, BOS: 257, EOS: 258}
        super().__init__(pieces, special_ids, name=name, normalize=normalize)

    def _encode_scalar(self, text):
        # Faster than splitting into one-byte strings: one string, one read.
        return tf.cast(tf.io.decode_raw(text, tf.uint8), tf.int32)

    def _encode_flat(self, text):
        # (batch,) strings -> (batch, None) one-byte strings -> uint8 -> int32.
        # fixed_length=1 keeps the shape (n, 1) when n = 0 (all texts empty).
        pieces = tf.strings.bytes_split(text)
        return tf.ragged.map_flat_values(
            lambda p: tf.cast(tf.io.decode_raw(p, tf.uint8, fixed_length=1)[:, 0], tf.int32),
            pieces,
        )
