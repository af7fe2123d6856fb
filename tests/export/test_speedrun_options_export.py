"""A Transformer with the speedrun options exported: the extra state of `smear`
(the previous embedding) and `bigram_hash` (the previous token, int32) in LiteRT
and the SavedModel step signatures, value embeddings and U-net skips (no state:
gathers and adds), and the `.litertlm` refusal of smear.

One model carries all four options, so one conversion covers them."""

import json

import ai_edge_litert  # noqa: F401  a hard dependency: fail, never skip, if it is missing
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_one_line_usage_error, run_in_process

from keras_lm.export import export_saved_model
from keras_lm.export.litert_runner import LiteRTRunner
from keras_lm.export.tflite import export_tflite
from keras_lm.models import TransformerLM
from keras_lm.tokenizers import ByteTokenizer

VOCABULARY = 259
CONTEXT = 32


@pytest.fixture(scope="module")
def smear_model():
    keras.utils.set_random_seed(0)
    model = TransformerLM(VOCABULARY, sequence_length=CONTEXT, num_layers=2, num_heads=2,
                          hidden_dim=32, smear=True, value_embeddings=1, unet_skips=True,
                          bigram_hash=512)
    # Open the gate (it starts closed: the identity, which would test nothing).
    rng = np.random.default_rng(0)
    model.smear_layer.gate.assign(rng.normal(0, 1, model.smear_layer.gate.shape))
    model.smear_layer.scale.assign([0.8])
    model.bigram.embeddings.assign(rng.normal(0, 0.5, model.bigram.embeddings.shape))
    return model


def _ids(length, seed=2):
    return np.random.default_rng(seed).integers(0, VOCABULARY, length).astype(np.int32)


def test_tflite_prefill_and_decode_match_keras_at_every_position(smear_model, tmp_path):
    info = export_tflite(smear_model, str(tmp_path / "smear.tflite"), prefill_lengths=(8,))
    runner = LiteRTRunner(info.path)
    assert {"previous_embedding", "previous_token"} <= set(runner.initial_state())
    ids = _ids(CONTEXT)
    full = np.asarray(smear_model(ids[None]))[0]
    logits, state = runner.prefill(ids[:8])
    np.testing.assert_allclose(logits[0], full[:8], atol=1e-4)
    np.testing.assert_allclose(state["previous_embedding"][0],
                               np.asarray(smear_model.token_embedding(ids[7:8]))[0], atol=1e-6)
    assert state["previous_token"].tolist() == [ids[7] + 1]
    for position in range(8, CONTEXT):
        logits, state = runner.decode(ids[position], state, position)
        np.testing.assert_allclose(logits[0], full[position], atol=1e-4)
    # Greedy generation from an 11-token prompt (prefill_8, then 3 forced decodes).
    prompt = ids[:11].tolist()
    expected = []
    for _ in range(12):
        row = np.array([prompt + expected], np.int32)
        expected.append(int(np.argmax(np.asarray(smear_model(row))[0, -1])))
    assert runner.generate_ids(prompt, 12) == expected


# The SavedModel's step signatures are the model's own `prefill`/`decode` traced
# (any state dict passes through); the LiteRT check above runs by default.
@pytest.mark.slow
def test_saved_model_step_signatures_carry_the_previous_embedding(smear_model, tmp_path):
    path = str(tmp_path / "saved_model")
    export_saved_model(smear_model, ByteTokenizer(), path)
    served = tf.saved_model.load(path)
    ids = np.random.default_rng(0).integers(0, 256, (2, 12)).astype("int32")
    full = np.asarray(smear_model(ids))
    state = {k: np.asarray(v) for k, v in smear_model.initial_state(2, CONTEXT).items()}
    out = served.signatures["prefill"](token_ids=tf.constant(ids[:, :5]), **state)
    assert "previous_embedding" in out
    np.testing.assert_allclose(out.pop("logits"), full[:, :5], atol=1e-5)
    for position in range(5, 12):
        out = served.signatures["decode"](
            token_ids=tf.constant(ids[:, position]), position=tf.constant(position), **out)
        np.testing.assert_allclose(out.pop("logits"), full[:, position], atol=1e-5)


def test_litertlm_refuses_smear_in_one_line(smear_model, capsys, tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    smear_model.save(str(directory / "model.keras"))
    ByteTokenizer().save(str(directory / "tokenizer.json"))
    (directory / "config.json").write_text(json.dumps({}))
    code, _, err = run_in_process(capsys, "export", f"--model_dir={directory}",
                                  "--format=litertlm", "--quantize=none")
    assert_one_line_usage_error(code, err, "export",
                                "--format: litertlm cannot hold this model: a model with "
                                "smear=true keeps the previous token's embedding")
    assert sorted(p.name for p in directory.iterdir()) == [
        "config.json", "model.keras", "tokenizer.json"]
