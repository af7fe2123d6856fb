"""SHAP and LIME (the shap and lime packages) over token masks, and the deletion rule they use."""

import sys

import keras
import numpy as np
import pytest

from keras_lm.errors import UsageError
from keras_lm.interpret import METHODS, explain, write_report
from keras_lm.interpret.masking import masked_logp
from keras_lm.interpret.objective import classifier_objective, language_model_objective
from keras_lm.interpret.report import markdown_table
from keras_lm.interpret.sampling import default_samples, lime_scores, shap_scores
from keras_lm.models import LSTMLM, TextClassifier, TransformerLM
from keras_lm.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
WEIGHTS = np.array([2.0, -1.0, 0.5, 0.0, 3.0, -2.0, 1.0, 0.25])


def _linear(keep):
    return keep.astype(float) @ WEIGHTS + 0.3  # a linear model: its attributions are WEIGHTS


def test_shap_recovers_a_linear_models_weights_and_is_efficient():
    scores, details = shap_scores(_linear, 8, samples=default_samples(8), seed=0)
    np.testing.assert_allclose(scores, WEIGHTS, atol=1e-9)
    assert details == {"seed": 0, "samples": 170, "permutations": 10, "empty_logp": 0.3}

    def interaction(keep):  # Shapley: the product's 2.0 is split evenly between tokens 0 and 1
        return 2.0 * keep[:, 0] * keep[:, 1] + keep[:, 2]

    scores, _ = shap_scores(interaction, 3, samples=7 * 50, seed=1)
    np.testing.assert_allclose(scores, [1.0, 1.0, 1.0], atol=0.25)
    assert np.isclose(scores.sum(), 3.0)  # efficiency holds exactly for any permutations


def test_lime_recovers_a_linear_models_weights_and_its_seed_is_fixed():
    scores, details = lime_scores(_linear, 8, samples=2000, seed=1)
    # Ridge (alpha 1) shrinks the coefficients a little; the order is exact.
    np.testing.assert_allclose(scores, WEIGHTS, atol=0.05)
    assert details["r2"] > 0.999 and details["samples"] == 2000 and details["seed"] == 1
    again, _ = lime_scores(_linear, 8, samples=2000, seed=1)
    other, _ = lime_scores(_linear, 8, samples=2000, seed=2)
    np.testing.assert_array_equal(scores, again)
    assert not np.array_equal(scores, other)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(3)
    lm = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=24, pad_id=256)
    lstm = LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=24, pad_id=256)
    return {"lm": lm, "classifier": TextClassifier(lstm, labels=["cat", "dog"])}


def test_masked_inputs_are_the_sequences_with_the_tokens_deleted(models):
    keep = np.array([[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]], bool)
    prompt = [97, 98, 99, 100]
    lm = language_model_objective(models["lm"], [257] + prompt, [101, 102])
    expected = [lm.from_ids(np.array([[257] + [t for t, k in zip(prompt, row) if k] + [101]]))[0]
                for row in keep]
    np.testing.assert_allclose(masked_logp(lm, keep), expected, atol=1e-5)
    # A classifier reads <bos> kept <eos>, right-padded: its pooling skips the padding.
    classifier = classifier_objective(models["classifier"], [257] + prompt + [258], 1)
    expected = [classifier.from_ids(
        np.array([[257] + [t for t, k in zip(prompt, row) if k] + [258]]))[0] for row in keep]
    np.testing.assert_allclose(masked_logp(classifier, keep), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["lm", "classifier"])
def test_shap_and_lime_explain_both_kinds_with_printed_seeds_and_samples(models, kind, tmp_path):
    target = {"target": " ran"} if kind == "lm" else {"label": "dog"}
    result = explain(models[kind], "the dog", tokenizer=TOKENIZER, method="shap",
                     compare="all", **target)
    assert list(result.all_scores) == list(METHODS) and len(result.agreement) == 10
    assert result.details["seed"] == 0 and result.details["samples"] == default_samples(7)
    # Efficiency: SHAP's scores sum to logp(prompt) - logp(every prompt token deleted).
    assert np.isclose(result.scores.sum(), result.target_logp - result.details["empty_logp"],
                      atol=1e-4)
    lime = explain(models[kind], "the dog", tokenizer=TOKENIZER, method="lime", samples=64,
                   seed=5, **target)
    assert lime.details["samples"] == 64 and lime.details["seed"] == 5
    assert lime.details["kernel_width"] == 25 and lime.all_scores.keys() == {"lime"}
    page = open(write_report(result, str(tmp_path))["html"], encoding="utf-8").read()
    assert page.count('class="method-text"') == len(METHODS)  # the methods side by side
    table = markdown_table(result).splitlines()  # TensorBoard's text: a column per method
    assert table[2] == "| token | " + " | ".join(METHODS) + " |"
    assert table[4].count("|") == len(METHODS) + 2


@pytest.mark.parametrize("method, compare, argument", [("shap", False, "method"),
                                                      ("occlusion", "all", "compare")])
def test_a_missing_package_is_one_line_with_the_install_command(models, monkeypatch, method,
                                                                compare, argument):
    monkeypatch.setitem(sys.modules, "shap", None)  # `import shap` now raises ImportError
    with pytest.raises(UsageError) as info:
        explain(models["lm"], "abc", tokenizer=TOKENIZER, method=method, compare=compare)
    assert info.value.argument == argument
    assert str(info.value) == (f"{argument}: shap needs the 'shap' package, which is not "
                               "installed; install it with: pip install 'keras-lm[explain]'")
