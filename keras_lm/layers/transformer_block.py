"""A pre-norm GPT block: x + attention(norm(x)), then x + mlp(norm(x))."""

import keras
from keras import ops

from keras_lm.layers.causal_self_attention import CausalSelfAttention


@keras.saving.register_keras_serializable(package="keras_lm")
class TransformerBlock(keras.layers.Layer):
    """Pre-norm decoder block with causal self-attention and an MLP.

    Args:
        num_heads, intermediate_dim: attention heads; MLP width (0: no MLP,
            an attention-only block, as in Olsson et al.'s and Zoology's
            small models).
        dropout: dropout on attention weights and residual branches.
        activation: the MLP's activation: any Keras name (`gelu`, `relu`,
            `silu`, ...) or `relu2`, ReLU squared (`relu(x) ** 2`, the
            speedrun's MLP).
        rotary: rotary positions in the attention.
        layer_norm_epsilon: epsilon of the two pre-norms.
        qk_norm: QK-norm in the attention (see `CausalSelfAttention`).
        zero_init_output: the residual output projections (attention's
            `output`, `mlp_out`) start at zero, so at initialisation the
            block returns its input unchanged.
        head_dim: each head's width (default: width // `num_heads`), so a
            block may have fewer heads than its width holds (a pruned block).
        value_embedding: the attention mixes a value embedding into its
            values (see `CausalSelfAttention`); `call` and `call_cached` then
            take it as `value_embedding`.

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
        qk_norm=False,
        zero_init_output=False,
        head_dim=None,
        value_embedding=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.value_embedding = value_embedding
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = activation
        self.rotary = rotary
        self.layer_norm_epsilon = layer_norm_epsilon
        self.qk_norm = qk_norm
        self.zero_init_output = zero_init_output

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        policy = self.dtype_policy
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="attention_norm", dtype=policy
        )
        self.attention = CausalSelfAttention(
            self.num_heads, self.dropout, self.rotary, qk_norm=self.qk_norm,
            zero_init_output=self.zero_init_output, head_dim=self.head_dim,
            value_embedding=self.value_embedding, name="attention", dtype=policy
        )
        # The layers are made in this order, and built after, because
        # making one draws its initializer's seed: another order would give
        # every model another initialisation than the one it had before.
        self.mlp_norm = self.mlp_in = self.mlp_out = None
        if self.intermediate_dim:  # 0: attention only
            self.mlp_norm = keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon, name="mlp_norm", dtype=policy
            )
            # ReLU squared is not a Keras activation name: applied in `_mlp`.
            self.mlp_in = keras.layers.Dense(
                self.intermediate_dim, activation=None if self.activation == "relu2" else
                self.activation, name="mlp_in", dtype=policy
            )
            self.mlp_out = keras.layers.Dense(
                hidden_dim, name="mlp_out", dtype=policy,
                kernel_initializer="zeros" if self.zero_init_output else "glorot_uniform")
        self.residual_dropout = keras.layers.Dropout(self.dropout)
        for layer in (self.attention_norm, self.attention, self.mlp_norm, self.mlp_in):
            if layer is not None:
                layer.build(input_shape)
        if self.mlp_out is not None:
            self.mlp_out.build((*input_shape[:-1], self.intermediate_dim))

    def call(self, x, training=None, return_attention=False, value_embedding=None):
        # The attention weights leave the layer only when asked for (the
        # TensorBoard attention view and the probes ask).
        h = self.attention(
            self.attention_norm(x), training=training, return_attention=return_attention,
            value_embedding=value_embedding,
        )
        if return_attention:
            h, weights = h
        x = x + self.residual_dropout(h, training=training)
        if self.mlp_in is not None:
            x = x + self.residual_dropout(self._mlp(x), training=training)
        return (x, weights) if return_attention else x

    def call_cached(self, x, key_cache, value_cache, start_index, value_embedding=None):
        """`call` at positions `start_index...` over a key/value cache (no dropout).

        Returns `(outputs, key_cache, value_cache)`; see
        `CausalSelfAttention.call_cached`.
        """
        h, key_cache, value_cache = self.attention.call_cached(
            self.attention_norm(x), key_cache, value_cache, start_index, value_embedding
        )
        x = x + h
        if self.mlp_in is not None:
            x = x + self._mlp(x)
        return x, key_cache, value_cache

    def _mlp(self, x):
        h = self.mlp_in(self.mlp_norm(x))  # (batch, time, intermediate_dim)
        if self.activation == "relu2":
            h = ops.square(ops.relu(h))
        return self.mlp_out(h)

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
            qk_norm=self.qk_norm,
            zero_init_output=self.zero_init_output,
            head_dim=self.head_dim,
            value_embedding=self.value_embedding,
        )
        return config
