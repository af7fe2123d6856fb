import math
import time

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from keras_lm import data
from keras_lm.models import TransformerLM
from keras_lm.tokenizers import ByteTokenizer
from keras_lm.training import LanguageModelLogs, SampleWriter, WallClockSchedule


def test_wall_clock_schedule_shape():
    schedule = WallClockSchedule(1e-3, seconds=100, warmup_fraction=0.1, final_fraction=0.1)
    assert schedule.rate_at(0.0) == 0.0
    assert schedule.rate_at(0.05) == pytest.approx(5e-4)
    assert schedule.rate_at(0.1) == pytest.approx(1e-3)
    assert schedule.rate_at(0.55) == pytest.approx(0.55e-3)
    assert schedule.rate_at(1.0) == pytest.approx(1e-4)
    rates = [schedule.rate_at(f / 100) for f in range(10, 101)]
    assert rates == sorted(rates, reverse=True)


def test_wall_clock_schedule_stops_training_on_time(corpus):
    keras.utils.set_random_seed(0)
    tokenizer = ByteTokenizer()
    model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
    # Eagerly: the clock, not the step, is under test (tracing costs ~8 s).
    model.compile("adamw", learning_rate=1e-3, jit_compile=False, run_eagerly=True)
    ds = data.text_dataset(corpus, tokenizer, 16, 4, shuffle=True, repeat=True, seed=0)
    model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)  # build the model first
    clock = WallClockSchedule(1e-3, seconds=3.0)
    start = time.time()
    model.fit(ds, steps_per_epoch=100000, epochs=1, verbose=0, callbacks=[clock])
    elapsed = time.time() - start
    assert clock.stopped_at_step is not None
    assert 3.0 <= elapsed < 3.0 + 10.0
    # The last rate set is the end of the schedule: 10% of the peak.
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4, rel=1e-5)


def test_logs_and_samples_reach_tensorboard_and_the_samples_file(corpus, tmp_path):
    keras.utils.set_random_seed(0)
    tokenizer = ByteTokenizer()
    model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
    # Eagerly: the callbacks' logs are under test, not the traced step.
    model.compile("adamw", learning_rate=1e-3, jit_compile=False, run_eagerly=True)
    train = data.text_dataset(corpus, tokenizer, 16, 4, shuffle=True, repeat=True, seed=0)
    val = data.text_dataset(corpus[:1], tokenizer, 16, 4)
    ratio = data.tokens_per_byte(corpus, tokenizer)
    samples = tmp_path / "samples.txt"
    callbacks = [
        LanguageModelLogs(tokens_per_step=64, tokens_per_byte=ratio),
        SampleWriter(tokenizer, ["the "], log_dir=str(tmp_path / "logs" / "samples"),
                     samples_path=str(samples), max_new_tokens=5, seed=1),
        keras.callbacks.TensorBoard(log_dir=str(tmp_path / "logs")),
    ]
    history = model.fit(train, steps_per_epoch=3, epochs=2, validation_data=val,
                        validation_steps=1, callbacks=callbacks, verbose=0)
    bpb = history.history["val_bits_per_byte"][-1]
    assert bpb == pytest.approx(history.history["val_loss"][-1] * ratio / math.log(2))
    assert history.history["tokens_seen"] == [3 * 64.0, 6 * 64.0]

    train_events = EventAccumulator(str(tmp_path / "logs" / "train")).Reload()
    tags = set(train_events.Tags()["tensors"]) | set(train_events.Tags()["scalars"])
    for tag in ("epoch_loss", "epoch_bits_per_byte", "epoch_tokens_per_second",
                "epoch_learning_rate", "epoch_perplexity"):
        assert tag in tags, tags
    val_events = EventAccumulator(str(tmp_path / "logs" / "validation")).Reload()
    assert "epoch_bits_per_byte" in set(val_events.Tags()["tensors"]) | set(
        val_events.Tags()["scalars"])
    sample_events = EventAccumulator(str(tmp_path / "logs" / "samples")).Reload()
    texts = sample_events.Tensors("samples")
    assert [event.step for event in texts] == [3, 6]
    text = texts[-1].tensor_proto.string_val[0].decode()
    assert "step 6" in text and "the " in text
    assert samples.read_text(encoding="utf-8").count("=== step") == 2
    assert np.isfinite(bpb)
