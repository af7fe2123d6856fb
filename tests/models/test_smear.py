"""TransformerLM's `smear` option: the layer's formula, the step API's extra state, saving."""

import keras
import numpy as np
import pytest
from conftest import TINY, assert_one_line_usage_error, run_in_process

from keras_lm.generation import GreedySampler, rows_supported
from keras_lm.generation.decoding import decode_tokens
from keras_lm.layers import Smear
from keras_lm.models import TransformerLM
from keras_lm.models.transformer_lm import PREVIOUS_EMBEDDING

VOCABULARY = 259


def opened(model, seed=0):
    """`model` with its smear weights drawn at random: at initialisation the
    layer is the identity, and a parity test over it would prove nothing."""
    rng = np.random.default_rng(seed)
    layer = model.smear_layer
    layer.gate.assign(rng.normal(0, 1, layer.gate.shape))
    layer.scale.assign([0.8])
    return model


@pytest.fixture(scope="module")
def smear_model():
    keras.utils.set_random_seed(0)
    return opened(TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, smear=True))


def _ids(batch, length, seed=1):
    return np.random.default_rng(seed).integers(0, VOCABULARY, (batch, length)).astype(np.int32)


def test_smear_is_the_gated_previous_embedding():
    layer = Smear()
    x = np.random.default_rng(0).normal(size=(2, 5, 16)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)  # identity at initialisation
    gate = np.linspace(-1, 1, 12).astype(np.float32)
    layer.gate.assign(gate)
    layer.scale.assign([0.5])
    expected = x.copy()
    weight = 0.5 / (1 + np.exp(-(x[:, 1:, :12] @ gate)))  # (batch, time - 1)
    expected[:, 1:] += weight[..., None] * x[:, :-1]
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-6)
    # With the embedding before x[:, 0] given, position 0 mixes it in too.
    previous = np.ones((2, 16), np.float32)
    weight_0 = 0.5 / (1 + np.exp(-(x[:, 0, :12] @ gate)))
    np.testing.assert_allclose(np.asarray(layer(x, previous=previous))[:, 0],
                               x[:, 0] + weight_0[:, None] * previous, rtol=1e-5, atol=1e-6)


def test_smear_changes_the_model_and_starts_as_the_identity():
    keras.utils.set_random_seed(0)
    plain = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY)
    keras.utils.set_random_seed(0)
    smear = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, smear=True)
    # The smear layer is made last: every other weight is the plain model's.
    assert len(smear.weights) == len(plain.weights) + 2
    ids = _ids(2, 16)
    np.testing.assert_array_equal(np.asarray(smear(ids)), np.asarray(plain(ids)))
    opened(smear)
    assert np.abs(np.asarray(smear(ids)) - np.asarray(plain(ids))).max() > 1e-3
    # Parameters: the gate's 12 channels and the scale.
    assert smear.count_params() - plain.count_params() == 13


def test_prefill_and_decode_match_the_full_forward_pass(smear_model):
    ids = _ids(2, 20)
    full = np.asarray(smear_model(ids))  # (batch, time, vocabulary)
    for prefill_length in (1, 7):
        state = smear_model.initial_state(2, 64)
        assert state[PREVIOUS_EMBEDDING].shape == (2, 32)
        logits, state = smear_model.prefill(ids[:, :prefill_length], state)
        np.testing.assert_allclose(np.asarray(logits), full[:, :prefill_length], atol=1e-5)
        for position in range(prefill_length, 20):
            logits, state = smear_model.decode(ids[:, position], state, position)
            np.testing.assert_allclose(np.asarray(logits), full[:, position], atol=1e-5)
    # The state holds the last token's own embedding (before mixing).
    np.testing.assert_allclose(np.asarray(state[PREVIOUS_EMBEDDING]),
                               np.asarray(smear_model.token_embedding(ids[:, -1])), atol=1e-7)


def test_per_row_decode_gives_each_row_its_own_position(smear_model):
    ids = _ids(2, 12)
    full = np.asarray(smear_model(ids))
    assert rows_supported(smear_model)
    # Row 0 has read 5 tokens, row 1 has read 9: each from its own prefill.
    state_a = smear_model.prefill(ids[:1, :5], smear_model.initial_state(1, 64))[1]
    state_b = smear_model.prefill(ids[1:, :9], smear_model.initial_state(1, 64))[1]
    state = {key: np.concatenate([state_a[key], state_b[key]]) for key in state_a}
    logits, _ = smear_model.decode(np.array([ids[0, 5], ids[1, 9]], np.int32), state,
                                   np.array([5, 9], np.int32))
    np.testing.assert_allclose(np.asarray(logits), [full[0, 5], full[1, 9]], atol=1e-5)


def _greedy(model, prompt, count):
    ids = list(prompt)
    for _ in range(count):
        ids.append(int(np.argmax(np.asarray(model(np.array([ids], np.int32)))[0, -1])))
    return ids[len(prompt):]


# The compiled loop with smear and bigram_hash together runs by default
# (test_bigram_hash.py); smear alone with `pytest -m slow`.
@pytest.mark.slow
def test_compiled_decoding_matches_greedy_full_forward_passes(smear_model):
    # Prompts of 6 and 9 tokens: both prefill 4 (the shorter's power of two),
    # then the decoding loop forces the rest of each prompt, one per step.
    prompts = [[int(i) for i in _ids(1, length, seed=length)[0]] for length in (6, 9)]
    new = [[], []]
    for chunk in decode_tokens(smear_model, prompts, 10, GreedySampler(), end_id=-1, pad_id=0):
        for row, tokens in enumerate(chunk):
            new[row] += list(tokens)
    assert new == [_greedy(smear_model, prompt, 10) for prompt in prompts]


def test_keras_file_round_trip(smear_model, tmp_path):
    path = str(tmp_path / "smear.keras")
    smear_model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config()["smear"] is True
    ids = _ids(2, 16)
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(smear_model(ids)), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(loaded.smear_layer.gate),
                                  np.asarray(smear_model.smear_layer.gate))
    # Off, the key is absent: configs saved before the option stay as they were.
    assert "smear" not in TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY).get_config()


def test_bad_smear_value_is_named(capsys, tmp_path):
    with pytest.raises(ValueError, match="smear must be true or false, got 'yes'"):
        TransformerLM(VOCABULARY, smear="yes")
    output = tmp_path / "never_created"
    code, _, err = run_in_process(capsys, "train", *TINY, f"--output_dir={output}",
                                  "--model_args=smear=2")
    assert_one_line_usage_error(code, err, "train", "--model_args: smear must be true or false, got 2")
    assert not output.exists()
