"""Causal multi-head self-attention, written out so every step is visible."""

import keras
from keras import ops
from keras_hub.layers import RotaryEmbedding


@keras.saving.register_keras_serializable(package="keras_lm")
class CausalSelfAttention(keras.layers.Layer):
    """Multi-head self-attention where position t sees positions <= t.

    Written with plain `keras.ops` (not `keras.layers.MultiHeadAttention`) so
    that the attention weights are at hand for inspection and the same code
    can later run over an explicit key/value cache.

    Args:
        num_heads: number of attention heads; must divide the input width.
        dropout: dropout rate on the attention weights.
        rotary: apply rotary position embeddings to queries and keys.

    Example:
    >>> layer = CausalSelfAttention(num_heads=2)
    >>> layer(keras.ops.ones((1, 5, 8))).shape
    (1, 5, 8)
    """

    def __init__(self, num_heads, dropout=0.0, rotary=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.dropout = dropout
        self.rotary = rotary

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"num_heads={self.num_heads} must divide hidden_dim={hidden_dim}"
            )
        self.head_dim = hidden_dim // self.num_heads
        self.qkv = keras.layers.Dense(3 * hidden_dim, name="qkv", dtype=self.dtype_policy)
        self.qkv.build(input_shape)
        self.output_dense = keras.layers.Dense(hidden_dim, name="output", dtype=self.dtype_policy)
        self.output_dense.build(input_shape)
        self.rotary_embedding = (
            RotaryEmbedding(dtype=self.dtype_policy) if self.rotary else None
        )
        self.attention_dropout = keras.layers.Dropout(self.dropout)

    def call(self, x, training=None, return_attention=False):
        batch, time = ops.shape(x)[0], ops.shape(x)[1]
        qkv = ops.reshape(self.qkv(x), (batch, time, 3, self.num_heads, self.head_dim))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (batch, time, heads, head_dim)
        if self.rotary_embedding is not None:
            q, k = self.rotary_embedding(q), self.rotary_embedding(k)
        q, k, v = (ops.transpose(t, (0, 2, 1, 3)) for t in (q, k, v))  # (batch, heads, time, head_dim)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * self.head_dim**-0.5
        causal = ops.tril(ops.ones((time, time), dtype="bool"))
        # Softmax in float32: under mixed precision, bfloat16 logits lose the ranks.
        scores = ops.where(causal, ops.cast(scores, "float32"), -1e9)
        weights = ops.softmax(scores, axis=-1)  # (batch, heads, time, time)
        out = ops.matmul(
            ops.cast(self.attention_dropout(weights, training=training), v.dtype), v
        )
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (batch, time, -1))
        out = self.output_dense(out)
        return (out, weights) if return_attention else out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, dropout=self.dropout, rotary=self.rotary)
        return config
