"""The small base class both model families share: compile defaults."""

import keras
import keras_hub
import tensorflow as tf

from keras_lm import compat
from keras_lm.metrics import TokenAccuracy
from keras_lm.optimizers import make_optimizer
from keras_lm.prompt_template import PromptTemplate


class LanguageModel(keras.Model):
    """A `keras.Model` mapping token ids `(batch, time)` to next-token logits.

    Subclasses build their layers in `__init__` and define `call` (training,
    whole sequences) and the step API that generation and export run:

    - `initial_state(batch_size, max_length)` -> state, a dict of tensors
      with static shapes (a key/value cache, or LSTM `h`/`c`);
    - `prefill(token_ids, state)` -> `(logits, state)`: a whole prompt
      `(batch, time)` at positions `0..time-1`, logits `(batch, time, vocab)`;
    - `decode(token_ids, state, position)` -> `(logits, state)`: one token
      per row `(batch,)` at scalar `position`, logits `(batch, vocab)`.

    This base gives `generate` on top of the step API, a training step that
    also reports the gradient global norm (`gradient_norm` in the logs), and
    `compile` defaults for language modelling, each overridable:

    - loss: sparse cross-entropy from logits, ignoring `pad_id`;
    - metrics: perplexity and token accuracy (padding ignored);
    - optimizer: a name (`adamw`, `adam`, `sgd`, `momentum`, `muon`, `lion`)
      resolved with warm-up + cosine decay (or `schedule="wsd"`: warm-up /
      stable / decay over the last `decay_fraction`) over `total_steps` and
      global-norm clipping, `beta2` and muon's `adam_learning_rate` as in
      `keras_lm.optimizers.make_optimizer`; or any `keras.optimizers.Optimizer`;
    - `jit_compile="auto"`: the family's measured choice (`jit_compile_default`):
      XLA for the Transformer (Keras turns XLA off on CPU, but the `base`
      Transformer trains 2x faster with it here), none for the LSTM (slower
      with XLA, and out of memory at `base`). See BENCHMARKS.md.
    """

    jit_compile_default = True
    # Generation prefills at most this many prompt tokens in one call.
    longest_prefill = 1024

    def __init__(self, vocabulary_size, sequence_length, pad_id=None, **kwargs):
        super().__init__(**kwargs)
        if vocabulary_size < 2:
            raise ValueError(f"vocabulary_size must be >= 2, got {vocabulary_size}")
        if sequence_length < 1:
            raise ValueError(f"sequence_length must be >= 1, got {sequence_length}")
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.pad_id = pad_id
        # Set past Keras' attribute tracking: a train-only figure, kept out of
        # `model.metrics` (evaluation would report it as 0) and out of the
        # weights that `.keras` files and checkpoints hold.
        object.__setattr__(self, "_gradient_norm", keras.metrics.Mean(name="gradient_norm"))

    def build(self, input_shape=None):
        # Run one forward pass so every sublayer creates its weights.
        self.call(keras.ops.zeros((1, 2), dtype="int32"))
        self.built = True

    def compile(
        self,
        optimizer="adamw",
        loss="auto",
        metrics="auto",
        *,
        learning_rate=1e-3,
        total_steps=None,
        warmup_steps=None,
        weight_decay=0.1,
        clipnorm=1.0,
        jit_compile="auto",
        beta2=None,
        schedule="cosine",
        decay_fraction=0.2,
        adam_learning_rate=None,
        **kwargs,
    ):
        """Configures training with language-modelling defaults.

        Example:
        >>> from keras_lm.models import TransformerLM
        >>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
        >>> model.compile("adamw", learning_rate=1e-3, total_steps=100)
        """
        if isinstance(optimizer, str):
            optimizer = make_optimizer(
                optimizer, learning_rate, total_steps, warmup_steps, weight_decay, clipnorm,
                beta2=beta2, schedule=schedule, decay_fraction=decay_fraction,
                adam_learning_rate=adam_learning_rate,
            )
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=self.pad_id
            )
        if metrics == "auto":
            metrics = [
                keras_hub.metrics.Perplexity(from_logits=True, mask_token_id=self.pad_id),
                TokenAccuracy(ignore_id=self.pad_id),
            ]
        if jit_compile == "auto":
            jit_compile = self.jit_compile_default
        super().compile(
            optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile, **kwargs
        )

    def train_step(self, data):
        """Keras' TensorFlow `train_step`, plus the gradient global norm.

        The same forward pass, loss, update and metrics as Keras 3's own
        step (the documented way to customise `fit`); it adds `gradient_norm`
        to the logs: the global norm of the gradients before clipping,
        averaged over the steps since the metrics were last reset, like the
        loss. TensorBoard shows it as `epoch_gradient_norm`.

        Under a `tf.distribute` strategy with several replicas the norm is
        that of the gradients summed over all replicas (the gradient of the
        global batch), and clipping applies to that sum, as on one device:
        Keras 3 itself clips each replica's share before summing them (see
        `keras_lm.compat.summed_and_clipped`).

        Example:
        >>> from keras_lm.models import TransformerLM
        >>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
        >>> model.compile("adamw", run_eagerly=True)  # eager: no tracing for 1 step
        >>> x = keras.ops.ones((2, 8), "int32")
        >>> history = model.fit(x, x, epochs=1, verbose=0)
        >>> history.history["gradient_norm"][0] > 0
        True
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
            # Keras scales the loss down by the replica count under a
            # tf.distribute strategy; the tracker records the unscaled loss.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            compat.track_loss(self, loss * replicas, tf.shape(x)[0])
            scaled_loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        gradients = tape.gradient(scaled_loss, weights)
        if replicas > 1 and not isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            gradients, norm = compat.summed_and_clipped(gradients, self.optimizer, replicas)
        else:
            norm = tf.linalg.global_norm(gradients)  # before the optimizer clips them
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            norm = norm / tf.cast(self.optimizer.dynamic_scale, norm.dtype)
        self.optimizer.apply_gradients(zip(gradients, weights))
        self._gradient_norm.update_state(norm)
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        return compat.reducible_logs({**logs, "gradient_norm": self._gradient_norm.result()})

    def make_train_function(self, force=False):
        compat.build_optimizer(self)  # so that the step traces once, not twice
        return super().make_train_function(force)

    def test_step(self, data):
        return compat.reducible_logs(super().test_step(data))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # A Keras workaround: see `keras_lm.compat.symbolic_build_inputs`.
        iterator, data_batch = compat.symbolic_build_inputs(self, iterator, data_batch)
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def reset_metrics(self):
        super().reset_metrics()
        self._gradient_norm.reset_state()

    def initial_state(self, batch_size, max_length=None):
        raise NotImplementedError

    def prefill(self, token_ids, state):
        """Runs a prompt `(batch, time)` from position 0; see the class doc."""
        return self._forward_cached(token_ids, state, 0)

    def decode(self, token_ids, state, position):
        """Runs one token per row `(batch,)` at `position`; see the class doc."""
        logits, state = self._forward_cached(token_ids[:, None], state, position)
        return logits[:, 0], state

    def _forward_cached(self, token_ids, state, start_index):
        raise NotImplementedError

    def hidden_states(self, token_ids, training=None):
        """The final hidden states `(batch, time, width)` the output head reads."""
        raise NotImplementedError

    def embed_tokens(self, token_ids):
        """The token embeddings `(batch, time, width)` the model reads first.

        With `logits_from_embeddings` / `hidden_states_from_embeddings` the
        forward pass runs from embeddings instead of ids: the inputs that
        attribution methods (`keras_lm.interpret`) interpolate and
        differentiate. Positions are added after this point, so they stay.

        Example:
        >>> from keras_lm.models import LSTMLM
        >>> model = LSTMLM.from_preset("tiny", vocabulary_size=259)
        >>> ids = keras.ops.ones((1, 3), "int32")
        >>> logits = model.logits_from_embeddings(model.embed_tokens(ids))
        >>> bool(keras.ops.all(keras.ops.isclose(logits, model(ids))))
        True
        """
        return self.token_embedding(token_ids)

    def logits_from_embeddings(self, embeddings, training=None):
        """`call` from `embed_tokens(token_ids)` (or any embeddings of that shape)."""
        raise NotImplementedError

    def hidden_states_from_embeddings(self, embeddings, training=None):
        """`hidden_states` from `embed_tokens(token_ids)` (or any embeddings of that shape)."""
        raise NotImplementedError

    def step_hidden_states(self, token_ids):
        """`hidden_states` computed through the step API (`prefill` from the zero state).

        The same numbers as `hidden_states` up to float rounding, with the
        static shapes and builtin-only operators that export needs (the
        LSTM written out as matmuls, the Transformer through its cache):
        what a classifier head exports with. `token_ids` is `(batch, time)`,
        `time <= sequence_length`, with a static `time`.
        """
        batch, time = token_ids.shape[0], token_ids.shape[1]
        state = self.initial_state(batch if batch is not None else keras.ops.shape(token_ids)[0],
                                   time)
        return self._hidden_cached(token_ids, state, 0)[0]

    def _hidden_cached(self, token_ids, state, start_index):
        raise NotImplementedError

    def generate(self, prompts, max_new_tokens=100, *, tokenizer=None, apply_template=True,
                 **options):
        """Continues text prompts; see `keras_lm.generation.generate` for options.

        `tokenizer` defaults to the one `keras_lm.load` attached. A
        fine-tuned run's prompt template (`keras_lm.prompt_template`, read
        from the `run_config` that `keras_lm.load` attached) is applied to
        each prompt unless `apply_template=False`; a model trained from
        scratch has none.

        Example:
        >>> from keras_lm.models import TransformerLM
        >>> from keras_lm.tokenizers import ByteTokenizer
        >>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
        >>> texts = model.generate(["def ", "import"], 8, tokenizer=ByteTokenizer())
        >>> len(texts)
        2
        """
        from keras_lm.generation import generate

        tokenizer = tokenizer or getattr(self, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("tokenizer: generate needs a tokenizer to read text prompts, got None")
        if apply_template:
            template = PromptTemplate.from_run_config(getattr(self, "run_config", None))
            prompts = template.apply(prompts)
        return generate(self, tokenizer, prompts, max_new_tokens, **options)

    def get_compile_config(self):
        # A saved model is reloaded uncompiled: `compile` is cheap to call
        # again, and its defaults (a schedule tied to a run length) belong to
        # the run, not to the model.
        return None

    def get_config(self):
        return {
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "pad_id": self.pad_id,
            "name": self.name,
        }

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """Builds a model of a named size (see `keras_lm.models.presets`)."""
        from keras_lm.models.presets import preset_config

        return cls(**{**preset_config(cls.family, preset), **kwargs})
