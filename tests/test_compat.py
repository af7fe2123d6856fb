"""Canaries for keras_lm.compat: each fails when upstream changes what a workaround
relies on, so we notice when the workaround must change or can go."""

import inspect
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_lm import compat


def test_the_installed_versions_are_the_tested_ones():
    # setup.cfg pins these ranges; a new version means re-running these canaries.
    assert keras.__version__.startswith(compat.TESTED_KERAS + "."), keras.__version__
    assert tf.__version__.startswith(compat.TESTED_TENSORFLOW + "."), tf.__version__


def test_keras_still_builds_from_an_iterator_in_maybe_symbolic_build():
    # compat.symbolic_build_inputs overrides this private hook's arguments.
    parameters = inspect.signature(keras.Model._maybe_symbolic_build).parameters
    assert {"iterator", "data_batch"} <= set(parameters)
    model = keras.Sequential([keras.layers.Dense(1)])
    assert hasattr(model, "_distribute_strategy")
    # Without a strategy the inputs pass through unchanged.
    assert compat.symbolic_build_inputs(model, "iterator", None) == ("iterator", None)


def test_keras_still_builds_the_optimizer_inside_the_first_trace():
    # compat.build_optimizer builds it before: without that, a Keras model's
    # step traces twice. Once Keras builds it first itself, drop the workaround.
    class Counted(keras.Sequential):
        traces = 0

        def train_step(self, data):
            Counted.traces += 1
            return super().train_step(data)

    model = Counted([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0)
    assert Counted.traces == 2


def test_keras_loss_tracker_is_what_the_logs_report():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    compat.track_loss(model, tf.constant(3.0), 4)
    assert float(model._loss_tracker.result()) == 3.0


def test_keras_still_clips_before_it_all_reduces():
    # The clip runs in `apply` (base optimizer), the all-reduce later in the
    # TensorFlow backend's update step: per-replica clipping, which
    # compat.summed_and_clipped corrects. Once Keras reduces first, drop it.
    from keras.src.backend.tensorflow.optimizer import TFOptimizer
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    apply = inspect.getsource(BaseOptimizer._backend_apply_gradients)
    assert apply.index("_clip_gradients") < apply.index("_backend_update_step")
    assert "_all_reduce_sum_gradients" in inspect.getsource(TFOptimizer._backend_update_step)


def test_summed_and_clipped_equals_a_global_clip_on_one_replica():
    optimizer = keras.optimizers.SGD(global_clipnorm=1.0)
    gradients = [tf.constant([3.0, 4.0]), None, tf.constant([0.0])]
    shares, norm = compat.summed_and_clipped(gradients, optimizer, replicas=1)
    assert float(norm) == 5.0
    np.testing.assert_allclose(shares[0].numpy(), [0.6, 0.8], rtol=1e-6)
    assert shares[1] is None


def test_keras_reduces_multi_worker_logs_on_axis_0():
    # A scalar log fails `strategy.reduce("MEAN", v, axis=0)`: reducible_logs
    # reshapes them to 1-vectors under a multi-worker strategy, where Keras
    # makes the same private check.
    from keras.src.backend.tensorflow import trainer

    source = inspect.getsource(trainer)
    assert 'strategy.reduce("MEAN", v, axis=0)' in source
    assert "_in_multi_worker_mode()" in source
    logs = {"loss": tf.constant(1.0)}
    assert compat.reducible_logs(logs) is logs  # no strategy: unchanged


def test_backup_and_restore_keeps_its_private_paths(tmp_path):
    callback = compat.RestoreFromChief(str(tmp_path / "own"), str(tmp_path / "chief"))
    for name in ("_weights_path", "_training_metadata_path", "_load_model"):
        assert hasattr(callback, name), name
    assert callback._weights_path.startswith(str(tmp_path / "own"))


def test_keras_still_warns_when_validation_data_runs_out():
    # Keras' advice ("use .repeat()") is wrong for a finite validation set
    # read whole on purpose; the trainer silences it. Once Keras stops
    # warning here, quiet_keras_data_warnings can go.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((4, 2), "float32")
    train = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(2).repeat()
    # Of unknown length, as a finite stream of text windows is.
    val = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(2).filter(lambda *_: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(train, steps_per_epoch=2, epochs=2, validation_data=val, verbose=0)
    assert any("ran out of data" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with compat.quiet_keras_data_warnings():
            model.fit(train, steps_per_epoch=2, epochs=2, validation_data=val, verbose=0)
    assert not any("ran out of data" in str(w.message) for w in caught)


def test_xdist_groups_still_reach_pytest(request):
    # setup.cfg pins pytest < 9.2: pytest-xdist 3.8 sends a group's tests to
    # one worker by appending "@group" to `item._nodeid`, and pytest 9.2 reads
    # the node id from elsewhere, so every worker would train its own copy of
    # each shared run (measured: the suite took twice as long).
    item = request.node
    original = item._nodeid
    item._nodeid = original + "@canary"
    try:
        assert item.nodeid == original + "@canary"
    finally:
        item._nodeid = original


def _tiny_int8_converter():
    """A converter for one float matmul (+ ReLU), set for int8 with calibration data."""

    class Tiny(tf.Module):
        def __init__(self):
            self.kernel = tf.Variable(
                np.random.default_rng(0).normal(size=(8, 4)).astype("float32"))

        @tf.function(input_signature=[tf.TensorSpec((1, 8), tf.float32)])
        def __call__(self, x):
            return tf.nn.relu(tf.matmul(x, self.kernel))

    module = Tiny()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: (
        [np.random.default_rng(i).normal(size=(1, 8)).astype("float32")] for i in range(8))
    return converter


def test_the_converter_still_calibrates_only_and_quantizes_with_a_denylist_after():
    # compat.calibrate_only sets a private converter attribute (the quantization
    # debugger's switch); setting an attribute that no longer exists would do
    # nothing, and convert() would quantize at once: the float check catches it.
    from keras_lm.export.litert_runner import float_operator_names, operator_names

    converter = _tiny_int8_converter()
    assert converter._experimental_calibrate_only is False
    quantized_at_once = converter.convert()
    assert "QUANTIZE" in operator_names(quantized_at_once)  # what the switch prevents
    calibrated = compat.calibrate_only(_tiny_int8_converter()).convert()
    assert operator_names(calibrated) == float_operator_names(calibrated) == ["FULLY_CONNECTED"]
    full = compat.quantize_calibrated_model(calibrated)
    assert "QUANTIZE" in operator_names(full) and float_operator_names(full) == []
    denied = compat.quantize_calibrated_model(calibrated, denylisted_ops=["FULLY_CONNECTED"])
    assert float_operator_names(denied) == ["FULLY_CONNECTED"]


def _bpe_texts():
    """Real source text and random whitespace-heavy strings: where word splitting differs."""
    import glob
    import random
    import sysconfig

    rng = random.Random(0)
    files = sorted(glob.glob(sysconfig.get_paths()["stdlib"] + "/*.py"))[:40]
    texts = [open(path, encoding="utf-8", errors="replace").read()[: rng.randint(100, 3000)]
             for path in files]
    pieces = [" ", "  ", "\n", "\t", "\r\n", "a", "ab", "1", "12345", "'s", "'S", "#", "é",
              "\u00a0", "\u3000", "\u2009", "\u0085", "x'", "-", "<|endoftext|>", "\f", "\v"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))) for _ in range(800)]
    return texts + ["x = 2  # ok\n\n    y", "def f():\n    "]


def test_keras_hub_eager_bpe_still_differs_from_its_graph_path_and_align_fixes_it():
    # compat.align_keras_hub_bpe: when upstream splits words eagerly as its
    # graph path does, the first assertion fails and the workaround can go.
    from keras_lm.pretrained.tiny_presets import tiny_causal_lm

    hub = tiny_causal_lm("gpt2").preprocessor.tokenizer
    graph = tf.function(lambda text: hub(text))
    text = "x = 2  # ok"
    assert list(hub(text)) != graph(tf.constant(text)).numpy().tolist()
    compat.align_keras_hub_bpe(hub)
    for text in _bpe_texts():
        assert [int(i) for i in hub(text)] == graph(tf.constant(text)).numpy().tolist(), text
