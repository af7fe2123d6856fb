"""TransformerLM's `value_embeddings` and `unet_skips` options (with `smear` too):
the step API against the full forward pass, saving, the wiring, bad values."""

import keras
import numpy as np
import pytest
from conftest import TINY, assert_one_line_usage_error, run_in_process

from keras_lm.generation import rows_supported
from keras_lm.layers import UNetSkips
from keras_lm.models import TransformerLM

VOCABULARY = 259
OPTIONS = {
    "value_embeddings": dict(value_embeddings=2),
    "unet_skips": dict(unet_skips=True),
    "all_three": dict(value_embeddings=1, unet_skips=True, smear=True),
}


def _model(**options):
    keras.utils.set_random_seed(0)
    model = TransformerLM(VOCABULARY, sequence_length=64, num_layers=4, num_heads=2,
                          hidden_dim=32, **options)
    if model.smear_layer is not None:  # opened: closed, it is the identity
        model.smear_layer.gate.assign(np.linspace(-1, 1, model.smear_layer.gate.shape[0]))
        model.smear_layer.scale.assign([0.8])
    if model.skips is not None:  # weights other than their initial ones
        model.skips.skip_weights.assign([0.7, 1.3])
    return model


@pytest.fixture(scope="module")
def models():
    return {name: _model(**options) for name, options in OPTIONS.items()}


def _ids(batch, length, seed=1):
    return np.random.default_rng(seed).integers(0, VOCABULARY, (batch, length)).astype(np.int32)


def test_value_tables_feed_the_first_and_last_blocks():
    model = _model(value_embeddings=2)
    assert [model.value_table_of(i) for i in range(4)] == [0, 1, 0, 1]
    assert [b.attention.value_mix is not None for b in model.blocks] == [True] * 4
    one = _model(value_embeddings=1)
    assert [one.value_table_of(i) for i in range(4)] == [0, None, None, 0]
    assert [b.attention.value_mix is not None for b in one.blocks] == [True, False, False, True]
    plain = _model()
    # Parameters: a (vocabulary x width) table per N, and (a, b) per block that reads one.
    assert model.count_params() - plain.count_params() == 2 * VOCABULARY * 32 + 4 * 2
    assert one.count_params() - plain.count_params() == VOCABULARY * 32 + 2 * 2
    ids = _ids(2, 16)
    assert np.abs(np.asarray(model(ids)) - np.asarray(plain(ids))).max() > 1e-3


def test_unet_skips_wire_the_encoder_outputs_into_the_decoder_in_reverse():
    skips = UNetSkips(num_layers=5)
    assert skips.skip_count == 2
    assert [skips.source_of(i) for i in range(5)] == [None, None, None, 1, 0]
    model, plain = _model(unet_skips=True), _model()
    assert model.count_params() - plain.count_params() == 2
    # By hand: blocks of the plain model (the same weights), skips added.
    model.skips.skip_weights.assign([0.5, 2.0])
    ids = _ids(1, 10)
    x = plain.token_embedding(ids)
    outputs = []
    for i, block in enumerate(plain.blocks):
        if i == 2:
            x = x + 2.0 * outputs[1]
        if i == 3:
            x = x + 0.5 * outputs[0]
        x = block(x)
        outputs.append(x)
    np.testing.assert_allclose(np.asarray(model(ids)), np.asarray(plain._logits(x)), atol=1e-5)


@pytest.mark.parametrize("name", OPTIONS)
def test_prefill_and_decode_match_the_full_forward_pass(models, name):
    model = models[name]
    ids = _ids(2, 14)
    full = np.asarray(model(ids))
    logits, state = model.prefill(ids[:, :6], model.initial_state(2, 64))
    np.testing.assert_allclose(np.asarray(logits), full[:, :6], atol=1e-5)
    for position in range(6, 14):
        logits, state = model.decode(ids[:, position], state, position)
        np.testing.assert_allclose(np.asarray(logits), full[:, position], atol=1e-5)
    assert rows_supported(model)


@pytest.mark.parametrize("name", OPTIONS)
def test_keras_file_round_trip(models, name, tmp_path):
    model = models[name]
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for key, value in OPTIONS[name].items():
        assert loaded.get_config()[key] == value
    ids = _ids(2, 16)
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(model(ids)), atol=1e-6)


def test_forward_from_embeddings_needs_the_token_ids(models):
    model = models["value_embeddings"]
    embeddings = model.embed_tokens(_ids(1, 4))
    with pytest.raises(ValueError, match="value_embeddings=2: a forward pass from embeddings"):
        model.logits_from_embeddings(embeddings)
    # Without value tables the path stays open (U-net skips need no ids).
    skips = models["unet_skips"]
    ids = _ids(1, 4)
    np.testing.assert_allclose(np.asarray(skips.logits_from_embeddings(skips.embed_tokens(ids))),
                               np.asarray(skips(ids)), atol=1e-6)


@pytest.mark.parametrize("options,message", [
    (dict(value_embeddings=3), "value_embeddings must be <= num_layers // 2 = 2"),
    (dict(value_embeddings=-1), "value_embeddings must be an integer >= 0, got -1"),
    (dict(value_embeddings=True), "value_embeddings must be an integer >= 0, got True"),
    (dict(unet_skips="yes"), "unet_skips must be true or false, got 'yes'"),
])
def test_bad_values_are_named(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TransformerLM(VOCABULARY, num_layers=4, **options)


def test_bad_value_on_the_command_line_is_one_line(capsys, tmp_path):
    output = tmp_path / "never_created"
    code, _, err = run_in_process(capsys, "train", *TINY, f"--output_dir={output}",
                                  "--model_args=value_embeddings=1.5")
    assert_one_line_usage_error(code, err, "train",
                                "--model_args: value_embeddings must be an integer >= 0, got 1.5")
    assert not output.exists()
