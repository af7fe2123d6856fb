"""A keras-hub causal LM's backbone behind keras_lm's model interface (the step API)."""

import keras
from keras import ops

from keras_lm.models.language_model import LanguageModel

# keras-hub backbone class -> (architecture, how its transformer layers take a cache).
# "stacked": `layer(x, self_attention_cache=(batch, 2, time, heads, head_dim),
# self_attention_cache_update_index=i)` (GPT-2, Llama, Qwen 3); "pair": `layer(x,
# cache=(key, value), cache_update_index=i)` (Gemma 3).
ARCHITECTURES = {
    "GPT2Backbone": ("gpt2", "stacked"),
    "Gemma3Backbone": ("gemma3", "pair"),
    "Llama3Backbone": ("llama3", "stacked"),
    "LlamaBackbone": ("llama", "stacked"),
    "Qwen3Backbone": ("qwen3", "stacked"),
}
# The context a rotary model is given when neither the caller nor its preset says.
DEFAULT_SEQUENCE_LENGTH = 2048


def backbone_architecture(backbone):
    """`(architecture, cache_style)` of a keras-hub backbone; ValueError if unsupported."""
    name = type(backbone).__name__
    if name not in ARCHITECTURES:
        supported = ", ".join(sorted({a for a, _ in ARCHITECTURES.values()}))
        raise ValueError(f"backbone: the architecture {name!r} is not supported (supported: "
                         f"{supported})")
    return ARCHITECTURES[name]


def cache_geometry(backbone):
    """`(key/value heads, head_dim)` of each layer's cache, per family."""
    architecture = backbone_architecture(backbone)[0]
    if architecture == "gpt2":
        return backbone.num_heads, backbone.hidden_dim // backbone.num_heads
    if architecture in ("gemma3", "qwen3"):
        return backbone.num_key_value_heads, backbone.head_dim
    return backbone.num_key_value_heads, backbone.hidden_dim // backbone.num_query_heads


@keras.saving.register_keras_serializable(package="keras_lm")
class HubCausalLM(LanguageModel):
    """A keras-hub backbone (GPT-2, Gemma 3, Llama 3, Qwen 3) as a keras_lm language model.

    The forward pass is keras-hub's own layers, called one by one: the token
    embedding (Gemma 3 scales it by `sqrt(hidden_dim)`; GPT-2 adds learned
    positions), each transformer layer (which keeps its family's details:
    Gemma 3's sliding-window local layers and their rotary base beside the
    global ones, QK-norm, grouped-query attention), the final norm and the
    reversible embedding as the head (tied or not, with Gemma's soft cap).

    The step API gives each layer its own cache entry, `layer_<i>_key` and
    `layer_<i>_value` of shape `(batch, max_length, kv_heads, head_dim)`, and
    calls each layer with its own entry only, so a step never copies the
    other layers' caches (keras-hub's `call_with_cache` re-stacks one
    `(batch, layers, 2, ...)` tensor at every token for GPT-2 and Llama).

    Args:
        backbone: a keras-hub backbone of a supported family (or its config).
        sequence_length: the longest context generation and scoring use
            (GPT-2: at most its `max_sequence_length`, the default).
        pad_id: the id the loss ignores (the tokenizer's `pad_id`).

    Example:
    >>> from keras_lm.pretrained.tiny_presets import tiny_causal_lm
    >>> model = HubCausalLM(tiny_causal_lm("gpt2").backbone)
    >>> state = model.initial_state(batch_size=1, max_length=8)
    >>> logits, state = model.prefill(keras.ops.ones((1, 3), "int32"), state)
    >>> logits, state = model.decode(keras.ops.ones((1,), "int32"), state, 3)
    >>> tuple(logits.shape) == (1, model.vocabulary_size)
    True
    """

    family = "keras_hub"
    # The state's time axis: `(batch, max_length, kv_heads, head_dim)`, as
    # keras-hub's layers update it (the `.tflite` export transposes it to
    # the `(1, heads, length, head_dim)` LiteRT-LM's engine reads).
    cache_time_axis = 1

    def __init__(self, backbone, sequence_length=None, pad_id=None, vocabulary_size=None,
                 **kwargs):
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        self.architecture, self.cache_style = backbone_architecture(backbone)
        limit = getattr(backbone, "max_sequence_length", None)  # learned positions
        if sequence_length is None:
            sequence_length = limit or DEFAULT_SEQUENCE_LENGTH
        if limit is not None and sequence_length > limit:
            raise ValueError(f"sequence_length must be <= the model's {limit} positions, "
                             f"got {sequence_length}")
        if vocabulary_size not in (None, backbone.vocabulary_size):
            raise ValueError(f"vocabulary_size must be the backbone's "
                             f"{backbone.vocabulary_size}, got {vocabulary_size}")
        kwargs.setdefault("dtype", backbone.dtype_policy)
        super().__init__(backbone.vocabulary_size, sequence_length, pad_id, **kwargs)
        self.backbone = backbone
        self.num_layers = backbone.num_layers
        self.kv_heads, self.head_dim = cache_geometry(backbone)
        self.build()

    @property
    def token_embedding(self):
        # A property, not a second attribute: the layer's weights are saved once.
        return self.backbone.token_embedding

    def call(self, token_ids, training=None):
        return self._logits(self.hidden_states(token_ids, training))

    def hidden_states(self, token_ids, training=None):
        """The final hidden states `(batch, time, hidden_dim)`, after the final norm."""
        return self.hidden_states_from_embeddings(self.embed_tokens(token_ids), training)

    def hidden_states_from_embeddings(self, embeddings, training=None):
        x = self._scale_and_position(embeddings, 0)
        for layer in self.backbone.transformer_layers:
            x = layer(x, training=training)  # each layer builds its causal mask
        return self.backbone.layer_norm(x)

    def logits_from_embeddings(self, embeddings, training=None):
        return self._logits(self.hidden_states_from_embeddings(embeddings, training))

    def _scale_and_position(self, x, start_index):
        # x: token embeddings (batch, time, hidden)
        if self.architecture == "gemma3":
            x = x * ops.cast(ops.sqrt(self.backbone.hidden_dim), x.dtype)
        if self.architecture == "gpt2":
            x = x + self.backbone.position_embedding(x, start_index=start_index)
        return x

    def _logits(self, hidden):
        # Logits in float32: the loss and sampling need the full range.
        return ops.cast(self.token_embedding(hidden, reverse=True), "float32")

    def initial_state(self, batch_size, max_length=None):
        """An empty cache: per layer `(batch, max_length, kv_heads, head_dim)` keys and values."""
        max_length = self.sequence_length if max_length is None else max_length
        if not 1 <= max_length <= self.sequence_length:
            raise ValueError(f"max_length must be in [1, sequence_length="
                             f"{self.sequence_length}], got {max_length}")
        shape = (batch_size, max_length, self.kv_heads, self.head_dim)
        return {f"layer_{i}_{part}": ops.zeros(shape, self.compute_dtype)
                for i in range(self.num_layers) for part in ("key", "value")}

    def _forward_cached(self, token_ids, state, start_index):
        hidden, state = self._hidden_cached(token_ids, state, start_index)
        return self._logits(hidden), state

    def _hidden_cached(self, token_ids, state, start_index):
        x = self._scale_and_position(self.embed_tokens(token_ids), start_index)
        new_state = {}
        for i, layer in enumerate(self.backbone.transformer_layers):
            key, value = state[f"layer_{i}_key"], state[f"layer_{i}_value"]
            if self.cache_style == "pair":
                x, (key, value) = layer(x, cache=(key, value), cache_update_index=start_index)
            else:
                # This layer's own cache only: (batch, 2, max_length, heads, head_dim).
                x, cache = layer(x, self_attention_cache=ops.stack((key, value), axis=1),
                                 self_attention_cache_update_index=start_index)
                key, value = cache[:, 0], cache[:, 1]
            new_state[f"layer_{i}_key"], new_state[f"layer_{i}_value"] = key, value
        return self.backbone.layer_norm(x), new_state

    def parameter_count(self):
        """The number of weights (the backbone's: the head is the embedding or its own)."""
        return int(self.backbone.count_params())

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "sequence_length": self.sequence_length,
            "pad_id": self.pad_id,
            "name": self.name,
        }
