"""TransformerLM's `bigram_hash` option: the hash, the step API's `previous_token` state."""

import keras
import numpy as np
import pytest

from keras_lm.generation import GreedySampler, rows_supported
from keras_lm.generation.decoding import decode_tokens
from keras_lm.layers import BigramHashEmbedding
from keras_lm.models import TransformerLM
from keras_lm.models.transformer_lm import PREVIOUS_TOKEN

VOCABULARY = 259


@pytest.fixture(scope="module")
def bigram_model():
    keras.utils.set_random_seed(0)
    model = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, bigram_hash=1024,
                                      smear=True)
    # Filled at random: the table starts at zero, and a zero table would test nothing.
    rng = np.random.default_rng(0)
    model.bigram.embeddings.assign(rng.normal(0, 0.5, model.bigram.embeddings.shape))
    model.smear_layer.scale.assign([0.8])
    return model


def _ids(batch, length, seed=1):
    return np.random.default_rng(seed).integers(0, VOCABULARY, (batch, length)).astype(np.int32)


def test_rows_are_the_hashed_pairs_and_position_0_has_its_own():
    layer = BigramHashEmbedding(vocabulary_size=10, rows=101, width=4)
    ids = np.array([[3, 7, 7, 0]], np.int32)
    # V * V = 100 <= rows - 1: the exact bigram index previous * V + token.
    assert np.asarray(layer.rows_of(ids)).tolist() == [[100, 37, 77, 70]]
    # The token before ids[:, 0] given (plus one): position 0 hashes it too.
    assert np.asarray(layer.rows_of(ids, previous=np.array([6], np.int32))).tolist() == [
        [53, 37, 77, 70]]
    small = BigramHashEmbedding(vocabulary_size=259, rows=1000, width=4)
    rows = np.asarray(small.rows_of(_ids(4, 64)))
    assert rows.min() >= 0 and rows.max() == 999 and len(np.unique(rows)) > 200


def test_starts_as_the_model_without_it_and_costs_rows_times_width():
    keras.utils.set_random_seed(0)
    plain = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY)
    keras.utils.set_random_seed(0)
    model = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, bigram_hash=512)
    ids = _ids(2, 16)
    np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(plain(ids)))
    assert model.count_params() - plain.count_params() == 512 * 32


def test_prefill_and_decode_match_the_full_forward_pass(bigram_model):
    ids = _ids(2, 16)
    full = np.asarray(bigram_model(ids))
    for prefill_length in (1, 6):
        logits, state = bigram_model.prefill(ids[:, :prefill_length],
                                             bigram_model.initial_state(2, 64))
        np.testing.assert_allclose(np.asarray(logits), full[:, :prefill_length], atol=1e-5)
        for position in range(prefill_length, 16):
            logits, state = bigram_model.decode(ids[:, position], state, position)
            np.testing.assert_allclose(np.asarray(logits), full[:, position], atol=1e-5)
    assert np.asarray(state[PREVIOUS_TOKEN]).tolist() == (ids[:, -1] + 1).tolist()
    assert rows_supported(bigram_model)


def test_compiled_decoding_matches_greedy_full_forward_passes(bigram_model):
    prompts = [[int(i) for i in _ids(1, length, seed=length)[0]] for length in (5, 8)]
    new = [[], []]
    for chunk in decode_tokens(bigram_model, prompts, 8, GreedySampler(), end_id=-1, pad_id=0):
        for row, tokens in enumerate(chunk):
            new[row] += list(tokens)
    for prompt, tokens in zip(prompts, new):
        ids = list(prompt)
        for _ in range(8):
            ids.append(int(np.argmax(np.asarray(bigram_model(np.array([ids], np.int32)))[0, -1])))
        assert tokens == ids[len(prompt):]


def test_keras_file_round_trip_and_bad_values(bigram_model, tmp_path):
    path = str(tmp_path / "bigram.keras")
    bigram_model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config()["bigram_hash"] == 1024
    ids = _ids(2, 16)
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(bigram_model(ids)), atol=1e-6)
    for bad in (1, -5, 10**6, 2.5, True):
        with pytest.raises(ValueError, match=f"bigram_hash must be 0 .off. or an integer in "
                                             f"\\[2, 46341\\] .the table's rows., got {bad!r}"):
            TransformerLM(VOCABULARY, bigram_hash=bad)
    with pytest.raises(ValueError, match="bigram_hash=1024: a forward pass from embeddings"):
        bigram_model.logits_from_embeddings(bigram_model.embed_tokens(ids))


def test_continuous_batching_gives_each_row_the_greedy_text(bigram_model):
    """Serve's `SlotBatch`: a prefilled row, then a row that joins mid-flight and has
    its prompt read by the loop (its slot's state reset: previous token none again)."""
    from keras_lm.generation import Row, SlotBatch

    rows = [Row([257] + list(range(60, 72)), 10), Row([257, 80, 81], 12)]
    batch = SlotBatch(bigram_model, 2, end_id=-1, pad_id=0, banned_ids=(0, 257))
    got = {batch.add(rows[0]): []}
    for slot, tokens in batch.step(4).items():
        got[slot] += tokens
    got[batch.add(rows[1])] = []
    while batch.live:
        for slot, tokens in batch.step(4).items():
            got[slot] += tokens
    for slot, row in zip(got, rows):
        ids = list(row.prompt_ids)
        for _ in range(row.max_new_tokens):
            logits = np.array(bigram_model(np.array([ids], np.int32)))[0, -1]
            logits[[0, 257]] = -np.inf
            ids.append(int(np.argmax(logits)))
        assert got[slot] == ids[len(row.prompt_ids):]
    assert batch.counts["read_in_loop"] == 1  # the second row was read by the loop
