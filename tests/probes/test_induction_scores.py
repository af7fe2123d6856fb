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

    def __init__(self, fixed_offset=None):
        # With fixed_offset, layer 2 head 1 reads t - fixed_offset instead: a positional head.
        self.fixed_offset = fixed_offset

    def __call__(self, tokens, training=False, return_attention=False):
        batch, length = tokens.shape
        uniform = np.tril(np.ones((length, length))) / np.arange(1, length + 1)[:, None]
        previous = np.zeros((length, length))
        previous[0, 0] = 1.0
        previous[np.arange(1, length), np.arange(length - 1)] = 1.0
        layer_2 = []
        for row in tokens:
            # The row's block length, found from the tokens (its smallest period).
            block = next(b for b in range(1, length) if np.array_equal(row[b:], row[:-b]))
            back = self.fixed_offset or block - 1
            induction = uniform.copy()
            for t in range(back, length):
                induction[t] = 0.0
                induction[t, t - back] = 1.0
            layer_2.append(np.stack([induction, uniform]))
        layer_1 = np.stack([uniform, previous])[None].repeat(batch, 0)
        return None, [layer_1, np.stack(layer_2)]


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
    assert scores["copying"] is None  # the stub has no weights


def test_a_fixed_offset_head_is_not_a_prefix_matching_head():
    """The scoring blocks vary in length by row: attending 15 back is right on few rows."""
    scores = icl.induction_heads(AttentionStub(fixed_offset=15), special_ids=[], batch_size=16)
    assert np.array(scores["prefix_matching"])[1, 0] < 0.3
    assert scores["induction_heads"] == []


def test_one_layer_models_are_scored_by_the_same_rule():
    class OneLayer(AttentionStub):
        def __call__(self, tokens, training=False, return_attention=False):
            _, (_, layer_2) = super().__call__(tokens)
            return None, [layer_2]  # the induction head in the first (only) layer

    scores = icl.induction_heads(OneLayer(), special_ids=[], batch_size=2)
    assert scores["best_prefix_matching_head"] == [1, 1]
    assert scores["induction_heads"] == [[1, 1]]


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_copying_score_is_the_sign_of_the_ov_circuit(sign):
    """W_V^h W_O^h = +-P P^T with tied embeddings: the OV circuit is +-W_E P P^T W_E^T,
    semidefinite, so its eigenvalues share one sign and the score is +-1 for head 1."""
    import keras

    from keras_lm.models import TransformerLM

    model = TransformerLM(vocabulary_size=24, sequence_length=8, num_layers=1, num_heads=2,
                          hidden_dim=8, intermediate_dim=0)
    model(np.zeros((1, 8), "int32"))
    attention = model.blocks[0].attention
    d, heads, head_dim = 8, 2, 4
    kernel = np.asarray(attention.qkv.kernel).reshape(d, 3, heads, head_dim).copy()
    projection = np.random.default_rng(0).normal(size=(d, head_dim))
    kernel[:, 2, 0] = projection
    attention.qkv.kernel.assign(kernel.reshape(d, -1))
    out = np.asarray(attention.output_dense.kernel).reshape(heads, head_dim, d).copy()
    out[0] = sign * projection.T
    attention.output_dense.kernel.assign(keras.ops.convert_to_tensor(out.reshape(-1, d)))
    copying = icl.copying_scores(model)
    assert len(copying) == 1 and len(copying[0]) == 2
    assert copying[0][0] == pytest.approx(sign, abs=1e-6)
    assert -1.0 <= copying[0][1] <= 1.0


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
