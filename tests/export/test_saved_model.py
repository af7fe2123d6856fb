"""SavedModel export: runs in a fresh process without keras_lm, same text as Keras."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_lm
from keras_lm.export import SIGNATURES, export_saved_model
from keras_lm.models import LSTMLM
from keras_lm.tokenizers import ByteTokenizer

PROMPTS = ["def ", "import os\nimport sys\n", ""]
NEW_TOKENS = 10  # the longest prompt and these fit the shared run's context of 32

# Runs in a fresh interpreter: only TensorFlow is imported, and we check that.
SERVE = """
import json, sys
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
greedy = served.signatures["serving_default"](
    prompts=tf.constant(json.loads(sys.argv[2])), max_new_tokens=tf.constant(int(sys.argv[3])))["text"]
sample = served.signatures["sample"](
    prompts=tf.constant(["def "]), max_new_tokens=tf.constant(24), temperature=tf.constant(1.0),
    top_k=tf.constant(0), top_p=tf.constant(1.0), seed=tf.constant(7, tf.int64))["text"]
print(json.dumps({
    "greedy": [t.decode("utf-8", "replace") for t in greedy.numpy()],
    "sample": sample.numpy()[0].decode("utf-8", "replace"),
    "signatures": sorted(served.signatures),
    "keras_lm_imported": any(m.startswith(("keras_lm", "keras_hub")) for m in sys.modules),
}))
"""


# The Transformer: conftest's shared tiny run, exported once by `keras-lm export`
# (its SavedModel is `export_saved_model`'s). The LSTM's export runs with
# `pytest -m slow`; its cached steps are checked against Keras by LiteRT's tests
# (test_export_tflite) in the default suite.
@pytest.fixture(scope="module", params=["transformer", pytest.param("lstm", marks=pytest.mark.slow)])
def exported(request, exported_run, tmp_path_factory):
    if request.param == "transformer":
        directory, _ = exported_run
        return keras_lm.load(directory), str(directory / "saved_model")
    keras.utils.set_random_seed(3)
    model = LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=32)
    path = str(tmp_path_factory.mktemp(request.param) / "saved_model")
    export_saved_model(model, ByteTokenizer(), path)
    return model, path


def test_serving_default_in_a_fresh_process_matches_keras_generate(exported, tmp_path):
    model, path = exported
    result = subprocess.run(
        [sys.executable, "-c", SERVE, path, json.dumps(PROMPTS), str(NEW_TOKENS)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert not served["keras_lm_imported"]
    assert served["signatures"] == sorted(SIGNATURES)
    assert served["greedy"] == model.generate(PROMPTS, NEW_TOKENS, tokenizer=ByteTokenizer())
    assert len(served["sample"].encode("utf-8", "surrogatepass")) > 0


def test_step_signatures_match_the_keras_model(exported):
    model, path = exported
    served = tf.saved_model.load(path)
    ids = np.random.default_rng(0).integers(0, 256, (2, 12)).astype("int32")
    full = model(ids).numpy()
    np.testing.assert_allclose(
        served.signatures["logits"](token_ids=tf.constant(ids))["logits"], full, atol=1e-5)
    state = {k: v.numpy() for k, v in model.initial_state(2, model.sequence_length).items()}
    out = served.signatures["prefill"](token_ids=tf.constant(ids[:, :5]), **state)
    np.testing.assert_allclose(out.pop("logits"), full[:, :5], atol=1e-5)
    for position in range(5, 12):
        out = served.signatures["decode"](
            token_ids=tf.constant(ids[:, position]), position=tf.constant(position), **out)
        np.testing.assert_allclose(out.pop("logits"), full[:, position], atol=1e-5)


def test_the_tokenizer_and_the_context_are_written_beside_the_graph(exported):
    """What `keras-lm serve --model` reads (an LSTM's signatures do not show its context)."""
    from keras_lm.export.exported import ExportedSavedModel
    from keras_lm.tokenizers import load_tokenizer

    model, path = exported
    assert load_tokenizer(os.path.join(path, "assets.extra", "tokenizer.json")).vocabulary_size \
        == 259
    with open(os.path.join(path, "assets.extra", "model.json")) as f:
        assert json.load(f) == {"sequence_length": 32, "vocabulary_size": 259}
    assert ExportedSavedModel(path).sequence_length == 32


@pytest.mark.slow  # a second TensorFlow start-up; the fresh-process test above lists them too
def test_saved_model_cli_lists_the_signatures(exported):
    _, path = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "show", "--dir", path, "--all"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    def write_half_then_fail(self, path, **kwargs):
        os.makedirs(path)
        open(os.path.join(path, "saved_model.pb"), "w").close()
        raise OSError("disk full")

    archive_class = type(keras.export.ExportArchive())  # the backend's subclass
    monkeypatch.setattr(archive_class, "write_out", write_half_then_fail)
    model = LSTMLM.from_preset("tiny", vocabulary_size=259)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(model, ByteTokenizer(), str(tmp_path / "saved_model"))
    assert os.listdir(tmp_path) == []
