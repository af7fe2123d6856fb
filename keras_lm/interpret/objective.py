"""What an explanation explains: the log-probability of a target, as a function of the input.

An `Objective` holds one input sequence and the scalar it attributes: for a
language model, the summed log-probability of the target tokens that follow
the prompt; for a classifier, the log-probability of one label. It gives
that scalar from token embeddings (for gradients) and from token ids (for
occlusion), so every method measures the same quantity.

Only the prompt's own tokens are attributed (`attributed`, a slice of the
sequence): `<bos>`, a classifier's `<eos>` and the target tokens the
language model reads after the prompt stay as they are.
"""

import dataclasses
import weakref

import keras
import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class Objective:
    """One input sequence and the log-probability it is explained by.

    `token_ids` is the model's whole input `(time,)`; the prompt's tokens
    are `token_ids[start:stop]`. `target_ids` are the target tokens (a
    language model's continuation) or `[label_index]` (a classifier).
    """

    model: object
    token_ids: np.ndarray
    start: int
    stop: int
    target_ids: list
    classifier: bool

    @property
    def attributed(self):
        return slice(self.start, self.stop)

    def embeddings(self):
        """The float32 token embeddings `(time, width)` of the input."""
        backbone = self.model.backbone if self.classifier else self.model
        return tf.cast(backbone.embed_tokens(self.token_ids[None])[0], tf.float32)

    def pad_embedding(self, pad_id):
        """The float32 embedding `(width,)` of `<pad>`: the baseline of integrated gradients."""
        backbone = self.model.backbone if self.classifier else self.model
        return tf.cast(backbone.embed_tokens(np.array([[pad_id]], np.int32))[0, 0], tf.float32)

    def from_embeddings(self, embeddings):
        """The log-probability `(batch,)` for float32 embeddings `(batch, time, width)`."""
        # TensorFlow ops only: this also runs inside `_compiled_gradients`' graph.
        if self.classifier:
            backbone = self.model.backbone
            ids = tf.repeat(tf.convert_to_tensor(self.token_ids, tf.int32)[None],
                            tf.shape(embeddings)[0], axis=0)
            logits = self.model.logits_from_embeddings(
                tf.cast(embeddings, backbone.compute_dtype), ids, training=False)
            label = tf.convert_to_tensor(self.target_ids, tf.int32)[0]
            return tf.gather(tf.nn.log_softmax(tf.cast(logits, tf.float32)), label, axis=1)
        logits = self.model.logits_from_embeddings(
            tf.cast(embeddings, self.model.compute_dtype), training=False)
        return _target_logp(tf.cast(logits, tf.float32), self.target_ids)

    def from_ids(self, ids):
        """The log-probability `(batch,)` for token ids `(batch, time')` (any length)."""
        ids = np.asarray(ids, np.int32)
        if self.classifier:
            logits = tf.cast(self.model(ids, training=False), tf.float32)
            return tf.nn.log_softmax(logits)[:, self.target_ids[0]].numpy()
        # Eager, like the gradients: a compiled scorer (`keras_lm.scoring`) would
        # compile once per sequence length, and one explanation meets two or three.
        logits = tf.cast(self.model(ids, training=False), tf.float32)
        return _target_logp(logits, self.target_ids).numpy()

    def logp(self):
        """The log-probability of the target for the input as it is."""
        return float(self.from_ids(self.token_ids[None])[0])

    def gradients(self, embeddings):
        """`(log-probabilities (batch,), their gradients (batch, time, width))`."""
        embeddings = tf.convert_to_tensor(embeddings, tf.float32)
        logp, gradients = _compiled_gradients(self.model, self.classifier, embeddings.shape[-1])(
            embeddings, self.token_ids,
            np.asarray(self.target_ids, np.int32))
        return logp.numpy(), gradients.numpy()


# One compiled function per model (a `tf.function` over any batch and length):
# eager calls cost ~10x more, and SHAP, LIME and integrated gradients call the
# model many times per explanation. Weak keys: a model's functions go with it.
_FORWARD = weakref.WeakKeyDictionary()
_GRADIENTS = weakref.WeakKeyDictionary()


def compiled_forward(model):
    """`model(ids, training=False)` as a `tf.function` over int32 ids `(batch, time)`."""
    if model not in _FORWARD:
        _FORWARD[model] = tf.function(
            lambda ids: model(ids, training=False),
            input_signature=[tf.TensorSpec([None, None], tf.int32)])
    return _FORWARD[model]


def _compiled_gradients(model, classifier, width):
    if model not in _GRADIENTS:
        def gradients(embeddings, token_ids, target_ids):
            with tf.GradientTape() as tape:
                tape.watch(embeddings)
                logp = Objective(model, token_ids, 0, 0, target_ids,
                                 classifier).from_embeddings(embeddings)
                total = tf.reduce_sum(logp)  # rows are independent: one backward pass for all
            return logp, tape.gradient(total, embeddings)

        _GRADIENTS[model] = tf.function(gradients, input_signature=[
            tf.TensorSpec([None, None, width], tf.float32), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int32)])
    return _GRADIENTS[model]


def _target_logp(logits, target_ids):
    # logits (batch, time, vocabulary); the target tokens are the next tokens
    # of the last len(target_ids) positions.
    target_ids = tf.convert_to_tensor(target_ids, tf.int32)
    count = tf.shape(target_ids)[0]
    log_probs = tf.nn.log_softmax(logits[:, -count:])  # (batch, count, vocabulary)
    targets = tf.broadcast_to(target_ids, tf.shape(log_probs)[:2])
    picked = tf.gather(log_probs, targets, batch_dims=2)  # (batch, count)
    return tf.reduce_sum(picked, axis=1)


def language_model_objective(model, prompt_ids, target_ids):
    """The objective of `target_ids` continuing `<bos> prompt_ids` (a `LanguageModel`)."""
    ids = np.asarray(list(prompt_ids) + list(target_ids[:-1]), np.int32)
    return Objective(model, ids, 1, len(prompt_ids), [int(t) for t in target_ids], False)


def classifier_objective(model, token_ids, label_index):
    """The objective of label `label_index` for `<bos> text <eos>` ids (a `TextClassifier`)."""
    ids = np.asarray(token_ids, np.int32)
    return Objective(model, ids, 1, len(ids) - 1, [int(label_index)], True)


def greedy_next_token(model, prompt_ids, banned_ids):
    """The model's most likely next token after `prompt_ids`, never one of `banned_ids`."""
    logits = keras.ops.convert_to_numpy(
        model(np.asarray([prompt_ids], np.int32), training=False))[0, -1].astype("float64")
    logits[list(banned_ids)] = -np.inf
    return int(np.argmax(logits))
