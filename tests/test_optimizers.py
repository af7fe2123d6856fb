import keras
import numpy as np
import pytest

from keras_lm.errors import UsageError
from keras_lm.models import TransformerLM
from keras_lm.optimizers import OPTIMIZERS, make_optimizer, warmup_cosine


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    schedule = warmup_cosine(1e-3, total_steps=110, warmup_steps=10, final_fraction=0.1)
    assert float(schedule(0)) == pytest.approx(0.0)
    assert float(schedule(5)) == pytest.approx(5e-4)
    assert float(schedule(10)) == pytest.approx(1e-3)
    assert float(schedule(60)) == pytest.approx(0.55e-3, rel=1e-4)  # halfway down
    assert float(schedule(110)) == pytest.approx(1e-4)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains_a_step(name):
    keras.utils.set_random_seed(0)
    model = TransformerLM.from_preset("tiny", vocabulary_size=259)
    # Eagerly: tracing the train step costs ~8 s per optimizer, the step itself
    # milliseconds (the traced and XLA paths are tested in test_models).
    model.compile(name, learning_rate=1e-2, jit_compile=False, run_eagerly=True)
    x = np.random.default_rng(0).integers(0, 256, (4, 9)).astype("int32")
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x[:, :-1], x[:, 1:], epochs=1, verbose=0)
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(changed)


def test_unknown_optimizer_and_bad_rate_are_named():
    with pytest.raises(UsageError, match="optimizer: unknown value 'rmsprop'"):
        make_optimizer("rmsprop")
    with pytest.raises(UsageError, match="learning_rate must be > 0, got -1"):
        make_optimizer("adam", -1)
