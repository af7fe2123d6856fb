"""LSTMLM's generation limit (max_length) apart from its training window (sequence_length)."""

import keras
import numpy as np
import pytest

from keras_lm.generation import generate
from keras_lm.models import LSTMLM
from keras_lm.tokenizers import ByteTokenizer
from keras_lm.training import TrainConfig


def tiny(**kwargs):
    return LSTMLM(vocabulary_size=ByteTokenizer().vocabulary_size, embedding_dim=8,
                  hidden_dim=16, num_layers=1, dropout=0.0, **kwargs)


def test_generates_past_its_training_window():
    # Seeded: an unseeded random model's greedy text may reach <eos> early (seen
    # once in CI: 28 of 40 bytes), which would not be about the window.
    keras.utils.set_random_seed(0)
    model = tiny(sequence_length=8, max_length=64)
    assert (model.training_length, model.sequence_length) == (8, 64)
    text = generate(model, ByteTokenizer(), "ab", 40, sampler="greedy")
    assert len(ByteTokenizer().encode(text).numpy()) >= 40 - 1  # 40 ids past an 8-id window
    with pytest.raises(ValueError, match="context of 8"):  # the window alone: refused
        generate(tiny(sequence_length=8), ByteTokenizer(), "ab", 40)


def test_state_carries_past_the_window_as_the_whole_sequence_does():
    # decode step by step past the window == one call over the whole sequence.
    model = tiny(sequence_length=4, max_length=32)
    ids = np.random.default_rng(0).integers(3, 200, size=(1, 12)).astype("int32")
    whole = keras.ops.convert_to_numpy(model(ids))
    state = model.initial_state(1, 32)
    logits, state = model.prefill(ids[:, :2], state)
    steps = [keras.ops.convert_to_numpy(logits)]
    for t in range(2, 12):
        logits, state = model.decode(ids[:, t], state, t)
        steps.append(keras.ops.convert_to_numpy(logits))
    np.testing.assert_allclose(steps[-1], whole[:, -1], atol=1e-5)


def test_config_keeps_the_window_and_the_limit_and_old_configs_load_as_before():
    model = tiny(sequence_length=8, max_length=64)
    config = model.get_config()
    assert (config["sequence_length"], config["max_length"]) == (8, 64)
    again = LSTMLM.from_config(config)
    assert (again.training_length, again.sequence_length) == (8, 64)
    old = {k: v for k, v in config.items() if k != "max_length"}  # saved before the argument
    assert LSTMLM.from_config(old).sequence_length == 8
    with pytest.raises(ValueError, match="max_length must be >= sequence_length=8"):
        tiny(sequence_length=8, max_length=4)


def test_lstm_quickstart_trains_short_windows_and_writes_past_them():
    config = TrainConfig.from_recipe("lstm_quickstart")
    assert (config.sequence_length, config.batch_size) == (32, 64)
    assert config.model_args == {"max_length": 1024}
    config.validate()
