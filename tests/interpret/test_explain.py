"""keras_lm.interpret: attributions checked against independent computations, both families."""

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from keras_lm.errors import UsageError
from keras_lm.interpret import CHEAP_METHODS, explain, spearman, write_report
from keras_lm.models import LSTMLM, TextClassifier, TransformerLM
from keras_lm.scoring import token_scores
from keras_lm.tokenizers import ByteTokenizer, CharTokenizer

TOKENIZER = ByteTokenizer()
PROMPT = "the lazy dog"


def _models():
    keras.utils.set_random_seed(7)
    # Weights scaled up from the tiny initialisation: a random model this
    # small is nearly linear in its embeddings, which would make the
    # completeness check easy to pass with any quadrature.
    transformer = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=32,
                                            pad_id=256, position_embedding="learned")
    lstm = LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=32, pad_id=256)
    for model in (transformer, lstm):
        for weight in model.weights:
            if "gamma" not in weight.path and "beta" not in weight.path:
                weight.assign(weight * 4.0)
    return {"transformer": transformer, "lstm": lstm}


@pytest.fixture(scope="module")
def models():
    return _models()


@pytest.fixture(scope="module")
def classifier(models):
    keras.utils.set_random_seed(8)
    return TextClassifier(models["lstm"], labels=["cat", "dog", "eel"])


def _logp_from_embeddings(model, embeddings, targets):
    logits = tf.cast(model.logits_from_embeddings(embeddings[None]), tf.float32)[0]
    log_probs = tf.nn.log_softmax(logits[-len(targets):]).numpy()
    return float(sum(log_probs[i, t] for i, t in enumerate(targets)))


@pytest.mark.parametrize("family", ["transformer", "lstm"])
def test_integrated_gradients_sum_to_the_change_of_log_probability(models, family):
    model = models[family]
    result = explain(model, PROMPT, target=" ran", tokenizer=TOKENIZER,
                     method="integrated_gradients")  # 64 steps
    # logp(input) - logp(baseline), computed here: the prompt's token
    # embeddings (not <bos>'s, not the target's) replaced by <pad>'s.
    targets = [int(t) for t in TOKENIZER.encode(" ran")]
    ids = [TOKENIZER.bos_id] + [int(t) for t in TOKENIZER.encode(PROMPT)] + targets[:-1]
    embeddings = model.embed_tokens(np.array([ids]))[0].numpy()
    baseline = embeddings.copy()
    baseline[1:1 + len(PROMPT)] = model.embed_tokens(np.array([[TOKENIZER.pad_id]]))[0, 0]
    change = (_logp_from_embeddings(model, embeddings, targets)
              - _logp_from_embeddings(model, baseline, targets))
    assert abs(change) > 0.05  # a change worth explaining
    assert np.isclose(np.sum(result.scores), change, rtol=0.01, atol=1e-3)
    assert len(result.scores) == len(PROMPT) and result.tokens == list(PROMPT)
    assert result.details["steps"] == 64
    assert abs(result.details["completeness_gap"]) < max(1e-3, 0.01 * abs(change))


def test_integrated_gradients_of_a_classifier_label_sum_to_its_change(classifier):
    result = explain(classifier, PROMPT, label="dog", tokenizer=TOKENIZER,
                     method="integrated_gradients")
    ids, _ = classifier.encode([PROMPT], TOKENIZER)
    backbone = classifier.backbone
    embeddings = backbone.embed_tokens(ids)
    baseline = embeddings.numpy()
    baseline[0, 1:-1] = backbone.embed_tokens(np.array([[TOKENIZER.pad_id]]))[0, 0]
    logp = [float(tf.nn.log_softmax(classifier.logits_from_embeddings(e, ids))[0, 1])
            for e in (embeddings, baseline)]
    assert np.isclose(np.sum(result.scores), logp[0] - logp[1], rtol=0.01, atol=1e-3)
    assert result.kind == "label" and result.target == "dog"
    assert np.isclose(result.target_logp, logp[0], atol=1e-5)


def test_gradient_x_input_is_the_derivative_along_the_input(models):
    # The sum of gradient x input is d/dt logp((1 + t) * prompt embeddings) at t = 0.
    model = models["transformer"]
    result = explain(model, PROMPT, target="s", method="gradient_x_input", tokenizer=TOKENIZER)
    targets = [ord("s")]
    ids = [TOKENIZER.bos_id] + [int(t) for t in TOKENIZER.encode(PROMPT)]
    embeddings = model.embed_tokens(np.array([ids]))[0].numpy().astype("float64")
    step = 1e-3
    direction = np.zeros_like(embeddings)
    direction[1:] = embeddings[1:]
    moved = [_logp_from_embeddings(model, (embeddings + sign * step * direction).astype("float32"),
                                   targets) for sign in (1, -1)]
    assert np.isclose(np.sum(result.scores), (moved[0] - moved[1]) / (2 * step),
                      rtol=0.02, atol=2e-3)


@pytest.mark.parametrize("span", [1, 3])
def test_occlusion_is_the_fall_of_log_probability_without_the_tokens(models, span):
    model = models["lstm"]
    result = explain(model, PROMPT, target=" ran", method="occlusion", span=span,
                     tokenizer=TOKENIZER)
    ids = [TOKENIZER.bos_id] + [int(t) for t in TOKENIZER.encode(PROMPT + " ran")]

    def logp(sequence):  # the last 4 tokens' log-probabilities, by the scoring layer
        scores, _ = token_scores(model)(np.array([sequence[:-1]]), np.array([sequence[1:]]))
        return float(np.sum(np.asarray(scores)[0, -4:]))

    full = logp(ids)
    falls = [full - logp(ids[:1 + w] + ids[1 + w + span:]) for w in range(len(PROMPT) - span + 1)]
    expected = [np.mean([falls[w] for w in range(len(falls)) if w <= i < w + span])
                for i in range(len(PROMPT))]
    np.testing.assert_allclose(result.scores, expected, rtol=1e-4, atol=1e-4)
    assert result.details == {"span": span}


def test_the_default_target_is_the_greedy_next_token_and_targets_sum(models):
    model = models["lstm"]  # no XLA to compile for token_scores
    result = explain(model, PROMPT, tokenizer=TOKENIZER, method="gradient_x_input")
    ids = [TOKENIZER.bos_id] + [int(t) for t in TOKENIZER.encode(PROMPT + " ran")]
    scores, predictions = token_scores(model)(np.array([ids[:-1]]), np.array([ids[1:]]))
    greedy = int(np.asarray(predictions)[0, len(PROMPT)])  # after <bos> and the prompt
    assert greedy not in (TOKENIZER.pad_id, TOKENIZER.bos_id)  # never a generated token
    assert result.target_ids == [greedy] and result.target == result.target_tokens[0]
    # A target of several tokens: the sum of their log-probabilities.
    two = explain(model, PROMPT, target=" ran", tokenizer=TOKENIZER, method="gradient_x_input")
    assert np.isclose(two.target_logp, np.sum(np.asarray(scores)[0, -4:]), atol=1e-4)


def test_compare_reports_the_rank_agreement_of_every_pair(models):
    result = explain(models["lstm"], PROMPT, target=" ran", tokenizer=TOKENIZER, compare=True,
                     steps=8, method="occlusion")
    assert list(result.all_scores) == list(CHEAP_METHODS)  # SHAP and LIME only with "all"
    assert len(result.agreement) == 3
    for pair, rho in result.agreement.items():
        a, b = pair.split(" vs ")
        assert np.isclose(rho, scipy.stats.spearmanr(result.all_scores[a],
                                                     result.all_scores[b])[0])
    np.testing.assert_array_equal(result.scores, result.all_scores["occlusion"])


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 30).astype(float), rng.normal(size=30)
    assert np.isclose(spearman(a, b), scipy.stats.spearmanr(a, b)[0])
    assert spearman([1.0], [2.0]) is None and spearman([1, 1, 1], [1, 2, 3]) is None


@pytest.fixture(scope="module")
def char_model():
    tokenizer = CharTokenizer(vocabulary=list("abcdefghijklmnopqrstuvwxyz "))
    model = TransformerLM.from_preset("tiny", vocabulary_size=tokenizer.vocabulary_size,
                                      sequence_length=8, pad_id=tokenizer.pad_id)
    return model, tokenizer


@pytest.mark.parametrize("kwargs, argument, message", [
    (dict(prompt=""), "prompt", "prompt: give the text to explain"),
    (dict(target="ÀB"), "target", "cannot encode 'ÀB' (unknown: 'ÀB')"),
    (dict(target=""), "target", "target: give the continuation"),
    (dict(prompt="abcdefg", target="hi"), "target", "exceed the model's context of 8"),
    (dict(prompt="abcdefghij"), "prompt", "exceed the model's context of 8"),
    (dict(label="cat"), "label", "no classifier head"),
    (dict(method="anchors"), "method", "method must be one of integrated_gradients"),
    (dict(compare="some"), "compare", "compare must be True, False or 'all', got 'some'"),
    (dict(method="shap", samples=0), "samples", "samples must be an integer in [1, 1000000]"),
    (dict(method="lime", seed=-1), "seed", "seed must be an integer in [0, 2**32), got -1"),
    (dict(steps=0), "steps", "steps must be an integer in [1, 4096], got 0"),
    (dict(steps=2.5), "steps", "got 2.5"),
    (dict(method="occlusion", span=4), "span", "span must be an integer in [1, 3]"),
])
def test_bad_arguments_are_usage_errors_naming_the_argument(char_model, kwargs, argument,
                                                            message):
    model, tokenizer = char_model
    kwargs = {"prompt": "abc", **kwargs}
    with pytest.raises(UsageError, match=None) as info:
        explain(model, kwargs.pop("prompt"), tokenizer=tokenizer, **kwargs)
    assert info.value.argument == argument and message in str(info.value)


def test_classifier_mistakes(classifier):
    with pytest.raises(UsageError, match=r"label: 'bird' is not one of the classifier's labels "
                                         r"\(cat, dog, eel\)"):
        explain(classifier, PROMPT, label="bird", tokenizer=TOKENIZER)
    with pytest.raises(UsageError, match="target: ' x' needs a language model"):
        explain(classifier, PROMPT, target=" x", tokenizer=TOKENIZER)
    default = explain(classifier, PROMPT, tokenizer=TOKENIZER, method="occlusion")
    assert default.target == classifier.classify([PROMPT], TOKENIZER)[0]


def test_the_report_files_and_tensorboard_tags(models, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = explain(models["lstm"], "a\nb <c>", target="!", tokenizer=TOKENIZER,
                     method="occlusion")
    paths = write_report(result, str(tmp_path))
    write_report(result, str(tmp_path))  # a second explanation: the next step
    with open(paths["html"], encoding="utf-8") as f:
        page = f.read()
    assert ">&lt;</span>" in page and "<script" not in page and "http" not in page
    assert page.count('class="token"') == len("a\nb <c>")
    with open(paths["png"], "rb") as f:
        assert f.read(4) == b"\x89PNG"
    events = EventAccumulator(paths["logs"], size_guidance={"tensors": 0}).Reload()
    tags = events.Tags()["tensors"]
    assert {"explanation/tokens", "explanation/attributions"} <= set(tags)
    assert [e.step for e in events.Tensors("explanation/attributions")] == [0, 1]
    text = events.Tensors("explanation/tokens")[0].tensor_proto.string_val[0].decode()
    assert "| `\\n` |" in text and "occlusion" in text


@pytest.mark.parametrize("option", [{"value_embeddings": 1}, {"bigram_hash": 64}])
def test_gradient_methods_refuse_a_model_that_runs_from_ids_only(option):
    # Its tables are looked up by token id: no forward pass from embeddings alone.
    model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=32, **option)
    tokenizer = ByteTokenizer()
    name = next(iter(option))
    with pytest.raises(UsageError, match=f"method=integrated_gradients: the model's {name}=") as error:
        explain(model, "def f", method="integrated_gradients", tokenizer=tokenizer)
    assert error.value.argument == "method"
    explained = explain(model, "def f", method="occlusion", tokenizer=tokenizer)
    assert len(explained.scores) == len(explained.tokens) == 5
