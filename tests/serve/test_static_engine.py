"""Static batching (`Engine`): a row that has all its tokens ends at once, while the longer
rows of its batch go on (its client does not wait for them)."""

import queue

import keras

from keras_lm.generation import TextStream
from keras_lm.serve.engine import Engine, Sequence


def test_a_short_row_ends_before_the_long_row_of_its_batch():
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer

    keras.utils.set_random_seed(4)
    model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=64)
    engine = Engine(model, ByteTokenizer(), max_batch_size=2, steps_per_call=4)
    events = queue.Queue()
    rows = [engine.encode(["x"], n, temperature=1.0, seed=n)[0] for n in (2, 40)]
    batches = []
    engine.on_batch = lambda rows, seconds, tokens: batches.append(rows)
    try:
        engine.submit([Sequence(row, TextStream(engine.tokenizer),
                                lambda kind, value, i=i: events.put((i, kind)))
                       for i, row in enumerate(rows)])
        order = []
        while sum(kind == "done" for _, kind in order) < 2:
            order.append(events.get(timeout=120))
    finally:
        engine.close()
    assert batches == [2]  # one batch of both rows
    short_done = order.index((0, "done"))
    assert (1, "done") not in order[:short_done]
    assert (1, "text") in order[short_done:]  # the long row went on after it
