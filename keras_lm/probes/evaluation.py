"""Evaluating a model on a synthetic task: the answer scores of `task_metrics`."""

import tensorflow as tf

from keras_lm.data.synthetic import task_dataset
from keras_lm.probes.task_metrics import AnswerScores


def answer_predictions(model):
    """A compiled function `inputs, targets -> (argmax ids, log p(target))`, both `(batch, time)`.

    Reduces the logits in the graph: only two small arrays leave it.
    """
    @tf.function(jit_compile=getattr(model, "jit_compile_default", False), reduce_retracing=True)
    def predict(inputs, targets):
        logits = tf.cast(model(inputs, training=False), tf.float32)
        log_probs = -tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        return tf.argmax(logits, axis=-1, output_type=tf.int32), log_probs

    return predict


def evaluate_task(model, task, batch_size=32, num_batches=16, seed=0, split="test"):
    """Scores `model` on `num_batches` batches of `task` (answer positions only).

    The `test` split is a random stream disjoint from training and
    validation. Returns the dict of `AnswerScores.result()`.

    Example:
    >>> from keras_lm.data.synthetic import Task
    >>> from keras_lm.models import TransformerLM
    >>> task = Task("mqar", sequence_length=32, vocabulary_size=64, mqar_num_pairs=4)
    >>> model = TransformerLM.from_preset("tiny", vocabulary_size=68, sequence_length=32)
    >>> result = evaluate_task(model, task, batch_size=4, num_batches=2)
    >>> result["answers"], 0 <= result["exact_match"] <= result["token_accuracy"] <= 1
    (32, True)
    """
    predict = answer_predictions(model)
    scores = AnswerScores()
    for batch in task_dataset(task, batch_size, seed=seed, split=split, num_batches=num_batches):
        predictions, log_probs = predict(batch["inputs"], batch["targets"])
        scores.update(predictions.numpy(), batch["targets"].numpy(),
                      batch["answer_group"].numpy(), log_probs.numpy(),
                      batch["shots"].numpy() if "shots" in batch else None)
    return scores.result()



