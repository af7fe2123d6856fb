"""`tensor_sampler` (a server's per-row sampler): filters exact, draws per row, greedy rows argmax."""

import numpy as np
import tensorflow as tf

from keras_lm.generation import samplers

VOCABULARY = 300  # more than samplers.CANDIDATES: both the fast and the full-sort paths run
RNG = np.random.default_rng(0)
# Peaky rows (the nucleus lies among the best 64) and flat ones (it reaches past them).
LOGITS = np.concatenate([RNG.normal(size=(4, VOCABULARY)) * 6,
                         RNG.normal(size=(4, VOCABULARY)) * 0.3]).astype("float32")
# (temperature, top_k, top_p) per row: greedy, temperature only, top-k, top-p, both,
# and filters past the candidates (top_k 100, a flat nucleus).
OPTIONS = [(0.0, 0, 1.0), (0.8, 0, 1.0), (1.0, 5, 1.0), (0.8, 0, 0.9),
           (1.0, 100, 1.0), (0.9, 0, 0.99), (1.2, 20, 0.8), (0.7, 0, 0.5)]  # rows 4-7 flat


def reference_kept(logits, temperature, top_k, top_p):
    """The tokens top-k, then top-p over what top-k kept, keep (NumPy, one row)."""
    scaled = logits / max(temperature, 1e-6)
    order = np.argsort(-scaled, kind="stable")
    kept = np.ones(len(scaled), bool)
    if 0 < top_k < len(scaled):
        kept &= scaled >= scaled[order[top_k - 1]]
    if top_p < 1:
        probabilities = np.where(kept, np.exp(scaled - scaled.max()), 0.0)
        probabilities /= probabilities.sum()
        mass_above = np.cumsum(probabilities[order]) - probabilities[order]
        nucleus_end = scaled[order[max(int((mass_above < top_p).sum()), 1) - 1]]
        kept &= scaled >= nucleus_end
    return set(np.flatnonzero(kept))


@tf.function(jit_compile=True, autograph=False)
def select(logits, temperature, top_k, top_p, seed):
    return samplers.tensor_sampler(temperature, top_k, top_p)(logits, seed)


def draw(rows, step):
    """The ids drawn for these row indices (a batch of them, in this order) at one step."""
    temperature, top_k, top_p = (tf.constant([OPTIONS[r][i] for r in rows]) for i in range(3))
    seed = tf.constant([[r * 11, step] for r in rows], tf.int32)
    return select(tf.constant(LOGITS[rows]), temperature, top_k, top_p, seed).numpy()


def test_each_row_draws_the_same_alone_and_anywhere_in_a_batch_within_its_filters():
    rows = list(range(len(LOGITS)))
    for step in range(12):
        batch = draw(rows, step)
        assert batch[0] == np.argmax(LOGITS[0])  # the greedy row
        np.testing.assert_array_equal(draw(rows[::-1], step)[::-1], batch)
        for row in (1, 4, 5):  # alone: a batch whose only row is within the candidates or not
            assert draw([row], step)[0] == batch[row]
        for row, token in enumerate(batch):
            assert token in reference_kept(LOGITS[row], *OPTIONS[row])


def test_filter_thresholds_keep_what_top_k_then_top_p_keep():
    for candidates in (samplers.CANDIDATES, VOCABULARY):
        for row, (temperature, top_k, top_p) in enumerate(OPTIONS):
            scaled = LOGITS[row:row + 1] / max(temperature, 1e-6)
            k = top_k if 0 < top_k < VOCABULARY else VOCABULARY
            threshold, exact = samplers._filter_threshold(
                tf.constant(scaled), tf.constant([[k]]), tf.constant([[top_p]]), candidates)
            if bool(exact[0, 0]):
                kept = set(np.flatnonzero(scaled[0] >= threshold.numpy()[0, 0]))
                assert kept == reference_kept(LOGITS[row], temperature, top_k, top_p), (row, candidates)
            else:  # only rows whose filters reach past the candidates take the full sort
                assert candidates < VOCABULARY and row in (4, 5, 7)  # flat rows


def test_row_draws_follow_the_distribution_and_seeds_differ():
    rows = 4000
    logits = tf.constant(np.log([[0.7, 0.2, 0.1]] * rows).astype("float32"))
    seed = tf.constant([[i, 3 * i] for i in range(rows)], tf.int32)
    ones = tf.ones([rows])
    ids = select(logits, ones, tf.zeros([rows], tf.int32), ones, seed).numpy()
    np.testing.assert_allclose(np.bincount(ids, minlength=3) / rows, [0.7, 0.2, 0.1], atol=0.03)
    # A row's draws over the steps (its position in the seed) follow it too.
    steps = tf.constant([[5, i] for i in range(rows)], tf.int32)
    ids = select(logits, ones, tf.zeros([rows], tf.int32), ones, steps).numpy()
    np.testing.assert_allclose(np.bincount(ids, minlength=3) / rows, [0.7, 0.2, 0.1], atol=0.03)
