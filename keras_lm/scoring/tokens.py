"""The one compiled per-token scoring function every score of keras_lm is built on.

`token_scores(model)` gives, for each position of a batch, the model's
log-probability of the true next token and its own best guess (argmax).
Losses, perplexity, bits per byte, loss by position, induction and answer
scores are all sums of these two arrays, so they share one compiled graph
per model and one XLA choice: the model's `jit_compile_default` (the
family's measured choice, see `LanguageModel`), no XLA for a model without it.

Example:
>>> import numpy as np
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=20, sequence_length=8)
>>> ids = np.arange(18, dtype="int32").reshape(2, 9) % 20
>>> log_probs, predictions = token_scores(model)(ids[:, :-1], ids[:, 1:])
>>> log_probs.dtype.name, predictions.dtype.name, tuple(log_probs.shape)
('float32', 'int32', (2, 8))
>>> token_scores(model) is token_scores(model)  # compiled once per model
True
"""

import weakref

import numpy as np
import tensorflow as tf

# model -> (its number of variables, its compiled function). Weak keys, and the
# function holds the model only weakly: the cache never keeps a model (or its
# weights) alive. A trace bakes in the layers' Python branches: when variables
# are added (LoRA's `enable_lora` after a first score) the function is made anew.
_COMPILED = weakref.WeakKeyDictionary()


def token_scores(model):
    """The compiled `(inputs, targets) -> (log_probs, predictions)` of `model`.

    `inputs` and `targets` are `(batch, time)` ids. `log_probs` is the
    float32 log-probability of each target (log-softmax of the logits taken
    in float32, also for a bfloat16 model), `predictions` the int32 argmax
    of the logits; both `(batch, time)`, as tensors. Only these two small
    arrays leave the graph, never the `(batch, time, vocabulary)` logits.

    Built and cached on first use: later calls for the same model return the
    same function, so its traces (and XLA programs) are reused. Shapes may
    vary (`reduce_retracing`). XLA compiles once per concrete shape, so with
    XLA a batch of fewer rows than an earlier one of the same length (the
    short last batch of a file set) is padded to that many rows: one
    program per length, not two.
    """
    variables = len(model.weights)
    cached = _COMPILED.get(model)
    if cached is None or cached[0] != variables:
        jit_compile = bool(getattr(model, "jit_compile_default", False))
        compiled = _compile(weakref.ref(model), jit_compile)
        scores = _RowPadded(compiled) if jit_compile else compiled
        cached = _COMPILED[model] = (variables, scores)
    return cached[1]


class _RowPadded:
    """`compiled(inputs, targets)`, with the rows padded to the most seen at that length."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.rows = {}  # sequence length -> most rows seen

    def __getattr__(self, name):  # the tf.function's own attributes (tracing count, ...)
        return getattr(self.compiled, name)

    def __call__(self, inputs, targets):
        inputs, targets = tf.convert_to_tensor(inputs), tf.convert_to_tensor(targets)
        rows, time = inputs.shape[0], inputs.shape[1]
        padded = self.rows[time] = max(rows, self.rows.get(time, 0))
        if padded == rows:
            return self.compiled(inputs, targets)
        extra = [[0, padded - rows], [0, 0]]  # rows are independent: id 0 is as good as any
        log_probs, predictions = self.compiled(tf.pad(inputs, extra), tf.pad(targets, extra))
        return log_probs[:rows], predictions[:rows]


def _compile(model_ref, jit_compile):
    # No autograph: nothing here branches on tensors, and converting each layer call costs time.
    @tf.function(jit_compile=jit_compile, reduce_retracing=True, autograph=False)
    def scores(inputs, targets):
        logits = tf.cast(model_ref()(inputs, training=False), tf.float32)
        targets = tf.cast(targets, tf.int32)
        log_probs = -tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        return log_probs, tf.argmax(logits, axis=-1, output_type=tf.int32)

    return scores


def scored_mask(targets, pad_id=None):
    """Which targets count: all of them, or those that are not `pad_id`.

    Example:
    >>> scored_mask([[4, 0, 0]], pad_id=0).tolist(), scored_mask([[4, 0]]).tolist()
    ([[True, False, False]], [[True, True]])
    """
    targets = np.asarray(targets)
    if pad_id is None:
        return np.ones(targets.shape, dtype=bool)
    return targets != pad_id


__all__ = ["scored_mask", "token_scores"]
