"""TextClassifier: pooling, padding, the step path export uses, saving, from_lm."""

import os

import keras
import numpy as np
import pytest

from keras_lm.errors import UsageError
from keras_lm.models import LSTMLM, TextClassifier, TransformerLM
from keras_lm.tokenizers import ByteTokenizer

TEXTS = ["meow", "a longer text: woof woof"]


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def backbone(request):
    keras.utils.set_random_seed(1)
    family = TransformerLM if request.param == "transformer" else LSTMLM
    return family.from_preset("tiny", vocabulary_size=259, sequence_length=32, pad_id=256)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_changes_nothing_and_the_step_path_agrees(backbone, pooling):
    classifier = TextClassifier(backbone, ["a", "b", "c"], pooling=pooling)
    ids, cut = classifier.encode(TEXTS, ByteTokenizer())
    assert cut == 0 and ids.shape == (2, len(TEXTS[1]) + 2)
    logits = np.asarray(classifier(ids))
    padded = np.full((2, 32), 256, np.int32)
    padded[:, : ids.shape[1]] = ids
    np.testing.assert_allclose(np.asarray(classifier(padded)), logits, atol=1e-5)
    step = np.asarray(classifier.step_logits(keras.ops.convert_to_tensor(padded)))
    np.testing.assert_allclose(step, logits, atol=1e-5)


def test_last_pooling_reads_the_eos_hidden_state(backbone):
    classifier = TextClassifier(backbone, ["a", "b"], pooling="last")
    ids, _ = classifier.encode(TEXTS, ByteTokenizer())
    hidden = np.asarray(backbone.hidden_states(ids))
    eos = len(TEXTS[0]) + 1
    assert ids[0, eos] == 258 and ids[0, eos + 1] == 256
    kernel, bias = (np.asarray(w) for w in classifier.head.weights)
    np.testing.assert_allclose(np.asarray(classifier(ids))[0], hidden[0, eos] @ kernel + bias,
                               atol=1e-5)


def test_saved_and_loaded_with_its_labels(backbone, tmp_path):
    classifier = TextClassifier(backbone, ["négatif", "positive"], pooling="mean",
                                sequence_length=16)
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, TextClassifier)
    assert (loaded.labels, loaded.pooling, loaded.sequence_length) == (
        ["négatif", "positive"], "mean", 16)
    ids, cut = loaded.encode(TEXTS, ByteTokenizer())
    assert cut == 1 and ids.shape == (2, 16) and ids[1, -1] == 258  # cut, <eos> kept
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(classifier(ids)), atol=1e-6)


def test_from_lm_reads_a_run_and_leaves_it_unchanged(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lm = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=32, pad_id=256)
    lm.save(str(run / "model.keras"))
    ByteTokenizer().save(str(run / "tokenizer.json"))
    before = {name: os.path.getmtime(run / name) for name in os.listdir(run)}
    classifier = TextClassifier.from_lm(str(run), labels=["x", "y"])
    np.testing.assert_allclose(
        np.asarray(classifier.backbone.hidden_states(np.ones((1, 4), np.int32))),
        np.asarray(lm.hidden_states(np.ones((1, 4), np.int32))), atol=1e-6)
    assert classifier.tokenizer.vocabulary_size == 259
    assert classifier.classify(["x"])[0] in ("x", "y")
    assert {name: os.path.getmtime(run / name) for name in os.listdir(run)} == before
    with pytest.raises(UsageError, match=r"^model_dir: no model.keras in "):
        TextClassifier.from_lm(str(tmp_path), 2)


def test_bad_arguments_name_themselves(backbone):
    with pytest.raises(UsageError, match="^labels must be at least two"):
        TextClassifier(backbone, ["only"])
    with pytest.raises(UsageError, match="^pooling must be one of last, mean, got 'max'"):
        TextClassifier(backbone, ["a", "b"], pooling="max")
    with pytest.raises(UsageError, match=r"^sequence_length must be in \[2, 32\]"):
        TextClassifier(backbone, ["a", "b"], sequence_length=64)
