"""Continuous batching (`SlotBatch`): a row's tokens do not depend on when it joined, on its
neighbours or on resizing; the per-row positions of `decode` equal the scalar ones; seeds."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.generation import Row, RowBatch, SlotBatch, rows_supported
from keras_lm.generation.row_batch import prefill_programs, seed_words
from keras_lm.generation.slot_batch import insert_programs, slot_programs

SPECIAL = dict(end_id=-1, pad_id=0, banned_ids=(0, 257))  # end_id -1: each row runs to its limit


@pytest.fixture(scope="module")
def model():
    from keras_lm.models import TransformerLM

    keras.utils.set_random_seed(1)
    return TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=48)


def alone(model, row):
    batch, tokens = RowBatch(model, [row], 1, **SPECIAL), []
    while not batch.finished:
        tokens += batch.step(4)[0]
    return tokens


ROWS = [Row([257, 100, 101, 102, 103], 20, 0.9, 0, 0.95, 5),
        Row([257, 80], 30, 0.0),
        Row([257] + list(range(60, 75)), 12, 1.0, 5, 1.0, 2**31 + 5)]


def test_rows_that_join_mid_flight_and_move_buckets_keep_their_tokens(model):
    expected = [alone(model, row) for row in ROWS]
    batch = SlotBatch(model, 1, **SPECIAL)
    got = {}

    def run(steps):
        for slot, tokens in batch.step(steps).items():
            got[owner[slot]] = got.get(owner[slot], []) + tokens

    owner = {batch.add(ROWS[0]): 0}
    run(5)  # the first row alone for a while
    batch, moves = batch.resize(2)  # a second row needs a bigger bucket
    owner = {moves[slot]: row for slot, row in owner.items()}
    owner[batch.add(ROWS[1])] = 1
    while len(batch.live) == 2:
        run(3)
    owner[batch.add(ROWS[2])] = 2  # into the slot the first row left
    while batch.live:
        run(5)
    assert [got[i] for i in range(3)] == expected
    assert [len(tokens) for tokens in expected] == [20, 30, 12]
    assert batch.free_slots() == [0, 1]


def test_a_stopped_row_frees_its_slot_and_a_new_row_takes_it(model):
    batch = SlotBatch(model, 1, **SPECIAL)
    slot = batch.add(ROWS[1])
    batch.step(2)
    with pytest.raises(ValueError, match="slots are taken"):
        batch.add(ROWS[0])
    batch.stop(slot)
    assert batch.live == [] and batch.step(3) == {}
    slot = batch.add(ROWS[0])
    tokens = []
    while batch.live:
        tokens += batch.step(6)[slot]
    assert tokens == alone(model, ROWS[0])


def test_one_position_per_row_equals_the_scalar_decode(model):
    assert rows_supported(model)
    state = model.initial_state(3, 48)
    _, state = model.prefill(tf.constant(np.arange(1, 31).reshape(3, 10), tf.int32), state)
    token = tf.constant([5, 6, 7], tf.int32)
    positions = [10, 4, 7]
    logits, rows_state = model.decode(token, state, tf.constant(positions, tf.int32))
    for row, position in enumerate(positions):
        expected, scalar_state = model.decode(token, state, position)
        np.testing.assert_allclose(logits[row], expected[row], rtol=1e-5, atol=1e-5)
        for name in scalar_state:
            np.testing.assert_allclose(rows_state[name][row], scalar_state[name][row],
                                       rtol=1e-5, atol=1e-5)


def test_one_loop_per_bucket_traced_once(model):
    for batch_size in (1, 2):  # made and used by the tests above, or here
        batch = SlotBatch(model, batch_size, **SPECIAL)
        batch.add(Row([257, 3], 2))
        while batch.live:
            batch.step(2)
    loops = slot_programs(model)
    assert sorted(loops) == [(1, 48), (2, 48)]
    assert all(run.experimental_get_tracing_count() == 1 for run in loops.values())


def test_seeds_use_every_bit_and_are_bounded():
    assert seed_words(5) == [5, 0]
    words = {tuple(seed_words(s)) for s in (5, 2**31 + 5, 2**32 + 5, 2**62 + 5, 2**63 - 1)}
    assert len(words) == 5
    for bad in (-1, 2**63, 1.5):
        with pytest.raises(ValueError, match="seed"):
            seed_words(bad)


LONG = [Row([257] + list(range(30, 50)), 8, 0.9, 0, 1.0, 3),  # 21 tokens: prefill 16
        Row([257] + list(range(90, 107)), 6, 0.0),  # 18 tokens: prefill 16
        Row([257] + list(range(110, 144)), 5, 1.0, 7, 0.9, 4)]  # 35 tokens: prefill 32


def test_rows_that_join_together_share_one_prefill_per_length_and_one_insert(model):
    joining = LONG + ROWS[:1]
    expected = [alone(model, row) for row in joining]
    batch = SlotBatch(model, 8, **SPECIAL)
    running = batch.add(ROWS[1])  # an idle batch: prefilled (1 prefill, 1 insert)
    batch.step(2)
    slots = [batch.add(row) for row in joining]  # 3 long prompts, 1 short
    got = {slot: [] for slot in [running, *slots]}
    while batch.live:
        for slot, tokens in batch.step(4).items():
            got[slot] += tokens
    assert [got[slot] for slot in slots] == expected
    # The long ones: lengths 16 (two rows, one call of a 2-row count bucket) and 32, one
    # insert; the short one was read by the loop, alongside the running row.
    assert batch.counts["prefill_calls"] == 1 + 2 and batch.counts["insert_calls"] == 1 + 1
    assert batch.counts["read_in_loop"] == 1 and batch.counts["joins"] == 5
    assert insert_programs(model)[48].experimental_get_tracing_count() == 1  # any batch size
    assert prefill_programs(model)[48].experimental_get_tracing_count() == 1  # any count


def test_an_lstm_row_that_takes_a_used_slot_starts_from_an_empty_state():
    from keras_lm.models import LSTMLM

    keras.utils.set_random_seed(2)
    lstm = LSTMLM(vocabulary_size=259, embedding_dim=8, hidden_dim=16, sequence_length=96)
    assert rows_supported(lstm)
    batch = SlotBatch(lstm, 2, **SPECIAL)
    batch.add(Row([257, 5], 90))  # runs throughout: the others join a running batch
    batch.step(1)
    for row in (ROWS[1], ROWS[0]):
        slot, got = batch.add(row), []  # slot 1, where the previous row left its state
        while batch.rows[slot] is not None:
            got += batch.step(7)[slot]
        assert got == alone(lstm, row)
    assert batch.counts["read_in_loop"] == 2
