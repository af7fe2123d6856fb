"""Previous-token mixing ("smear"): each position adds a gated copy of the previous embedding."""

import keras
from keras import ops

# The gate reads this many leading channels of the current token's embedding
# (the speedrun's choice: a dozen numbers are enough to decide how much of
# the previous token to take, and the gate stays a few parameters).
GATE_CHANNELS = 12


@keras.saving.register_keras_serializable(package="keras_lm")
class Smear(keras.layers.Layer):
    """`x[t] + scale * sigmoid(x[t, :k] . gate) * x[t - 1]` over token embeddings.

    It hands layer 1 the previous token's identity at every position (what
    an induction head otherwise has to build with a previous-token head in an
    earlier layer), for `k + 1` parameters. modded-nanogpt's speedrun
    introduced it (its "smear" of the token embeddings one position forward);
    this is the same form: the gate is a dot product of the current
    embedding's first `k` channels (`k = min(12, width)`) with a weight
    vector, squashed by a sigmoid and multiplied by a learned `scale`. Both
    start at zero, so at initialisation the layer is the identity and the
    model is exactly the one without it; `scale` gets a gradient at the
    first step, and through it the gate.

    Both weights are vectors (no matrix), so Muon leaves them to its AdamW
    part, as the speedrun does.

    `call(x, previous)`: `x` `(batch, time, width)`; `previous` `(batch,
    width)` is the embedding before `x[:, 0]` (a decoding step's state), or
    None at the start of a text: position 0 then has no previous token and
    is left as it is.

    Example:
    >>> layer = Smear()
    >>> x = keras.ops.ones((2, 5, 16))
    >>> bool(keras.ops.all(layer(x) == x))  # the identity at initialisation
    True
    """

    def build(self, input_shape):
        width = input_shape[-1]
        self.gate_channels = min(GATE_CHANNELS, width)
        self.gate = self.add_weight(shape=(self.gate_channels,), initializer="zeros",
                                    name="gate")
        self.scale = self.add_weight(shape=(1,), initializer="zeros", name="scale")

    def call(self, x, previous=None):
        batch, width = ops.shape(x)[0], ops.shape(x)[2]
        if previous is None:
            previous = ops.zeros((batch, width), x.dtype)
        # Each position's previous embedding: (batch, time, width).
        shifted = ops.concatenate([ops.cast(previous, x.dtype)[:, None], x[:, :-1]], axis=1)
        logit = ops.matmul(x[..., : self.gate_channels], ops.cast(self.gate, x.dtype)[:, None])
        gate = ops.cast(self.scale, x.dtype) * ops.sigmoid(logit)  # (batch, time, 1)
        return x + gate * shifted

    def compute_output_shape(self, input_shape):
        return input_shape
