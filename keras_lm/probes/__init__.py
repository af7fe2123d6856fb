"""Probes of in-context learning and emergence: task scores, ICL score, induction, sweeps.

Example:
    from keras_lm.data.synthetic import Task
    from keras_lm.probes import evaluate_task
    scores = evaluate_task(model, Task("mqar", sequence_length=64, mqar_num_pairs=8))
"""

from keras_lm.probes.evaluation import evaluate_task
from keras_lm.probes.task_metrics import AnswerScores, edit_distance
