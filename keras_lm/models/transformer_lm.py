"""GPT-style decoder-only Transformer language model."""

import keras
from keras import ops
from keras_hub.layers import PositionEmbedding

from keras_lm.layers import TransformerBlock
from keras_lm.models.language_model import LanguageModel

POSITION_EMBEDDINGS = ("learned", "rotary")


@keras.saving.register_keras_serializable(package="keras_lm")
class TransformerLM(LanguageModel):
    """Token embedding, positions, pre-norm blocks, final norm, output head.

    Args:
        vocabulary_size: number of token ids.
        sequence_length: longest context the model reads (learned positions
            have this many rows).
        num_layers, num_heads, hidden_dim: depth, heads per layer, width.
        intermediate_dim: MLP width (default `4 * hidden_dim`).
        dropout: dropout on attention weights and residual branches.
        activation: MLP activation (`gelu`, `relu`, `silu`, ...).
        position_embedding: `learned` (added to tokens) or `rotary` (applied
            to queries and keys).
        tie_embeddings: reuse the token embedding as the output head.
        pad_id: id ignored by the default loss and metrics.

    Example:
    >>> model = TransformerLM(vocabulary_size=259, sequence_length=16,
    ...                       num_layers=1, num_heads=2, hidden_dim=8)
    >>> model(keras.ops.zeros((2, 16), "int32")).shape
    (2, 16, 259)
    """

    family = "transformer"

    def __init__(
        self,
        vocabulary_size,
        sequence_length=256,
        num_layers=4,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=None,
        dropout=0.0,
        activation="gelu",
        position_embedding="rotary",
        tie_embeddings=True,
        layer_norm_epsilon=1e-5,
        pad_id=None,
        **kwargs,
    ):
        super().__init__(vocabulary_size, sequence_length, pad_id, **kwargs)
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(
                f"position_embedding must be one of {POSITION_EMBEDDINGS}, "
                f"got {position_embedding!r}"
            )
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim or 4 * hidden_dim
        self.dropout = dropout
        self.activation = activation
        self.position_embedding = position_embedding
        self.tie_embeddings = tie_embeddings
        self.layer_norm_epsilon = layer_norm_epsilon

        policy = self.dtype_policy
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size,
            hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="token_embedding",
            dtype=policy,
        )
        self.learned_positions = (
            PositionEmbedding(sequence_length, name="position_embedding", dtype=policy)
            if position_embedding == "learned"
            else None
        )
        self.embedding_dropout = keras.layers.Dropout(dropout)
        self.blocks = [
            TransformerBlock(
                num_heads,
                self.intermediate_dim,
                dropout=dropout,
                activation=activation,
                rotary=position_embedding == "rotary",
                layer_norm_epsilon=layer_norm_epsilon,
                name=f"block_{i}",
                dtype=policy,
            )
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="final_norm", dtype=policy
        )
        self.head = (
            None
            if tie_embeddings
            else keras.layers.Dense(vocabulary_size, name="head", dtype=policy)
        )
        self.build()

    def call(self, token_ids, training=None, return_attention=False):
        x = self.token_embedding(token_ids)  # (batch, time, hidden)
        if self.learned_positions is not None:
            x = x + self.learned_positions(x)
        x = self.embedding_dropout(x, training=training)
        attention = []
        for block in self.blocks:
            x, weights = block(x, training=training, return_attention=True)
            attention.append(weights)  # (batch, heads, time, time)
        x = self.final_norm(x)
        if self.head is not None:
            logits = self.head(x)
        else:
            logits = ops.matmul(x, ops.transpose(ops.cast(self.token_embedding.embeddings, x.dtype)))
        # Logits in float32: the loss and sampling need the full range.
        logits = ops.cast(logits, "float32")  # (batch, time, vocabulary)
        return (logits, attention) if return_attention else logits

    def get_config(self):
        return {
            **super().get_config(),
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "activation": self.activation,
            "position_embedding": self.position_embedding,
            "tie_embeddings": self.tie_embeddings,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
