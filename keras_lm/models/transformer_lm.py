"""GPT-style decoder-only Transformer language model."""

import keras
from keras import ops
from keras_hub.layers import PositionEmbedding

from keras_lm.layers import BigramHashEmbedding, Smear, TransformerBlock, UNetSkips
from keras_lm.layers.bigram_hash_embedding import check_bigram_rows
from keras_lm.layers.causal_self_attention import check_qk_norm
from keras_lm.models.language_model import LanguageModel
from keras_lm.models.layer_sizes import default_head_dim, per_layer

POSITION_EMBEDDINGS = ("learned", "rotary")
# The step API's state entry of `smear`: the last token's embedding.
PREVIOUS_EMBEDDING = "previous_embedding"
# The step API's state entry of `bigram_hash`: the last token's id plus one (0: none).
PREVIOUS_TOKEN = "previous_token"


@keras.saving.register_keras_serializable(package="keras_lm")
class TransformerLM(LanguageModel):
    """Token embedding, positions, pre-norm blocks, final norm, output head.

    Args:
        vocabulary_size: number of token ids.
        sequence_length: longest context the model reads (learned positions
            have this many rows).
        num_layers, num_heads, hidden_dim: depth, heads per layer, width.
            `num_heads` may also be a list, one count per layer (a pruned
            model); then give `head_dim` unless the counts are equal.
        intermediate_dim: MLP width (default `4 * hidden_dim`), or a list,
            one width per layer; 0 leaves the MLP out (attention-only
            blocks, the toy models of induction-head and MQAR studies).
        head_dim: width of each attention head (default
            `hidden_dim // num_heads`). Each block's fused `qkv` projection
            is `3 * num_heads[i] * head_dim` wide.
        dropout: dropout on attention weights and residual branches.
        activation: MLP activation (`gelu`, `relu`, `silu`, ...), or `relu2`
            (ReLU squared).
        position_embedding: `learned` (added to tokens) or `rotary` (applied
            to queries and keys).
        tie_embeddings: reuse the token embedding as the output head.
        pad_id: id ignored by the default loss and metrics.
        qk_norm: normalise each head's queries and keys (`"rms"` or `True`,
            `"layer"`; default off), see `CausalSelfAttention`.
        zero_init_output: every block's residual output projections start
            at zero (each block is the identity at initialisation).
        logit_softcap: bound the logits to `(-cap, cap)` by
            `cap * tanh(logits / cap)`; None (default) leaves them as they are.
        smear: previous-token mixing (`keras_lm.layers.Smear`): each
            position adds a gated copy of the previous token's embedding
            (default off). Decoding then keeps the last embedding in its
            state (`previous_embedding`, `(batch, hidden_dim)`).
        value_embeddings: `N` extra token-embedding tables whose lookups are
            mixed into the attention values (modded-nanogpt's value
            embeddings): table `j` feeds block `j` and block
            `num_layers - N + j` (the first and last `N` blocks, U-net
            style). 0 (default) to `num_layers // 2`.
        unet_skips: the first half's block outputs, each with a learned
            weight starting at 1, are added to the second half's inputs in
            reverse order (`keras_lm.layers.UNetSkips`; default off).
        bigram_hash: rows of a hashed bigram embedding added to the token
            embeddings (`keras_lm.layers.BigramHashEmbedding`); 0 (default)
            is off. Decoding then keeps the last token's id in its state
            (`previous_token`, `(batch,)` int32, the id plus one).

    The defaults of the last seven are the behaviour of models saved before
    they existed, so those models load unchanged.

    Example:
    >>> model = TransformerLM(vocabulary_size=259, sequence_length=16,
    ...                       num_layers=1, num_heads=2, hidden_dim=8)
    >>> tuple(model(keras.ops.zeros((2, 16), "int32")).shape)
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
        qk_norm=False,
        zero_init_output=False,
        logit_softcap=None,
        head_dim=None,
        smear=False,
        value_embeddings=0,
        unet_skips=False,
        bigram_hash=0,
        **kwargs,
    ):
        super().__init__(vocabulary_size, sequence_length, pad_id, **kwargs)
        self.check_arguments(position_embedding=position_embedding, qk_norm=qk_norm,
                             logit_softcap=logit_softcap, smear=smear,
                             value_embeddings=value_embeddings, unet_skips=unet_skips,
                             num_layers=num_layers, bigram_hash=bigram_hash)
        self._set_sizes(num_layers, num_heads, hidden_dim, intermediate_dim, head_dim)
        self.dropout = dropout
        self.activation = activation
        self.position_embedding = position_embedding
        self.tie_embeddings = tie_embeddings
        self.layer_norm_epsilon = layer_norm_epsilon
        self.qk_norm = qk_norm
        self.zero_init_output = zero_init_output
        self.logit_softcap = logit_softcap
        self.smear = smear
        self.value_embeddings = value_embeddings
        self.unet_skips = unet_skips
        self.bigram_hash = bigram_hash
        self._make_layers()
        self.build()

    def _set_sizes(self, num_layers, num_heads, hidden_dim, intermediate_dim, head_dim):
        """The depth and widths, as given (for `get_config`) and per layer (for the blocks)."""
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = 4 * hidden_dim if intermediate_dim is None else intermediate_dim
        # Per-layer sizes: the scalar form (every model saved before pruning
        # existed) means the same size in every layer.
        self.layer_num_heads = per_layer(num_heads, num_layers, "num_heads")
        self.layer_intermediate_dims = per_layer(
            self.intermediate_dim, num_layers, "intermediate_dim", minimum=0
        )
        self.given_head_dim = head_dim
        self.head_dim = head_dim or default_head_dim(hidden_dim, self.layer_num_heads)

    def _make_layers(self):
        """The sublayers, from the hyperparameters set in `__init__`.

        Their attribute and layer names are the weights' paths in a `.keras`
        file: renaming one breaks loading every model saved before.
        """
        policy = self.dtype_policy
        self.token_embedding = keras.layers.Embedding(
            self.vocabulary_size,
            self.hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="token_embedding",
            dtype=policy,
        )
        self.learned_positions = (
            PositionEmbedding(self.sequence_length, name="position_embedding", dtype=policy)
            if self.position_embedding == "learned"
            else None
        )
        self.embedding_dropout = keras.layers.Dropout(self.dropout)
        self.blocks = [
            TransformerBlock(
                heads,
                intermediate,
                dropout=self.dropout,
                activation=self.activation,
                rotary=self.position_embedding == "rotary",
                layer_norm_epsilon=self.layer_norm_epsilon,
                qk_norm=self.qk_norm,
                zero_init_output=self.zero_init_output,
                head_dim=self.given_head_dim,
                value_embedding=self.value_table_of(i) is not None,
                name=f"block_{i}",
                dtype=policy,
            )
            for i, (heads, intermediate) in enumerate(
                zip(self.layer_num_heads, self.layer_intermediate_dims)
            )
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="final_norm", dtype=policy
        )
        self.head = (
            None
            if self.tie_embeddings
            else keras.layers.Dense(self.vocabulary_size, name="head", dtype=policy)
        )
        # Made last, so the other layers draw the initialisations they draw without it.
        self.smear_layer = Smear(name="smear", dtype=policy) if self.smear else None
        self.value_tables = [self._value_table(j) for j in range(self.value_embeddings)]
        self.skips = None
        if self.unet_skips:
            self.skips = UNetSkips(self.num_layers, name="unet_skips", dtype=policy)
            self.skips.build()
        self.bigram = None
        if self.bigram_hash:
            self.bigram = BigramHashEmbedding(self.vocabulary_size, self.bigram_hash,
                                              self.hidden_dim, name="bigram_embedding",
                                              dtype=policy)
            self.bigram.build()

    def value_table_of(self, layer):
        """The value-embedding table block `layer` reads, or None (see `value_embeddings`)."""
        count = self.value_embeddings
        if layer < count:
            return layer
        if layer >= self.num_layers - count:
            return layer - (self.num_layers - count)
        return None

    def _value_table(self, index):
        # As wide as the values of the blocks that read it; near zero at first
        # (the speedrun starts its tables at 0.01 scale), so the model begins
        # close to the one without them.
        users = [i for i in range(self.num_layers) if self.value_table_of(i) == index]
        widths = {self.layer_num_heads[i] * self.head_dim for i in users}
        if len(widths) != 1:
            raise ValueError(f"value_embeddings: blocks {users} share table {index} but have "
                             f"value widths {sorted(widths)}")
        return keras.layers.Embedding(
            self.vocabulary_size, widths.pop(),
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            name=f"value_embedding_{index}", dtype=self.dtype_policy)

    @staticmethod
    def check_arguments(position_embedding="rotary", qk_norm=False, logit_softcap=None,
                        intermediate_dim=None, smear=False, value_embeddings=0,
                        unet_skips=False, num_layers=None, bigram_hash=0, **_):
        """Raises ValueError for a bad choice among these arguments, before anything is
        built (training checks `--model_args` with it before it writes anything).

        Example:
        >>> TransformerLM.check_arguments(qk_norm="rms", logit_softcap=30.0)
        """
        check_qk_norm(qk_norm)
        for name, value in (("smear", smear), ("unet_skips", unet_skips)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        check_value_embeddings(value_embeddings, num_layers)
        check_bigram_rows(bigram_hash)
        if logit_softcap is not None and (
                isinstance(logit_softcap, bool) or not isinstance(logit_softcap, (int, float))
                or not logit_softcap > 0):
            raise ValueError(f"logit_softcap must be > 0 or None, got {logit_softcap!r}")
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(
                f"position_embedding must be one of {POSITION_EMBEDDINGS}, "
                f"got {position_embedding!r}"
            )
        if intermediate_dim is not None:  # one width, or one per layer; 0 leaves the MLP out
            widths = (intermediate_dim if isinstance(intermediate_dim, (list, tuple))
                      else [intermediate_dim])
            per_layer(widths, len(widths), "intermediate_dim", minimum=0)

    def call(self, token_ids, training=None, return_attention=False):
        x, attention = self._trunk(token_ids, training, return_attention)
        logits = self._logits(x)
        return (logits, attention) if return_attention else logits

    def hidden_states(self, token_ids, training=None):
        """The final hidden states `(batch, time, hidden_dim)`: what the output head reads.

        Example:
        >>> model = TransformerLM(259, sequence_length=16, num_layers=1,
        ...                       num_heads=2, hidden_dim=8)
        >>> tuple(model.hidden_states(keras.ops.zeros((2, 5), "int32")).shape)
        (2, 5, 8)
        """
        return self.final_norm(self._trunk(token_ids, training)[0])

    def hidden_states_from_embeddings(self, embeddings, training=None):
        """`hidden_states` from token embeddings (`embed_tokens`) instead of ids.

        Example:
        >>> model = TransformerLM(259, sequence_length=16, num_layers=1,
        ...                       num_heads=2, hidden_dim=8)
        >>> ids = keras.ops.ones((1, 4), "int32")
        >>> hidden = model.hidden_states_from_embeddings(model.embed_tokens(ids))
        >>> bool(keras.ops.all(keras.ops.isclose(hidden, model.hidden_states(ids))))
        True
        """
        return self.final_norm(self._trunk_from_embeddings(embeddings, training)[0])

    def logits_from_embeddings(self, embeddings, training=None):
        """`call` from token embeddings `(batch, time, hidden_dim)` instead of ids."""
        return self._logits(self._trunk_from_embeddings(embeddings, training)[0])

    def _trunk(self, token_ids, training, return_attention=False):
        """Hidden states before the final norm, and each layer's attention weights
        (`(batch, heads, time, time)`, only when `return_attention`, else `[]`)."""
        return self._trunk_from_embeddings(self.token_embedding(token_ids), training,
                                           return_attention, token_ids=token_ids)

    @property
    def ids_only_option(self):
        """The option (`"value_embeddings=N"` or `"bigram_hash=R"`) that needs token ids
        beside the embeddings, so the model has no forward pass from embeddings alone
        (gradient attributions); None when it has one."""
        if self.value_tables:
            return f"value_embeddings={self.value_embeddings}"
        if self.bigram is not None:
            return f"bigram_hash={self.bigram_hash}"
        return None

    def _trunk_from_embeddings(self, embeddings, training, return_attention=False,
                               token_ids=None):
        if token_ids is None and self.ids_only_option:
            raise ValueError(f"{self.ids_only_option}: a forward pass from embeddings has no "
                             "token ids for its tables; this model runs from token ids only")
        if self.smear_layer is not None:
            embeddings = self.smear_layer(embeddings)  # position 0 has no previous token
        if self.bigram is not None:
            embeddings = embeddings + self.bigram(token_ids)
        x = self.embedding_dropout(self._add_positions(embeddings, 0), training=training)
        attention = []

        def step(block, x, value_embedding, _):
            if not return_attention:
                return block(x, training=training, value_embedding=value_embedding)
            x, weights = block(x, training=training, return_attention=True,
                               value_embedding=value_embedding)
            attention.append(weights)
            return x

        return self._through_blocks(x, token_ids, step), attention

    def _through_blocks(self, x, token_ids, step):
        """`x` through the blocks, `step(block, x, value_embedding, i)` running block `i`,
        with the U-net skips (`unet_skips`) added between them."""
        tables = [table(token_ids) for table in self.value_tables]  # (batch, time, width) each
        kept = []  # the encoder half's outputs, for the skips
        for i, block in enumerate(self.blocks):
            source = None if self.skips is None else self.skips.source_of(i)
            if source is not None:
                x = self.skips(x, kept[source], index=source)
            table = self.value_table_of(i)
            x = step(block, x, None if table is None else tables[table], i)
            if self.skips is not None and i < self.skips.skip_count:
                kept.append(x)
        return x

    def initial_state(self, batch_size, max_length=None):
        """An empty key/value cache: per layer `(batch, heads, max_length, head_dim)`
        (`heads` that layer's own count).

        Example:
        >>> model = TransformerLM(259, sequence_length=16, num_layers=1,
        ...                       num_heads=2, hidden_dim=8)
        >>> state = model.initial_state(batch_size=1, max_length=16)
        >>> logits, state = model.prefill(keras.ops.ones((1, 3), "int32"), state)
        >>> logits, state = model.decode(keras.ops.ones((1,), "int32"), state, 3)
        >>> tuple(logits.shape)
        (1, 259)
        """
        max_length = self.sequence_length if max_length is None else max_length
        if not 1 <= max_length <= self.sequence_length:
            raise ValueError(
                f"max_length must be in [1, sequence_length={self.sequence_length}], "
                f"got {max_length}"
            )
        state = {
            f"layer_{i}_{part}": ops.zeros(
                (batch_size, heads, max_length, self.head_dim), self.compute_dtype
            )
            for i, heads in enumerate(self.layer_num_heads)
            for part in ("key", "value")
        }
        if self.smear_layer is not None:  # the embedding before the next token: none yet
            state[PREVIOUS_EMBEDDING] = ops.zeros((batch_size, self.hidden_dim), self.compute_dtype)
        if self.bigram is not None:  # the last token's id plus one: 0, none yet
            state[PREVIOUS_TOKEN] = ops.zeros((batch_size,), "int32")
        return state

    def _forward_cached(self, token_ids, state, start_index):
        x, new_state = self._trunk_cached(token_ids, state, start_index)
        return self._logits(x), new_state

    def _hidden_cached(self, token_ids, state, start_index):
        x, new_state = self._trunk_cached(token_ids, state, start_index)
        return self.final_norm(x), new_state

    def _trunk_cached(self, token_ids, state, start_index):
        embeddings = self.token_embedding(token_ids)  # (batch, time, hidden)
        new_state = {}
        if self.smear_layer is not None:
            # The state carries the raw embedding of the last token across calls.
            new_state[PREVIOUS_EMBEDDING] = embeddings[:, -1]
            embeddings = self.smear_layer(embeddings, previous=state[PREVIOUS_EMBEDDING])
        if self.bigram is not None:
            embeddings = embeddings + self.bigram(token_ids, previous=state[PREVIOUS_TOKEN])
            new_state[PREVIOUS_TOKEN] = ops.cast(token_ids[:, -1], "int32") + 1
        x = self._add_positions(embeddings, start_index)

        def step(block, x, value_embedding, i):
            key, value = f"layer_{i}_key", f"layer_{i}_value"
            x, new_state[key], new_state[value] = block.call_cached(
                x, state[key], state[value], start_index, value_embedding
            )
            return x

        return self._through_blocks(x, token_ids, step), new_state

    def _add_positions(self, x, start_index):
        # x: token embeddings (batch, time, hidden)
        if self.learned_positions is not None:
            x = x + self.learned_positions(x, start_index=start_index)
        return x

    def _logits(self, x):
        x = self.final_norm(x)
        if self.head is not None:
            logits = self.head(x)
        else:
            logits = ops.matmul(x, ops.transpose(ops.cast(self.token_embedding.embeddings, x.dtype)))
        # Logits in float32: the loss and sampling need the full range.
        logits = ops.cast(logits, "float32")  # (batch, time, vocabulary)
        if self.logit_softcap is not None:
            # Soft-capping: smooth, and bounded so no logit runs away early in training.
            logits = self.logit_softcap * ops.tanh(logits / self.logit_softcap)
        return logits

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
            "qk_norm": self.qk_norm,
            "zero_init_output": self.zero_init_output,
            "logit_softcap": self.logit_softcap,
            # Only when on: models saved before smear existed keep their config.
            **({"smear": True} if self.smear else {}),
            **({"value_embeddings": self.value_embeddings} if self.value_embeddings else {}),
            **({"unet_skips": True} if self.unet_skips else {}),
            **({"bigram_hash": self.bigram_hash} if self.bigram_hash else {}),
            # Only when given: a model with the default keeps the config (and
            # the .keras file) it had before per-layer sizes existed.
            **({"head_dim": self.given_head_dim} if self.given_head_dim else {}),
        }



def check_value_embeddings(value_embeddings, num_layers=None):
    """Raises ValueError unless `value_embeddings` is an int in [0, num_layers // 2]
    (the bound checked only when `num_layers` is given)."""
    if isinstance(value_embeddings, bool) or not isinstance(value_embeddings, int) or (
            value_embeddings < 0):
        raise ValueError(f"value_embeddings must be an integer >= 0, got {value_embeddings!r}")
    if isinstance(num_layers, int) and value_embeddings > num_layers // 2:
        raise ValueError(f"value_embeddings must be <= num_layers // 2 = {num_layers // 2} "
                         f"(the first and the last N blocks read the N tables), "
                         f"got {value_embeddings}")
