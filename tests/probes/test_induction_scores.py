"""Induction head scores (Olsson et al.) on hand-made attention, and MQAR exact match
by query order (the callback that logs the scores in training: tests/probes/test_probes.py)."""

import numpy as np
import pytest

from keras_lm.probes import icl
from keras_lm.scoring.answers import AnswerScores, chance_by_order


class AttentionStub:
    """A 'model' whose attention is given: layer 1 head 2 reads t-1, layer 2 head 1
    reads the token after the previous occurrence; the other heads attend uniformly."""

    sequence_length = 32
    vocabulary_size = 20

    def __call__(self, tokens, training=False, return_attention=False):
        batch, length = tokens.shape
        block = (length + 1) // 2  # repeated_random_tokens' block length
        uniform = np.tril(np.ones((length, length))) / np.arange(1, length + 1)[:, None]
        previous = np.zeros((length, length))
        previous[0, 0] = 1.0
        previous[np.arange(1, length), np.arange(length - 1)] = 1.0
        induction = uniform.copy()
        for t in range(block, length):
            induction[t] = 0.0
            induction[t, t - block + 1] = 1.0
        layer_1 = np.stack([uniform, previous])[None].repeat(batch, 0)
        layer_2 = np.stack([induction, uniform])[None].repeat(batch, 0)
        return None, [layer_1, layer_2]


def test_head_scores_find_the_planted_circuit():
    scores = icl.induction_heads(AttentionStub(), special_ids=[], batch_size=2)
    prefix, previous = np.array(scores["prefix_matching"]), np.array(scores["previous_token"])
    assert prefix.shape == previous.shape == (2, 2)
    np.testing.assert_allclose(prefix[1, 0], 1.0)
    np.testing.assert_allclose(previous[0, 1], 1.0)
    assert prefix[0].max() < 0.2 and previous[1].max() < 0.2  # uniform heads score ~1/t
    assert scores["best_prefix_matching_head"] == [2, 1]
    assert scores["best_previous_token_head"] == [1, 2]
    assert scores["induction_heads"] == [[2, 1]] and scores["previous_token_heads"] == [[1, 2]]
    assert scores["best_prefix_matching"] == pytest.approx(1.0)
    assert scores["threshold"] == 0.5


def test_exact_match_by_order_tells_key_matching_from_elimination():
    """A model that answers the last query right and guesses before it scores ~1/(N-j+1)."""
    rng = np.random.default_rng(0)
    scores = AnswerScores()
    n, rows = 4, 4000
    groups = np.tile(np.arange(1, n + 1), (rows, 1))
    targets = rng.integers(0, 4, size=(rows, n))
    # Right with probability 1/(N-j+1) at the j-th query, as elimination gets it.
    right = rng.random((rows, n)) < np.array(chance_by_order(n))
    predictions = np.where(right, targets, targets + 1)
    scores.update(predictions, targets, groups, np.zeros((rows, n)))
    np.testing.assert_allclose(scores.result()["exact_match_by_order"], chance_by_order(n),
                               atol=0.03)
