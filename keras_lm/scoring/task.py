"""Evaluating a model on a synthetic task: the answer scores of `answers`."""

from keras_lm.data.synthetic import task_dataset
from keras_lm.scoring.answers import AnswerScores
from keras_lm.scoring.tokens import token_scores


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
    scores = token_scores(model)
    answers = AnswerScores()
    for batch in task_dataset(task, batch_size, seed=seed, split=split, num_batches=num_batches):
        log_probs, predictions = scores(batch["inputs"], batch["targets"])
        answers.update(predictions.numpy(), batch["targets"].numpy(),
                       batch["answer_group"].numpy(), log_probs.numpy(),
                       batch["shots"].numpy() if "shots" in batch else None)
    return answers.result()


__all__ = ["evaluate_task"]
