"""Stacked LSTM language model."""

import keras
import tensorflow as tf
from keras import ops

from keras_lm.models.language_model import LanguageModel
from keras_lm.models.layer_sizes import per_layer


@keras.saving.register_keras_serializable(package="keras_lm")
class LSTMLM(LanguageModel):
    """Embedding, `num_layers` stacked LSTMs with dropout between, dense head.

    Args:
        vocabulary_size: number of token ids.
        sequence_length: the window it trains on (what `get_config` records
            as `sequence_length`; `training_length` on the model).
        max_length: how many tokens (prompt and generated) generation, export
            and the probes may run it over (its `sequence_length` attribute,
            which they read). The state carries, so an LSTM reads and writes
            past its training window; None: the window, as before this
            argument existed. At least `sequence_length`.
        embedding_dim: width of the token embedding.
        hidden_dim: units of each LSTM layer, or a list, one count per layer
            (a pruned model).
        num_layers: number of stacked LSTM layers.
        dropout: dropout after the embedding and after each LSTM layer.
        pad_id: id ignored by the default loss and metrics.

    Example:
    >>> model = LSTMLM(vocabulary_size=259, embedding_dim=8, hidden_dim=16)
    >>> tuple(model(keras.ops.zeros((2, 5), "int32")).shape)
    (2, 5, 259)
    >>> long = LSTMLM(vocabulary_size=259, sequence_length=32, max_length=1024)
    >>> long.training_length, long.sequence_length  # trained on 32, writes up to 1024
    (32, 1024)
    """

    family = "lstm"
    # Keras' LSTM under XLA trained slower here and ran out of memory at the
    # `base` size (BENCHMARKS.md), so it compiles without XLA by default.
    jit_compile_default = False
    # Prefill is an unrolled loop (see `_forward_cached`): longer prompts go
    # on through the decode loop, as fast for a recurrence and compiled once.
    longest_prefill = 16

    def __init__(
        self,
        vocabulary_size,
        sequence_length=256,
        embedding_dim=256,
        hidden_dim=512,
        num_layers=2,
        dropout=0.1,
        pad_id=None,
        max_length=None,
        **kwargs,
    ):
        if max_length is not None and max_length < sequence_length:
            raise ValueError(f"max_length must be >= sequence_length={sequence_length} "
                             f"(None: the same), got {max_length}")
        # The base's sequence_length is the limit the step API's users read.
        super().__init__(vocabulary_size, max_length or sequence_length, pad_id, **kwargs)
        self.training_length = sequence_length
        self.max_length = max_length
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.layer_hidden_dims = per_layer(hidden_dim, num_layers, "hidden_dim")
        policy = self.dtype_policy
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="token_embedding", dtype=policy
        )
        self.lstm_layers = [
            keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{i}", dtype=policy)
            for i, units in enumerate(self.layer_hidden_dims)
        ]
        self.dropouts = [keras.layers.Dropout(dropout) for _ in range(num_layers + 1)]
        self.head = keras.layers.Dense(vocabulary_size, name="head", dtype=policy)
        self.build()

    def call(self, token_ids, training=None):
        x = self.hidden_states(token_ids, training=training)
        return ops.cast(self.head(x), "float32")  # (batch, time, vocabulary)

    def hidden_states(self, token_ids, training=None):
        """The last LSTM layer's outputs `(batch, time, hidden_dim)`: what the head reads.

        Example:
        >>> model = LSTMLM(vocabulary_size=259, embedding_dim=8, hidden_dim=16)
        >>> tuple(model.hidden_states(keras.ops.zeros((2, 5), "int32")).shape)
        (2, 5, 16)
        """
        return self.hidden_states_from_embeddings(self.token_embedding(token_ids), training)

    def hidden_states_from_embeddings(self, embeddings, training=None):
        """`hidden_states` from token embeddings (`embed_tokens`) instead of ids."""
        x = self.dropouts[0](embeddings, training=training)
        for lstm, dropout in zip(self.lstm_layers, self.dropouts[1:]):
            x = dropout(lstm(x, training=training), training=training)  # (batch, time, hidden)
        return x

    def logits_from_embeddings(self, embeddings, training=None):
        """`call` from token embeddings `(batch, time, embedding_dim)` instead of ids."""
        return ops.cast(self.head(self.hidden_states_from_embeddings(embeddings, training)),
                        "float32")

    def initial_state(self, batch_size, max_length=None):
        """Zero `h` and `c` `(batch, units)` per layer (`max_length` is unused:
        an LSTM's state does not grow with the text).

        Example:
        >>> model = LSTMLM(vocabulary_size=259, embedding_dim=8, hidden_dim=16)
        >>> state = model.initial_state(batch_size=1)
        >>> logits, state = model.prefill(keras.ops.ones((1, 3), "int32"), state)
        >>> logits, state = model.decode(keras.ops.ones((1,), "int32"), state, 3)
        >>> tuple(logits.shape)
        (1, 259)
        """
        return {
            f"layer_{i}_{part}": ops.zeros((batch_size, units), self.compute_dtype)
            for i, units in enumerate(self.layer_hidden_dims)
            for part in ("h", "c")
        }

    def _forward_cached(self, token_ids, state, start_index):
        x, new_state = self._hidden_cached(token_ids, state, start_index)
        return ops.cast(self.head(x), "float32"), new_state

    def _hidden_cached(self, token_ids, state, start_index):
        # The LSTM recurrence written out over the trained layers' own weights:
        # a Keras LSTM layer lowers to a WHILE loop over a TensorList, which
        # TFLite cannot run with builtin ops. With a static length (generation,
        # TFLite) the loop over time is unrolled; with a dynamic one (a
        # SavedModel signature) it is a scan.
        x = self.token_embedding(token_ids)  # (batch, time, embedding)
        new_state = {}
        for i, lstm in enumerate(self.lstm_layers):
            cell = lstm.cell
            kernel, recurrent_kernel, bias = (
                ops.cast(w, x.dtype) for w in (cell.kernel, cell.recurrent_kernel, cell.bias)
            )

            def step(carry, inputs_t, recurrent_kernel=recurrent_kernel):
                h, c = carry
                z = inputs_t + ops.matmul(h, recurrent_kernel)  # gates i, f, c, o
                input_gate, forget_gate, candidate, output_gate = ops.split(z, 4, axis=-1)
                c = ops.sigmoid(forget_gate) * c + ops.sigmoid(input_gate) * ops.tanh(candidate)
                h = ops.sigmoid(output_gate) * ops.tanh(c)
                return (h, c), h

            inputs = ops.matmul(x, kernel) + bias  # (batch, time, 4 * hidden)
            carry = (state[f"layer_{i}_h"], state[f"layer_{i}_c"])
            if token_ids.shape[1] is None:
                # tf.scan stacks the carried (h, c) of every step.
                hs, cs = tf.scan(
                    lambda carry, inputs_t: step(carry, inputs_t)[0],
                    ops.moveaxis(inputs, 1, 0),
                    initializer=carry,
                )
                carry = (hs[-1], cs[-1])
                x = ops.moveaxis(hs, 0, 1)  # (batch, time, hidden)
            else:
                outputs = []
                for t in range(token_ids.shape[1]):
                    carry, h = step(carry, inputs[:, t])
                    outputs.append(h)
                x = ops.stack(outputs, axis=1)  # (batch, time, hidden)
            new_state[f"layer_{i}_h"], new_state[f"layer_{i}_c"] = carry
        return x, new_state

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.training_length,
            "max_length": self.max_length,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
        }
