"""Scoring a model's predictions: every loss, accuracy and answer score of keras_lm.

One compiled function per model (`token_scores`: the log-probability of each
true next token and the argmax guess) under one XLA choice, and the scores
built on it:

- `evaluate_files`: loss, perplexity and bits per byte on text files;
- `evaluate_pairs`: loss, perplexity and accuracy on the responses of
  prompt -> response pairs;
- `position_losses`, `position_sums`: loss (and hits) by position in the
  context window, for `PositionLoss` and the in-context-learning probes;
- `evaluate_task`, `AnswerScores`, `edit_distance`: exact match and the
  continuous answer scores of a synthetic task.

Sits above `models` and below `training` and `probes`, so both score with
the same code without importing each other.

Example:
>>> import numpy as np
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=20, sequence_length=8)
>>> ids = np.zeros((2, 9), dtype="int32")
>>> position_losses(model, [(ids[:, :-1], ids[:, 1:])]).shape
(8,)
"""

from keras_lm.scoring.answers import AnswerScores, edit_distance
from keras_lm.scoring.files import evaluate_files
from keras_lm.scoring.pairs import evaluate_pairs
from keras_lm.scoring.positions import position_losses, position_sums
from keras_lm.scoring.task import evaluate_task
from keras_lm.scoring.tokens import scored_mask, token_scores

__all__ = ["AnswerScores", "edit_distance", "evaluate_files", "evaluate_pairs", "evaluate_task",
           "position_losses", "position_sums", "scored_mask", "token_scores"]
