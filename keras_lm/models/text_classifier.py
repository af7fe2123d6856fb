"""A classifier on a trained language model: its backbone, a pooling, a dense head."""

import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_lm import compat
from keras_lm.errors import UsageError
from keras_lm.models.language_model import LanguageModel
from keras_lm.models.loading import load
from keras_lm.optimizers import make_optimizer

POOLINGS = ("last", "mean")


@keras.saving.register_keras_serializable(package="keras_lm")
class TextClassifier(keras.Model):
    """A language model's hidden states, pooled, then a dense layer over the labels.

    A text is read as `<bos> text <eos>` (`encode`), padded on the right
    with `pad_id` to a common length. The models are causal, so padding
    after a text changes nothing before it; the pooling then reads

    - `last`: the hidden state at the last real token (the `<eos>`), which
      has read the whole text;
    - `mean`: the mean of the hidden states of the real tokens.

    The head's logits are float32 `(batch, num_classes)`; `labels` (strings,
    saved with the model) name the classes in order.

    Args:
        backbone: a `keras_lm.models.LanguageModel` (Transformer or LSTM);
            the classifier trains it too (its output layer, unused, is frozen).
        labels: the class names, strings, at least two.
        pooling: `last` or `mean`.
        sequence_length: the longest input in tokens (default: the
            backbone's context); longer texts are cut (see `encode`).
        dropout: dropout on the pooled features.
        pad_id: the padding id (default: the backbone's).

    Example:
    >>> from keras_lm.models import TransformerLM
    >>> lm = TransformerLM.from_preset("tiny", vocabulary_size=259, pad_id=256)
    >>> classifier = TextClassifier(lm, labels=["cat", "dog"])
    >>> tuple(classifier(keras.ops.ones((3, 7), "int32")).shape)
    (3, 2)
    """

    def __init__(self, backbone, labels, pooling="last", sequence_length=None, dropout=0.0,
                 pad_id=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, LanguageModel):
            raise TypeError(f"backbone must be a keras_lm LanguageModel, got {type(backbone).__name__}")
        labels = [str(label) for label in labels]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise UsageError(f"labels must be at least two distinct strings, got {labels}",
                             argument="labels")
        if pooling not in POOLINGS:
            raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}",
                             argument="pooling")
        pad_id = backbone.pad_id if pad_id is None else pad_id
        if pad_id is None:
            raise UsageError("pad_id: the classifier needs a padding id and the backbone has "
                             "none, got None", argument="pad_id")
        sequence_length = sequence_length or backbone.sequence_length
        if not 2 <= sequence_length <= backbone.sequence_length:
            raise UsageError(f"sequence_length must be in [2, {backbone.sequence_length}] (the "
                             f"backbone's context), got {sequence_length}",
                             argument="sequence_length")
        self.backbone = backbone
        if getattr(backbone, "head", None) is not None:
            # The language model's own output layer reads nothing here: frozen,
            # so no optimizer state is kept for it (a tied one is the embedding).
            backbone.head.trainable = False
        self.labels = labels
        self.num_classes = len(labels)
        self.pooling = pooling
        self.sequence_length = int(sequence_length)
        self.dropout = dropout
        self.pad_id = int(pad_id)
        self.jit_compile_default = backbone.jit_compile_default
        policy = self.dtype_policy
        self.feature_dropout = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(len(labels), name="classifier_head", dtype=policy)
        self.call(ops.zeros((1, 2), "int32"))  # create every weight now
        self.built = True

    def call(self, token_ids, training=None):
        hidden = self.backbone.hidden_states(token_ids, training=training)
        return self._classify(hidden, token_ids, training)

    def logits_from_embeddings(self, embeddings, token_ids, training=None):
        """The logits of `call` with the backbone reading `embeddings` `(batch, time,
        width)` (see `LanguageModel.embed_tokens`); `token_ids` still place the pooling."""
        hidden = self.backbone.hidden_states_from_embeddings(embeddings, training=training)
        return self._classify(hidden, token_ids, training)

    def step_logits(self, token_ids):
        """The logits of `call`, through the backbone's step API (see
        `LanguageModel.step_hidden_states`): what export converts."""
        return self._classify(self.backbone.step_hidden_states(token_ids), token_ids, False)

    def _classify(self, hidden, token_ids, training):
        weights = pooling_weights(token_ids, self.pad_id, self.pooling)  # (batch, time)
        hidden = ops.cast(hidden, "float32")
        pooled = ops.sum(hidden * weights[:, :, None], axis=1)  # (batch, width)
        pooled = self.feature_dropout(pooled, training=training)
        return ops.cast(self.head(pooled), "float32")  # (batch, num_classes)

    def compile(self, optimizer="adamw", loss="auto", metrics="auto", *, learning_rate=1e-3,
                total_steps=None, warmup_steps=None, weight_decay=0.01, clipnorm=1.0,
                jit_compile="auto", **kwargs):
        """Cross-entropy over the labels and accuracy, with keras_lm's optimizers.

        `optimizer` is a name of `keras_lm.optimizers` (warm-up + cosine
        over `total_steps`) or any Keras optimizer; `jit_compile="auto"` is
        the backbone family's choice.
        """
        if isinstance(optimizer, str):
            optimizer = make_optimizer(optimizer, learning_rate, total_steps, warmup_steps,
                                       weight_decay, clipnorm)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if jit_compile == "auto":
            jit_compile = self.jit_compile_default
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics,
                        jit_compile=jit_compile, **kwargs)

    def make_train_function(self, force=False):
        compat.build_optimizer(self)  # so that the step traces once, not twice
        return super().make_train_function(force)

    def encode(self, texts, tokenizer=None):
        """`(token_ids, cut)`: `texts` as `<bos> text <eos>` ids, padded to the longest.

        `token_ids` is an int32 NumPy array `(len(texts), time)`, `time <=
        sequence_length`; a text too long keeps its beginning (then
        `<eos>`), and `cut` counts those texts.
        """
        tokenizer = self._tokenizer(tokenizer)
        ids, lengths = encode_texts(tokenizer, list(texts), self.sequence_length)
        return ids.numpy(), int(np.sum(lengths.numpy() > self.sequence_length))

    def predict_proba(self, texts, tokenizer=None, batch_size=32):
        """Probabilities `(len(texts), num_classes)` of the labels, in `labels` order."""
        ids, _ = self.encode(texts, tokenizer)
        probabilities = [ops.convert_to_numpy(ops.softmax(self(ids[i:i + batch_size]), axis=-1))
                         for i in range(0, len(ids), batch_size)]
        return np.concatenate(probabilities) if probabilities else np.zeros((0, self.num_classes))

    def classify(self, texts, tokenizer=None, batch_size=32):
        """The label of each text (a list of str); see `predict_proba`.

        Example:
        >>> from keras_lm.models import LSTMLM
        >>> from keras_lm.tokenizers import ByteTokenizer
        >>> lm = LSTMLM.from_preset("tiny", vocabulary_size=259, pad_id=256)
        >>> classifier = TextClassifier(lm, labels=["cat", "dog"])
        >>> [label in ("cat", "dog") for label in classifier.classify(["meow", "woof"], ByteTokenizer())]
        [True, True]
        """
        probabilities = self.predict_proba(texts, tokenizer, batch_size)
        return [self.labels[i] for i in probabilities.argmax(-1)]

    def _tokenizer(self, tokenizer):
        tokenizer = tokenizer or getattr(self, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("tokenizer: the classifier needs a tokenizer to read texts, got None")
        return tokenizer

    @classmethod
    def from_lm(cls, model_dir, num_classes=None, *, labels=None, **kwargs):
        """A new classifier on a trained language model (its weights copied, the head new).

        `model_dir` is a `keras-lm train` directory (or a `.keras` file, or a
        `LanguageModel`); the base's files are only read. Give `labels` (the
        class names) or `num_classes` (then named `"0"`, `"1"`, ...). The
        base's tokenizer is attached as `classifier.tokenizer` when found.

        Example:
        >>> import os, tempfile
        >>> from keras_lm.models import TransformerLM
        >>> from keras_lm.tokenizers import ByteTokenizer
        >>> run = tempfile.mkdtemp()
        >>> TransformerLM.from_preset("tiny", vocabulary_size=259, pad_id=256).save(
        ...     os.path.join(run, "model.keras"))
        >>> ByteTokenizer().save(os.path.join(run, "tokenizer.json"))
        >>> classifier = TextClassifier.from_lm(run, 3)
        >>> classifier.labels, classifier.pooling
        (['0', '1', '2'], 'last')
        """
        if labels is None:
            if num_classes is None:
                raise UsageError("num_classes: give num_classes or labels, got neither",
                                 argument="num_classes")
            labels = [str(i) for i in range(int(num_classes))]
        elif num_classes is not None and num_classes != len(labels):
            raise UsageError(f"num_classes={num_classes} but {len(labels)} labels were given",
                             argument="num_classes")
        backbone = model_dir
        if not isinstance(model_dir, LanguageModel):
            backbone = load(model_dir, argument="model_dir")
            if not isinstance(backbone, LanguageModel):
                raise UsageError(f"model_dir: {os.fspath(model_dir)!r} holds a "
                                 f"{type(backbone).__name__}, not a language model",
                                 argument="model_dir")
        classifier = cls(backbone, labels, **kwargs)
        if getattr(backbone, "tokenizer", None) is not None:
            classifier.tokenizer = backbone.tokenizer
        return classifier

    def get_compile_config(self):
        return None  # as LanguageModel: a reloaded model is compiled afresh

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "labels": list(self.labels),
            "pooling": self.pooling,
            "sequence_length": self.sequence_length,
            "dropout": self.dropout,
            "pad_id": self.pad_id,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def pooling_weights(token_ids, pad_id, pooling):
    """`(batch, time)` float32 weights that pool hidden states over time.

    `last`: 1 at the last token that is not `pad_id`; `mean`: 1/n at each of
    the n tokens that are not `pad_id`. Only comparisons, slices and sums:
    TFLite runs them with builtin operators.

    Example:
    >>> ids = np.array([[5, 6, 0, 0], [7, 0, 0, 0]])
    >>> np.asarray(pooling_weights(ids, 0, "last")).tolist()
    [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    >>> np.asarray(pooling_weights(ids, 0, "mean")).tolist()
    [[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    """
    real = ops.cast(ops.not_equal(token_ids, pad_id), "float32")  # (batch, time)
    if pooling == "mean":
        return real / ops.maximum(ops.sum(real, axis=1, keepdims=True), 1.0)
    following = ops.concatenate([real[:, 1:], ops.zeros_like(real[:, :1])], axis=1)
    return real * (1.0 - following)


def encode_texts(tokenizer, texts, sequence_length, pad_to=None):
    """`(ids, full_lengths)`: texts as `<bos> text <eos>`, cut and padded, in TensorFlow ops.

    A text longer than `sequence_length` tokens keeps its first
    `sequence_length - 1` tokens, then `<eos>`. `ids` is int32 `(batch,
    time)`, padded with `pad_id` to the longest row (or to `pad_to`);
    `full_lengths` counts each row's tokens before any cut. Runs eagerly
    and inside an exported graph (the SavedModel's `serving_default`).

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> ids, lengths = encode_texts(ByteTokenizer(), ["ab", "abcdef"], 5)
    >>> ids.numpy().tolist(), lengths.numpy().tolist()
    ([[257, 97, 98, 258, 256], [257, 97, 98, 99, 258]], [4, 8])
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    body = tokenizer.encode(texts)  # ragged (batch, None)
    full_lengths = tf.cast(body.row_lengths(), tf.int32) + 2
    body = body[:, : sequence_length - 2]
    batch = tf.shape(texts)[0]
    bos = tf.fill([batch, 1], tokenizer.bos_id)
    eos = tf.fill([batch, 1], tokenizer.eos_id)
    ids = tf.concat([bos, tf.cast(body, tf.int32), eos], axis=1)
    width = None if pad_to is None else [None, pad_to]
    dense = ids.to_tensor(default_value=tokenizer.pad_id, shape=width)
    return dense, full_lengths
