"""The masking rule of the sampling methods (SHAP, LIME) and of the faithfulness scores.

A *mask* says which of the prompt's tokens stay (`True`) and which are
removed (`False`); `masked_logp(objective, keep)` is the objective's
log-probability with the removed tokens **deleted** from the sequence: the
tokens after them move up, nothing is put in their place (occlusion's
rule). Why deletion, for a causal language model:

- a `<pad>` (or any "neutral" token) put in a token's place is a token the
  model never read during training (the loss skips padding): what it does
  to the prediction is an artefact of an untrained embedding, not the
  absence of the token;
- deletion leaves a real, shorter text, the kind of input the model was
  trained on, and it is what ERASER's comprehensiveness and sufficiency
  mean by removing tokens, so the methods are judged by the rule they
  were computed with;
- the price: positions shift (a learned or rotary position sees a token one
  place earlier), which is also what happens to a text with a word missing.

Rows are padded on the **right** to a common length, so a batch of masks
is one forward pass: the models are causal, so nothing after a row's last
token changes it; a language model's target log-probabilities are read at
each row's own last positions, a classifier pools only its real tokens.

Example:
>>> import keras, numpy as np
>>> from keras_lm.models import LSTMLM
>>> from keras_lm.interpret.objective import language_model_objective
>>> keras.utils.set_random_seed(0)
>>> model = LSTMLM.from_preset("tiny", vocabulary_size=259)
>>> objective = language_model_objective(model, [257, 97, 98, 99], [100, 101])
>>> logp = masked_logp(objective, [[True, True, True], [True, False, True]])
>>> bool(np.isclose(logp[0], objective.logp(), atol=1e-5)), logp.shape
(True, (2,))
>>> deleted = objective.from_ids(np.array([[257, 97, 99, 100]]))[0]  # 98 removed
>>> bool(np.isclose(logp[1], deleted, atol=1e-5))
True
"""

import numpy as np
import tensorflow as tf

from keras_lm.interpret.objective import compiled_forward

# Masked inputs per forward pass: bounds memory (batch x time x vocabulary logits).
BATCH_SIZE = 128


def masked_sequences(objective, keep):
    """The input ids of each mask: the prompt's removed tokens deleted (a list of arrays)."""
    ids = objective.token_ids
    prefix, prompt, suffix = ids[:objective.start], ids[objective.attributed], ids[objective.stop:]
    return [np.concatenate([prefix, prompt[row], suffix]) for row in keep]


def masked_logp(objective, keep):
    """The log-probability `(masks,)` of the objective's target for each mask `(masks, tokens)`."""
    count = objective.stop - objective.start
    keep = np.asarray(keep, dtype=bool).reshape(-1, count)
    rows = masked_sequences(objective, keep)
    return np.concatenate([_batch_logp(objective, rows[i:i + BATCH_SIZE])
                           for i in range(0, len(rows), BATCH_SIZE)]) if rows else np.zeros(0)


def _batch_logp(objective, rows):
    lengths = np.array([len(row) for row in rows])
    # The classifier pools the tokens that are not its pad id; a language model
    # never reads what follows a row's end (causal), so any id pads it.
    pad = objective.model.pad_id if objective.classifier else 0
    padded = np.full((len(rows), lengths.max()), pad, np.int32)
    for i, row in enumerate(rows):
        padded[i, :len(row)] = row
    logits = tf.cast(compiled_forward(objective.model)(padded), tf.float32)
    log_probs = tf.nn.log_softmax(logits).numpy()
    if objective.classifier:
        return log_probs[:, objective.target_ids[0]].astype("float64")
    # Row i's target token j is predicted at position lengths[i] - count + j.
    count = len(objective.target_ids)
    positions = lengths[:, None] - count + np.arange(count)[None]  # (rows, count)
    picked = log_probs[np.arange(len(rows))[:, None], positions,
                       np.asarray(objective.target_ids)[None]]  # (rows, count)
    return picked.sum(axis=1).astype("float64")
