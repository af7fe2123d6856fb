"""Causal multi-head self-attention, written out so every step is visible."""

import keras
from keras import ops
from keras_hub.layers import RotaryEmbedding


@keras.saving.register_keras_serializable(package="keras_lm")
class CausalSelfAttention(keras.layers.Layer):
    """Multi-head self-attention where position t sees positions <= t.

    Written with plain `keras.ops` (not `keras.layers.MultiHeadAttention`) so
    that the attention weights are at hand for inspection and the same
    projections serve training (`call`) and generation over a fixed-size
    key/value cache (`call_cached`).

    Args:
        num_heads: number of attention heads; must divide the input width
            unless `head_dim` is given.
        dropout: dropout rate on the attention weights.
        rotary: apply rotary position embeddings to queries and keys.
        head_dim: width of each head (default: input width // `num_heads`).
            Given, the heads may span less than the input width (a pruned
            layer): `qkv` is `3 * num_heads * head_dim` wide and `output`
            maps `num_heads * head_dim` back to the input width.
        qk_norm: normalise each head's queries and keys before rotary
            positions (the speedrun's QK-norm: bounded attention logits, so a
            higher learning rate stays stable). `False` (off), `"rms"` (or
            `True`) for RMS normalisation, `"layer"` for layer normalisation;
            one scale of `head_dim` shared by the heads.
        zero_init_output: start the output projection at zero, so the layer
            adds nothing to the residual stream at initialisation.
        value_embedding: the layer takes a value embedding (`value_embedding`
            argument of `call`/`call_cached`, `(batch, time, heads * head_dim)`,
            a lookup of the tokens in a table of the model's) and mixes it
            into its values: `v = a * v + b * value_embedding`, `a` and `b`
            learned, both starting at 0.5 (modded-nanogpt's value embeddings).

    The attention weights are computed inside the softmax either way but
    returned (kept alive) only with `call(..., return_attention=True)`.

    Example:
    >>> layer = CausalSelfAttention(num_heads=2)
    >>> tuple(layer(keras.ops.ones((1, 5, 8))).shape)
    (1, 5, 8)
    """

    def __init__(self, num_heads, dropout=0.0, rotary=False, qk_norm=False,
                 zero_init_output=False, head_dim=None, value_embedding=False, **kwargs):
        super().__init__(**kwargs)
        check_qk_norm(qk_norm)
        self.num_heads = num_heads
        self.dropout = dropout
        self.rotary = rotary
        self.qk_norm = qk_norm
        self.zero_init_output = zero_init_output
        self.given_head_dim = head_dim
        self.value_embedding = value_embedding

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if self.given_head_dim is None and hidden_dim % self.num_heads:
            raise ValueError(
                f"num_heads={self.num_heads} must divide hidden_dim={hidden_dim}"
            )
        self.head_dim = self.given_head_dim or hidden_dim // self.num_heads
        heads_width = self.num_heads * self.head_dim  # hidden_dim unless pruned
        self.qkv = keras.layers.Dense(3 * heads_width, name="qkv", dtype=self.dtype_policy)
        self.qkv.build(input_shape)
        self.output_dense = keras.layers.Dense(
            hidden_dim, name="output", dtype=self.dtype_policy,
            kernel_initializer="zeros" if self.zero_init_output else "glorot_uniform")
        self.output_dense.build((*input_shape[:-1], heads_width))
        self.query_norm = self.key_norm = None
        if self.qk_norm:
            # Over head_dim only: each head's vectors are normalised on their own.
            head_shape = (None, None, self.num_heads, self.head_dim)
            self.query_norm = _head_norm(self.qk_norm, "query_norm", self.dtype_policy)
            self.key_norm = _head_norm(self.qk_norm, "key_norm", self.dtype_policy)
            self.query_norm.build(head_shape)
            self.key_norm.build(head_shape)
        self.rotary_embedding = (
            RotaryEmbedding(dtype=self.dtype_policy) if self.rotary else None
        )
        self.attention_dropout = keras.layers.Dropout(self.dropout)
        self.value_mix = None
        if self.value_embedding:  # (a, b) of v = a * v + b * value_embedding
            self.value_mix = self.add_weight(shape=(2,), initializer=keras.initializers.Constant(0.5),
                                             name="value_mix")

    def call(self, x, training=None, return_attention=False, value_embedding=None):
        q, k, v = self._project(x, start_index=0, value_embedding=value_embedding)
        time = ops.shape(x)[1]
        causal = ops.tril(ops.ones((time, time), dtype="bool"))
        out, weights = self._attend(q, k, v, causal, training)
        return (out, weights) if return_attention else out

    def call_cached(self, x, key_cache, value_cache, start_index, value_embedding=None):
        """Attends from `x` at positions `start_index...` over a key/value cache.

        The keys and values of `x` are written into the caches at
        `start_index` (`slice_update`, which TFLite runs as its builtin
        DYNAMIC_UPDATE_SLICE); each query then sees the cache up to its own
        position. Cache slots past that hold stale values and are masked.

        Args:
            x: `(batch, time, hidden)` inputs at positions
                `start_index .. start_index + time - 1`.
            key_cache, value_cache: `(batch, heads, max_length, head_dim)`.
            start_index: scalar int32 position of `x[:, 0]`, or one position
                per row `(batch,)`: a server's batch whose rows joined at
                different times (`keras_lm.generation.SlotBatch`).
            value_embedding: the tokens' value embedding, with `value_embedding`.

        Returns:
            `(outputs, key_cache, value_cache)`.
        """
        if len(getattr(start_index, "shape", ())) == 1:
            return self._call_cached_rows(x, key_cache, value_cache, start_index, value_embedding)
        q, k, v = self._project(x, start_index, value_embedding=value_embedding)
        key_cache = ops.slice_update(key_cache, (0, 0, start_index, 0), ops.cast(k, key_cache.dtype))
        value_cache = ops.slice_update(
            value_cache, (0, 0, start_index, 0), ops.cast(v, value_cache.dtype)
        )
        query_positions = start_index + ops.arange(ops.shape(x)[1], dtype="int32")
        key_positions = ops.arange(ops.shape(key_cache)[2], dtype="int32")
        visible = key_positions[None, :] <= query_positions[:, None]  # (time, max_length)
        out, _ = self._attend(q, key_cache, value_cache, visible, training=False)
        return out, key_cache, value_cache

    def _call_cached_rows(self, x, key_cache, value_cache, start_index, value_embedding=None):
        """`call_cached` with a start position per row: each row writes and sees its own slots.

        A scatter writes the keys and values (a dynamic-update-slice takes
        one start for the whole batch); the result equals the scalar path's
        for each row.
        """
        positions = start_index[:, None] + ops.arange(ops.shape(x)[1], dtype="int32")  # (batch, time)
        q, k, v = self._project(x, 0, positions=positions, value_embedding=value_embedding)
        key_cache = _scatter_rows(key_cache, positions, k)
        value_cache = _scatter_rows(value_cache, positions, v)
        key_positions = ops.arange(ops.shape(key_cache)[2], dtype="int32")
        visible = key_positions[None, None, :] <= positions[:, :, None]  # (batch, time, slots)
        out, _ = self._attend(q, key_cache, value_cache, visible[:, None], training=False)
        return out, key_cache, value_cache

    def _project(self, x, start_index, positions=None, value_embedding=None):
        """Queries, keys and values, each `(batch, heads, time, head_dim)`.

        `positions` `(batch, time)`: each row's own positions (for rotary), instead of
        `start_index`; `value_embedding` is mixed into the values (see the class doc).
        """
        batch, time = ops.shape(x)[0], ops.shape(x)[1]
        qkv = ops.reshape(self.qkv(x), (batch, time, 3, self.num_heads, self.head_dim))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (batch, time, heads, head_dim)
        if self.value_mix is not None:
            if value_embedding is None:
                raise ValueError(f"layer {self.name} mixes a value embedding: pass value_embedding")
            extra = ops.reshape(ops.cast(value_embedding, v.dtype), ops.shape(v))
            mix = ops.cast(self.value_mix, v.dtype)
            v = mix[0] * v + mix[1] * extra
        if self.query_norm is not None:
            q, k = self.query_norm(q), self.key_norm(k)
        if self.rotary_embedding is not None:
            # Queries and keys in one call: the sines and cosines are computed once.
            qk = self.rotary_embedding(ops.stack([q, k], axis=2), start_index=start_index,
                                        positions=positions)
            q, k = qk[:, :, 0], qk[:, :, 1]
        return tuple(ops.transpose(t, (0, 2, 1, 3)) for t in (q, k, v))

    def _attend(self, q, k, v, visible, training):
        """Softmax attention of q over (k, v) where `visible` (queries, keys) allows."""
        scores = ops.einsum("bhqd,bhkd->bhqk", q, k) * self.head_dim**-0.5
        # Softmax in float32: under mixed precision, bfloat16 logits lose the ranks.
        scores = ops.where(visible, ops.cast(scores, "float32"), -1e9)
        if scores.shape[-1] == 1:
            # One key (a one-token text) takes all the weight; Keras' softmax
            # warns about a size-1 axis, so skip it.
            weights = ops.ones_like(scores)
        else:
            weights = ops.softmax(scores, axis=-1)  # (batch, heads, queries, keys)
        out = ops.einsum(
            "bhqk,bhkd->bqhd", ops.cast(self.attention_dropout(weights, training=training), v.dtype), v
        )
        batch, time = ops.shape(out)[0], ops.shape(out)[1]
        out = self.output_dense(ops.reshape(out, (batch, time, self.num_heads * self.head_dim)))
        return out, weights

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, dropout=self.dropout, rotary=self.rotary,
                      qk_norm=self.qk_norm, zero_init_output=self.zero_init_output,
                      head_dim=self.given_head_dim, value_embedding=self.value_embedding)
        return config


QK_NORMS = (None, False, True, "rms", "layer")


def _scatter_rows(cache, positions, update):
    """`cache[b, :, positions[b, t]] = update[b, :, t]` for every row `b` and time `t`.

    cache: `(batch, heads, slots, head_dim)`; positions: `(batch, time)`;
    update: `(batch, heads, time, head_dim)`.
    """
    batch, heads, time = ops.shape(update)[0], ops.shape(update)[1], ops.shape(update)[2]
    rows = ops.broadcast_to(ops.arange(batch, dtype="int32")[:, None, None], (batch, heads, time))
    head = ops.broadcast_to(ops.arange(heads, dtype="int32")[None, :, None], (batch, heads, time))
    slot = ops.broadcast_to(positions[:, None, :], (batch, heads, time))
    indices = ops.stack([rows, head, slot], axis=-1)  # (batch, heads, time, 3)
    return ops.scatter_update(cache, ops.reshape(indices, (-1, 3)),
                              ops.reshape(ops.cast(update, cache.dtype), (-1, ops.shape(update)[3])))


def check_qk_norm(qk_norm):
    """Raises ValueError unless `qk_norm` is off (False, None), True, 'rms' or 'layer'."""
    if qk_norm not in QK_NORMS:
        raise ValueError(f"qk_norm must be one of False, True, 'rms', 'layer', got {qk_norm!r}")


def _head_norm(kind, name, policy):
    """The normalisation of one head's vectors (`kind`: True/'rms' or 'layer')."""
    if kind == "layer":
        return keras.layers.LayerNormalization(epsilon=1e-5, name=name, dtype=policy)
    return keras.layers.RMSNormalization(epsilon=1e-6, name=name, dtype=policy)
