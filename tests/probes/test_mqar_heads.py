"""The MQAR circuit's attention shares (keras_lm.probes.mqar_heads) on planted attention."""

import numpy as np
import pytest

from keras_lm.data.synthetic import Task
from keras_lm.probes.mqar_heads import mqar_attention


class PlantedCircuit:
    """Layer 1 reads t - 1; layer 2 at each query reads the value of the queried key."""

    def __init__(self, num_pairs):
        self.n = num_pairs

    def __call__(self, inputs, training=False, return_attention=False):
        batch, length = inputs.shape
        previous = np.zeros((batch, 1, length, length))
        previous[:, 0, 0, 0] = 1.0
        previous[:, 0, np.arange(1, length), np.arange(length - 1)] = 1.0
        uniform = np.tril(np.ones((length, length))) / np.arange(1, length + 1)[:, None]
        matching = np.repeat(uniform[None, None], batch, axis=0)
        for row in range(batch):
            keys = list(inputs[row, 0:2 * self.n:2])
            for t in range(2 * self.n, length):
                if inputs[row, t] in keys:  # a query (keys appear once more, as queries)
                    matching[row, 0, t] = 0.0
                    matching[row, 0, t, 2 * keys.index(inputs[row, t]) + 1] = 1.0
        return None, [previous, matching]


@pytest.mark.parametrize("filler", ["random", "constant"])
def test_planted_circuit_scores_one(filler):
    # Random filler may repeat a key id: the planted layer 2 then reads it as a query,
    # which changes nothing at the scored (answer) positions.
    task = Task("mqar", 64, 128, mqar_num_pairs=4, mqar_filler=filler)
    scores = mqar_attention(PlantedCircuit(4), task.sample(np.random.default_rng(0), 8), 4)
    best = scores["best"]
    assert best["previous_token_layer_1"] == pytest.approx(1.0)
    assert best["to_value_last_layer"] == pytest.approx(1.0)
    assert best["to_key_last_layer"] == pytest.approx(0.0)
    assert best["to_pairs_last_layer"] == pytest.approx(1.0)
    # Layer 1 (previous token) at a query reads the filler before it, not the pairs.
    assert np.array(scores["to_pairs"])[0, 0] < 0.05
