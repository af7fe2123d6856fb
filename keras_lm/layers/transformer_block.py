"""A pre-norm GPT block: x + attention(norm(x)), then x + mlp(norm(x))."""

import keras

from keras_lm.layers.causal_self_attention import CausalSelfAttention


@keras.saving.register_keras_serializable(package="keras_lm")
class TransformerBlock(keras.layers.Layer):
    """Pre-norm decoder block with causal self-attention and an MLP.

    `head_dim` (default: width // `num_heads`) sets each head's width, so
    a block may have fewer heads than its width holds (a pruned block).

    Example:
    >>> block = TransformerBlock(num_heads=2, intermediate_dim=16)
    >>> tuple(block(keras.ops.ones((1, 5, 8))).shape)
    (1, 5, 8)
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        activation="gelu",
        rotary=False,
        layer_norm_epsilon=1e-5,
        head_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = activation
        self.rotary = rotary
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        policy = self.dtype_policy
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="attention_norm", dtype=policy
        )
        self.attention = CausalSelfAttention(
            self.num_heads, self.dropout, self.rotary, head_dim=self.head_dim,
            name="attention", dtype=policy
        )
        self.mlp_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="mlp_norm", dtype=policy
        )
        self.mlp_in = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation, name="mlp_in", dtype=policy
        )
        self.mlp_out = keras.layers.Dense(hidden_dim, name="mlp_out", dtype=policy)
        self.residual_dropout = keras.layers.Dropout(self.dropout)
        for layer in (self.attention_norm, self.attention, self.mlp_norm, self.mlp_in):
            layer.build(input_shape)
        self.mlp_out.build((*input_shape[:-1], self.intermediate_dim))

    def call(self, x, training=None, return_attention=False):
        h, weights = self.attention(
            self.attention_norm(x), training=training, return_attention=True
        )
        x = x + self.residual_dropout(h, training=training)
        x = x + self.residual_dropout(self._mlp(x), training=training)
        return (x, weights) if return_attention else x

    def call_cached(self, x, key_cache, value_cache, start_index):
        """`call` at positions `start_index...` over a key/value cache (no dropout).

        Returns `(outputs, key_cache, value_cache)`; see
        `CausalSelfAttention.call_cached`.
        """
        h, key_cache, value_cache = self.attention.call_cached(
            self.attention_norm(x), key_cache, value_cache, start_index
        )
        x = x + h
        return x + self._mlp(x), key_cache, value_cache

    def _mlp(self, x):
        return self.mlp_out(self.mlp_in(self.mlp_norm(x)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            activation=self.activation,
            rotary=self.rotary,
            layer_norm_epsilon=self.layer_norm_epsilon,
            head_dim=self.head_dim,
        )
        return config
