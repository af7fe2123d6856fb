"""Samplers on stub logits: each never leaves its allowed set; seeds reproduce."""

import numpy as np
import pytest
import tensorflow as tf

from keras_lm.generation import (
    BeamSampler,
    GreedySampler,
    Sampler,
    TopKSampler,
    TopPSampler,
    get_sampler,
)

LOGITS = np.random.default_rng(0).normal(size=(4, 50)).astype("float32") * 3


def draws(sampler, logits=LOGITS, seeds=range(100)):
    """(len(seeds), batch) sampled ids."""
    return np.stack([sampler(tf.constant(logits), tf.constant([s, 7])).numpy() for s in seeds])


def test_temperature_zero_is_greedy():
    greedy = np.argmax(LOGITS, axis=-1)
    for sampler in (GreedySampler(), Sampler(0.0), TopKSampler(5, 0.0), TopPSampler(0.5, 0.0)):
        assert (draws(sampler, seeds=range(3)) == greedy).all()


@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_k_never_leaves_the_k_best(k):
    best = np.argsort(-LOGITS, axis=-1)[:, :k]
    samples = draws(TopKSampler(k, temperature=2.0))
    for row in range(LOGITS.shape[0]):
        assert set(samples[:, row]) <= set(best[row])
    if k > 1:  # and it does sample: more than one token shows up
        assert len(set(samples[:, 0])) > 1


@pytest.mark.parametrize("p", [0.3, 0.8, 0.95])
def test_top_p_never_leaves_the_nucleus(p):
    probabilities = tf.nn.softmax(LOGITS).numpy()
    samples = draws(TopPSampler(p))
    for row in range(LOGITS.shape[0]):
        order = np.argsort(-probabilities[row])
        mass_above = np.cumsum(probabilities[row][order]) - probabilities[row][order]
        nucleus = set(order[mass_above < p])
        assert set(samples[:, row]) <= nucleus
        assert len(nucleus) < LOGITS.shape[1]  # the bound is not vacuous


def test_top_p_one_can_reach_every_token_and_tiny_p_is_greedy():
    flat = np.zeros((1, 5), "float32")
    assert set(draws(TopPSampler(1.0), flat, range(200))[:, 0]) == set(range(5))
    assert (draws(TopPSampler(1e-6), seeds=range(5)) == np.argmax(LOGITS, -1)).all()


def test_temperature_sampling_follows_the_distribution():
    logits = np.log(np.array([[0.7, 0.2, 0.1]], "float32"))
    samples = draws(Sampler(1.0), logits, range(2000))[:, 0]
    frequencies = np.bincount(samples, minlength=3) / len(samples)
    np.testing.assert_allclose(frequencies, [0.7, 0.2, 0.1], atol=0.04)


def test_seed_reproduces_and_different_seeds_differ():
    sampler = Sampler(1.5)
    np.testing.assert_array_equal(draws(sampler, seeds=[3]), draws(sampler, seeds=[3]))
    assert len({tuple(d) for d in draws(sampler, seeds=range(10))}) > 1


BAD = [
    (dict(sampler="nucleus"), "sampler must be one of"),
    (dict(sampler="top_k", top_k=0), "top_k must be an integer > 0, got 0"),
    (dict(sampler="top_k", top_k=-2), "top_k must be an integer > 0, got -2"),
    (dict(sampler="top_k"), "needs top_k"),
    (dict(sampler="top_p", top_p=0.0), "top_p must be in (0, 1], got 0.0"),
    (dict(sampler="top_p", top_p=1.5), "top_p must be in (0, 1], got 1.5"),
    (dict(sampler="temperature", temperature=-1.0), "temperature must be >= 0"),
    (dict(sampler="beam", beam_width=0), "beam_width must be an integer >= 1, got 0"),
    (dict(sampler="top_p", top_p=0.9, top_k=3), "top_k is not an option of sampler='top_p'"),
]


@pytest.mark.parametrize("arguments,message", BAD, ids=[m for _, m in BAD])
def test_bad_sampler_arguments_name_the_argument(arguments, message):
    with pytest.raises(ValueError) as error:
        get_sampler(**arguments)
    assert message in str(error.value)


def test_options_too_large_for_the_vocabulary():
    with pytest.raises(ValueError, match="top_k must be <= the vocabulary size 50, got 51"):
        TopKSampler(51).validate(50)
    with pytest.raises(ValueError, match="beam_width must be <= the vocabulary size 50, got 60"):
        BeamSampler(60).validate(50)


def test_samplers_are_equal_by_value():
    assert TopKSampler(5, 0.5) == get_sampler("top_k", top_k=5, temperature=0.5)
    assert hash(TopPSampler(0.9)) == hash(TopPSampler(0.9))
    assert TopKSampler(5) != TopKSampler(6)
