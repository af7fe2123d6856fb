"""Stacked LSTM language model."""

import keras
from keras import ops

from keras_lm.models.language_model import LanguageModel


@keras.saving.register_keras_serializable(package="keras_lm")
class LSTMLM(LanguageModel):
    """Embedding, `num_layers` stacked LSTMs with dropout between, dense head.

    Args:
        vocabulary_size: number of token ids.
        sequence_length: context length used in training and generation (an
            LSTM has no positional limit; this is the window it was trained on).
        embedding_dim: width of the token embedding.
        hidden_dim: units of each LSTM layer.
        num_layers: number of stacked LSTM layers.
        dropout: dropout after the embedding and after each LSTM layer.
        pad_id: id ignored by the default loss and metrics.

    Example:
    >>> model = LSTMLM(vocabulary_size=259, embedding_dim=8, hidden_dim=16)
    >>> model(keras.ops.zeros((2, 5), "int32")).shape
    (2, 5, 259)
    """

    family = "lstm"
    # Keras' LSTM under XLA trained slower here and ran out of memory at the
    # `base` size (BENCHMARKS.md), so it compiles without XLA by default.
    jit_compile_default = False

    def __init__(
        self,
        vocabulary_size,
        sequence_length=256,
        embedding_dim=256,
        hidden_dim=512,
        num_layers=2,
        dropout=0.1,
        pad_id=None,
        **kwargs,
    ):
        super().__init__(vocabulary_size, sequence_length, pad_id, **kwargs)
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.dropout = dropout
        policy = self.dtype_policy
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="token_embedding", dtype=policy
        )
        self.lstm_layers = [
            keras.layers.LSTM(hidden_dim, return_sequences=True, name=f"lstm_{i}", dtype=policy)
            for i in range(num_layers)
        ]
        self.dropouts = [keras.layers.Dropout(dropout) for _ in range(num_layers + 1)]
        self.head = keras.layers.Dense(vocabulary_size, name="head", dtype=policy)
        self.build()

    def call(self, token_ids, training=None):
        x = self.dropouts[0](self.token_embedding(token_ids), training=training)
        for lstm, dropout in zip(self.lstm_layers, self.dropouts[1:]):
            x = dropout(lstm(x, training=training), training=training)  # (batch, time, hidden)
        return ops.cast(self.head(x), "float32")  # (batch, time, vocabulary)

    def get_config(self):
        return {
            **super().get_config(),
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
        }
