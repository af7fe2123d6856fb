"""Scores on answer positions: exact match and continuous metrics (Schaeffer et al. 2023).

An ability can look like it "emerges" suddenly with scale only because
exact match is a harsh, discontinuous function of per-token quality: the
same models scored per token improve smoothly. So every task reports both:

- `exact_match`: share of answers whose every token is predicted (argmax);
- `token_accuracy`: share of answer tokens predicted;
- `token_edit_distance`: mean Levenshtein distance, in tokens, between the
  predicted and the true tokens of an answer;
- `answer_log_likelihood`: mean log-probability (nats) of an answer token;
- `exact_match_by_order`: exact match of the j-th answer of a sequence
  (j = 1, 2, ...), a list. On MQAR the j-th answer is the j-th query: a
  model that matches keys scores flat, a model that only picks among the
  values not answered yet scores ~1/(N-j+1) (see `chance_by_order`).

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
    >>> result["exact_match_by_order"]
    [1.0, 0.0]
    """

    def __init__(self):
        self.tokens = self.hits = 0
        self.log_likelihood = 0.0
        self.answers = self.exact = 0
        self.edits = 0
        self.by_shots = collections.defaultdict(lambda: [0, 0])  # shots -> [hits, count]
        self.by_order = collections.defaultdict(lambda: [0, 0])  # answer j -> [exact, count]

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
                self.by_order[int(group)][0] += int(distance == 0)
                self.by_order[int(group)][1] += 1
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
            # Answer numbers run 1, 2, ... in every sequence; a number no
            # sequence reached is absent, so the list stops at the last one.
            "exact_match_by_order": [self.by_order[j][0] / self.by_order[j][1]
                                     for j in sorted(self.by_order)],
        }
        for k, (hits, count) in sorted(self.by_shots.items()):
            result[f"accuracy_at_shots_{k}"] = hits / count
        return result


def chance_by_order(num_answers):
    """Exact match by query order of a model that guesses among the values not yet answered.

    With N pairs, at the j-th query N - j + 1 values are still unanswered:
    a model that knows the values and which it has answered, but cannot
    match a key to its value, scores 1 / (N - j + 1) (design notes, section 4).

    Example:
    >>> [round(v, 2) for v in chance_by_order(4)]
    [0.25, 0.33, 0.5, 1.0]
    """
    return [1.0 / (num_answers - j) for j in range(num_answers)]


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


__all__ = ["AnswerScores", "chance_by_order", "edit_distance"]
