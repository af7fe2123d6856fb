"""`ContinuousEngine`'s bookkeeping: rows that wait join at once (one resize, no prefill of
their own), the batch moves to a smaller bucket only after its rows stayed few, and a row
whose first token shows no text asks for a short call."""

import queue
import threading

import keras
import pytest

from keras_lm.generation import TextStream
from keras_lm.serve.continuous_engine import ContinuousEngine
from keras_lm.serve.engine import Sequence


@pytest.fixture(scope="module")
def model():
    from keras_lm.models import TransformerLM

    keras.utils.set_random_seed(3)
    return TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=48)


def test_waiting_rows_join_at_once_and_the_batch_shrinks_after_eight_calls(model):
    from keras_lm.tokenizers import ByteTokenizer

    first_call, go = threading.Event(), threading.Event()
    record = []  # (live rows, batch size) after each call

    def on_batch(rows, seconds, new_tokens):
        record.append((len(engine._slots), engine._batch.batch_size if engine._batch else 0))
        first_call.set()
        assert go.wait(60)

    engine = ContinuousEngine(model, ByteTokenizer(), max_batch_size=4, steps_per_call=4,
                              on_batch=on_batch)
    events = queue.Queue()

    def submit(prompt, max_new_tokens):
        row = engine.encode([prompt], max_new_tokens, temperature=0.7, seed=1)[0]
        engine.submit([Sequence(row, TextStream(engine.tokenizer),
                                lambda *e: events.put(e) if e[0] != "text" else None)])

    try:
        submit("x", 44)  # runs alone first: the others wait for its call to end
        assert first_call.wait(120)
        for prompt in ("a", "b", "c"):
            submit(prompt, 3)
        go.set()
        for _ in range(4):
            assert events.get(timeout=120)[0] == "done"
    finally:
        go.set()
        engine.close()
    counts = engine.counts
    # Bucket 1 -> 4 once for the three joiners, 4 -> 1 once at the end.
    assert counts["resizes"] == 2 and counts["joins"] == 4
    # The first row started an idle batch (prefilled); the three read their prompts in the loop.
    assert counts["prefill_calls"] == 1 and counts["insert_calls"] == 1
    assert counts["read_in_loop"] == 3
    assert counts["loop_calls"] == len(record)
    last_shared = max(i for i, (live, _) in enumerate(record) if live > 1)
    # The first row alone, after the others left (the last call empties the batch).
    alone = [size for live, size in record[last_shared + 1:] if live == 1]
    assert alone[:engine.shrink_after_calls - 1] == [4] * (engine.shrink_after_calls - 1)
    assert set(alone[engine.shrink_after_calls - 1:]) == {1}, record
    assert record[-1] == (0, 0)


def test_a_row_whose_first_token_shows_no_text_asks_for_one_more_step():
    from keras_lm.generation import Row
    from keras_lm.serve.engine import steps_to_first_text
    from keras_lm.tokenizers import ByteTokenizer

    def sequence(stop=()):
        return Sequence(Row([257], 8), TextStream(ByteTokenizer(), stop=stop), lambda *e: None)

    waiting, accented, stopped = sequence(), sequence(), sequence(stop=["\n\n\n"])
    assert steps_to_first_text(waiting) == 0  # no token yet: the batch's steps_to_first_token
    accented.deliver([0xC3])  # the first byte of "é": nothing to show yet
    assert accented.text.text == "" and steps_to_first_text(accented) == 1
    accented.deliver([0xA9])
    assert accented.text.text == "é" and steps_to_first_text(accented) == 0
    stopped.deliver([ord("a")])  # held: the last 2 characters may begin a stop string
    assert stopped.text.text == "" and steps_to_first_text(stopped) == 3
