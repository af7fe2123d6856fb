"""keras_lm.scoring: the one compiled per-token function and the scores built on it,
checked against NumPy on the model's own logits."""

import gc
import math
import weakref

import keras
import numpy as np
import pytest

from keras_lm import data
from keras_lm.models import LSTMLM, TransformerLM
from keras_lm.scoring import (
    evaluate_files,
    position_losses,
    position_sums,
    scored_mask,
    token_scores,
)
from keras_lm.tokenizers import ByteTokenizer

VOCABULARY = 24
LENGTH = 8


def random_pairs(batch=4, seed=0):
    ids = np.random.default_rng(seed).integers(0, VOCABULARY, (batch, LENGTH + 1)).astype("int32")
    return ids[:, :-1], ids[:, 1:]


def numpy_log_softmax(logits):
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("family", [TransformerLM, LSTMLM], ids=["transformer", "lstm"])
def test_token_scores_are_the_log_softmax_and_argmax_of_the_logits(family):
    keras.utils.set_random_seed(0)
    model = family.from_preset("tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH)
    inputs, targets = random_pairs()
    log_probs, predictions = token_scores(model)(inputs, targets)
    assert log_probs.dtype == "float32" and predictions.dtype == "int32"
    assert log_probs.shape == predictions.shape == (4, LENGTH)
    logits = keras.ops.convert_to_numpy(model(inputs, training=False))
    expected = np.take_along_axis(numpy_log_softmax(logits), targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(log_probs.numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(predictions.numpy(), logits.argmax(-1))


def test_token_scores_of_a_bfloat16_model_are_float32():
    keras.utils.set_random_seed(0)
    model = LSTMLM.from_preset("tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH,
                               dtype="mixed_bfloat16")
    inputs, targets = random_pairs()
    log_probs, _ = token_scores(model)(inputs, targets)
    assert log_probs.dtype == "float32"
    logits = keras.ops.convert_to_numpy(model(inputs, training=False))
    expected = np.take_along_axis(numpy_log_softmax(logits), targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(log_probs.numpy(), expected, atol=1e-5)


def test_the_compiled_function_is_built_and_traced_once_per_model():
    model = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH)
    scores = token_scores(model)
    assert token_scores(model) is scores
    batches = [random_pairs(seed=0), random_pairs(seed=1)]
    position_losses(model, batches)
    traces = scores.experimental_get_tracing_count()
    assert traces >= 1
    position_losses(model, batches)  # a second scoring reuses the traces
    scores(*random_pairs(seed=2))
    assert scores.experimental_get_tracing_count() == traces
    other = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH)
    assert token_scores(other) is not scores  # each model its own weights, its own function


def test_a_short_batch_is_scored_in_the_programme_of_the_longest():
    model = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH)
    scores = token_scores(model)
    inputs, targets = random_pairs(seed=3)  # 4 rows
    full_log_probs, full_predictions = scores(inputs, targets)
    log_probs, predictions = scores(inputs[:1], targets[:1])  # padded to 4 rows, then cut
    assert log_probs.shape == (1, LENGTH) and scores.rows == {LENGTH: 4}
    np.testing.assert_allclose(log_probs.numpy(), full_log_probs.numpy()[:1], atol=1e-6)
    np.testing.assert_array_equal(predictions.numpy(), full_predictions.numpy()[:1])


def test_the_cache_does_not_keep_a_model_alive():
    model = LSTMLM.from_preset("tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH)
    token_scores(model)(*random_pairs())
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


def test_the_xla_choice_is_the_models_own_and_off_without_one():
    # `_jit_compile` is tf.function's record of the choice (TF has no public getter).
    assert token_scores(TransformerLM.from_preset(
        "tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH))._jit_compile is True
    assert token_scores(LSTMLM.from_preset(
        "tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH))._jit_compile is False
    plain = keras.Sequential([keras.layers.Embedding(VOCABULARY, 8),
                              keras.layers.Dense(VOCABULARY)])
    scores = token_scores(plain)  # any ids -> logits model scores, without XLA
    assert scores._jit_compile is False
    log_probs, _ = scores(*random_pairs())
    assert log_probs.shape == (4, LENGTH) and np.all(log_probs.numpy() < 0)


def test_position_losses_ignore_pad_targets():
    keras.utils.set_random_seed(0)
    model = LSTMLM.from_preset("tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH)
    pad = VOCABULARY - 1
    inputs, targets = random_pairs(batch=6)
    targets = np.where(targets == pad, 0, targets)
    padded = targets.copy()
    padded[:3, 4:] = pad  # half the rows end early
    padded[:, -1] = pad  # the last position is all padding
    log_probs = token_scores(model)(inputs, padded)[0].numpy().astype("float64")
    losses = position_losses(model, [(inputs, padded)], pad_id=pad)
    np.testing.assert_allclose(losses[:4], -log_probs[:, :4].mean(0), rtol=1e-6)
    np.testing.assert_allclose(losses[4:-1], -log_probs[3:, 4:-1].mean(0), rtol=1e-6)
    assert losses[-1] == 0.0  # nothing scored there
    _, _, counts = position_sums(model, [(inputs, padded)], pad_id=pad)
    assert counts.tolist() == [6, 6, 6, 6, 3, 3, 3, 0]
    # Without pad_id every target counts, padding included.
    everything = position_losses(model, [(inputs, padded)])
    np.testing.assert_allclose(everything, -log_probs.mean(0), rtol=1e-6)


def test_position_sums_count_hits_over_batches():
    keras.utils.set_random_seed(0)
    model = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, sequence_length=LENGTH)
    batches = [random_pairs(seed=0), random_pairs(seed=1)]
    loss_sums, hit_sums, counts = position_sums(model, batches)
    assert counts.tolist() == [8.0] * LENGTH  # no mask: every row of both batches
    expected_hits = sum((token_scores(model)(x, y)[1].numpy() == y).sum(0) for x, y in batches)
    np.testing.assert_array_equal(hit_sums, expected_hits)
    assert np.all((loss_sums / counts > 2.0) & (loss_sums / counts < 4.5))  # ~ln 24 = 3.2
    with pytest.raises(ValueError, match="batches is empty"):
        position_sums(model, [])


def test_evaluate_files_is_the_mean_over_non_pad_targets(corpus):
    keras.utils.set_random_seed(0)
    tokenizer = ByteTokenizer()
    model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
    result = evaluate_files(model, tokenizer, corpus[:1], batch_size=8)
    windows = data.text_dataset(corpus[:1], tokenizer, 16, 8)
    loss_sums, _, counts = position_sums(model, windows, pad_id=tokenizer.pad_id)
    assert result["tokens"] == int(counts.sum())
    assert result["loss"] == pytest.approx(loss_sums.sum() / counts.sum(), rel=1e-6)
    assert 5.0 < result["loss"] < 6.0  # ~ln 259 untrained
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    ratio = data.tokens_per_byte(corpus[:1], tokenizer)
    assert result["bits_per_byte"] == pytest.approx(result["loss"] * ratio / math.log(2))


def test_scored_mask():
    assert scored_mask([[1, 2, 0]], pad_id=0).tolist() == [[True, True, False]]
    assert scored_mask(np.zeros((2, 3), "int32")).all()
