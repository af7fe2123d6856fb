"""A hashed bigram embedding: a learned vector per (previous token, token) pair, hashed into rows."""

import keras
from keras import ops

# Products below stay under 2**31 (int32, as TFLite runs them): rows - 1 <= 46340.
MAX_ROWS = 46_341


@keras.saving.register_keras_serializable(package="keras_lm")
class BigramHashEmbedding(keras.layers.Layer):
    """Adds to each position a vector looked up by its bigram (modded-nanogpt's latest records).

    The pair `(previous, token)` is hashed to a row, `(previous * V + token)
    mod (rows - 1)` (`V` the vocabulary size: exact, with no collisions, when
    `V * V <= rows - 1`); the last row is position 0's, which has no
    previous token. The table starts at zero, so at initialisation the
    model is the one without it. It gives the first block the two-token
    context that otherwise costs it an attention head.

    `call(token_ids, previous=None)`: `token_ids` `(batch, time)`; `previous`
    `(batch,)` is the token before `token_ids[:, 0]` plus one, 0 for none (a
    decoding step's state: zero-filled state then means "start of text").
    Returns `(batch, time, width)`.

    Example:
    >>> layer = BigramHashEmbedding(vocabulary_size=259, rows=1024, width=8)
    >>> tuple(layer(keras.ops.ones((2, 5), "int32")).shape)
    (2, 5, 8)
    >>> [int(i) for i in layer.rows_of(keras.ops.convert_to_tensor([[3, 4]]))[0]]
    [1023, 781]
    """

    def __init__(self, vocabulary_size, rows, width, **kwargs):
        super().__init__(**kwargs)
        check_bigram_rows(rows)
        self.vocabulary_size = vocabulary_size
        self.rows = rows
        self.width = width

    def build(self, input_shape=None):
        # Named `embeddings`: weight decay leaves it alone and Muon gives it to AdamW,
        # as the token embedding.
        self.embeddings = self.add_weight(shape=(self.rows, self.width), initializer="zeros",
                                          name="embeddings")

    def rows_of(self, token_ids, previous=None):
        """The row of each position `(batch, time)` (see the class doc)."""
        token_ids = ops.cast(token_ids, "int32")
        if previous is None:
            previous = ops.zeros((ops.shape(token_ids)[0],), "int32")
        # Each position's previous token plus one; 0 where there is none.
        before = ops.concatenate([ops.cast(previous, "int32")[:, None], token_ids[:, :-1] + 1],
                                 axis=1)
        modulus = self.rows - 1
        factor = self.vocabulary_size % modulus
        hashed = ((before - 1) % modulus * factor % modulus + token_ids % modulus) % modulus
        return ops.where(before > 0, hashed, modulus)

    def call(self, token_ids, previous=None):
        return ops.take(self.embeddings, self.rows_of(token_ids, previous), axis=0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.width)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "rows": self.rows, "width": self.width}


def check_bigram_rows(rows):
    """Raises ValueError unless `rows` is 0 (off) or an integer in [2, MAX_ROWS]."""
    if isinstance(rows, bool) or not isinstance(rows, int) or not (
            rows == 0 or 2 <= rows <= MAX_ROWS):
        raise ValueError(f"bigram_hash must be 0 (off) or an integer in [2, {MAX_ROWS}] "
                         f"(the table's rows), got {rows!r}")
