"""Scores on answer positions: exact match and continuous metrics (Schaeffer et al. 2023).

An ability can look like it "emerges" suddenly with scale only because
exact match is a harsh, discontinuous function of per-token quality: the
same models scored per token improve smoothly. So every task reports both:

- `exact_match`: share of answers whose every token is predicted (argmax);
- `token_accuracy`: share of answer tokens predicted;
- `token_edit_distance`: mean Levenshtein distance, in tokens, between the
  predicted and the true tokens of an answer;
- `answer_log_likelihood`: mean log-probability (nats) of an answer token.

Predictions are teacher-forced (each answer token is predicted from the true
tokens before it): one forward pass per batch. Exact match is then the same
as with greedy decoding (a greedy answer is all correct exactly when every
teacher-forced prediction is), the per-token figures are the kinder ones.
"""

import collections

import numpy as np


class AnswerScores:
    """Accumulates the scores of answer positions over batches.

    Example:
    >>> scores = AnswerScores()
    >>> scores.update(predictions=[[5, 1, 2]], targets=[[5, 1, 3]],
    ...               answer_group=[[1, 2, 2]], log_probs=[[-0.1, -0.2, -3.0]])
    >>> result = scores.result()
    >>> result["exact_match"], round(result["token_accuracy"], 3), result["token_edit_distance"]
    (0.5, 0.667, 0.5)
    """

    def __init__(self):
        self.tokens = self.hits = 0
        self.log_likelihood = 0.0
        self.answers = self.exact = 0
        self.edits = 0
        self.by_shots = collections.defaultdict(lambda: [0, 0])  # shots -> [hits, count]

    def update(self, predictions, targets, answer_group, log_probs, shots=None):
        """Adds one batch of `(batch, time)` arrays; only `answer_group > 0` counts."""
        predictions, targets, groups, log_probs = (
            np.asarray(a) for a in (predictions, targets, answer_group, log_probs))
        mask = groups > 0
        hits = (predictions == targets) & mask
        self.tokens += int(mask.sum())
        self.hits += int(hits.sum())
        self.log_likelihood += float(log_probs[mask].sum())
        for row in range(groups.shape[0]):
            for group in np.unique(groups[row][mask[row]]):
                where = groups[row] == group
                predicted, true = predictions[row][where], targets[row][where]
                self.answers += 1
                distance = int(edit_distance(predicted, true))
                self.edits += distance
                self.exact += int(distance == 0)
        if shots is not None:
            shots = np.asarray(shots)
            for k in np.unique(shots[mask]):
                at_k = mask & (shots == k)
                self.by_shots[int(k)][0] += int(hits[at_k].sum())
                self.by_shots[int(k)][1] += int(at_k.sum())

    def result(self):
        """The scores as a dict (plus `accuracy_at_shots_<k>` for fewshot)."""
        if self.tokens == 0:
            raise ValueError("no answer positions were scored")
        result = {
            "exact_match": self.exact / self.answers,
            "token_accuracy": self.hits / self.tokens,
            "token_edit_distance": self.edits / self.answers,
            "answer_log_likelihood": self.log_likelihood / self.tokens,
            "answers": self.answers,
            "answer_tokens": self.tokens,
        }
        for k, (hits, count) in sorted(self.by_shots.items()):
            result[f"accuracy_at_shots_{k}"] = hits / count
        return result


def edit_distance(predicted, true):
    """Levenshtein distance between two token sequences (insert, delete, substitute).

    Example:
    >>> edit_distance([1, 2, 3], [1, 3]), edit_distance([4], [4]), edit_distance([], [7, 8])
    (1, 0, 2)
    """
    predicted, true = list(predicted), list(true)
    if len(predicted) == len(true) == 1:
        return int(predicted[0] != true[0])
    previous = list(range(len(true) + 1))
    for i, p in enumerate(predicted, 1):
        current = [i]
        for j, t in enumerate(true, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (p != t)))
        previous = current
    return int(previous[-1])


__all__ = ["AnswerScores", "edit_distance"]
