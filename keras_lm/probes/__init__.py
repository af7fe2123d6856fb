"""Probes of in-context learning and emergence: task scores, ICL score, induction, sweeps.

Example:
    from keras_lm.data.synthetic import Task
    from keras_lm.probes import evaluate_task
    scores = evaluate_task(model, Task("mqar", sequence_length=64, mqar_num_pairs=8))
"""

# Answer scoring lives in keras_lm.scoring (training scores a task run with it
# too); re-exported here, where users of the probes look for it.
from keras_lm.scoring import AnswerScores, edit_distance, evaluate_task

__all__ = ["AnswerScores", "edit_distance", "evaluate_task"]
