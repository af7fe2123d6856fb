"""The speedrun options (issue 15): QK-norm, ReLU², zero-initialised output
projections, logit soft-capping, attention weights only on request, and the
optimizer choices (beta2, the WSD schedule, Muon with its AdamW part).

Tiny models built once per module; each numeric check can fail.
"""

import json
import os

import keras
import numpy as np
import pytest
from conftest import TINY, assert_one_line_usage_error, run_in_process
from keras import ops

from keras_lm.errors import UsageError
from keras_lm.layers import CausalSelfAttention, TransformerBlock
from keras_lm.models import TransformerLM
from keras_lm.optimizers import (
    MUON_ADAMW_LAYERS,
    WarmupStableDecay,
    make_optimizer,
    rate_at_fraction,
)
from keras_lm.training.callbacks import WallClockSchedule

VOCABULARY = 259
# Every new option on at once (and an untied head, which Muon sends to AdamW).
OPTIONS = dict(qk_norm="rms", activation="relu2", zero_init_output=True, logit_softcap=15.0,
               tie_embeddings=False)


def _ids(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("int32")


@pytest.fixture(scope="module")
def trained_options_model():
    """A tiny model with every option, trained a few Muon + WSD steps (so the
    zero-initialised projections have moved and the checks below see them)."""
    keras.utils.set_random_seed(0)
    model = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, **OPTIONS)
    # Eagerly: tracing the step costs more than 4 tiny steps (the compiled
    # paths run in the slow tests and the speedrun smoke run).
    model.compile("muon", learning_rate=2e-2, adam_learning_rate=3e-3, total_steps=4,
                  warmup_steps=1, schedule="wsd", beta2=0.99, run_eagerly=True,
                  jit_compile=False)
    x = _ids((8, 33))
    history = model.fit(x[:, :-1], x[:, 1:], batch_size=2, epochs=1, verbose=0)
    return model, history


# --- the model options -------------------------------------------------------


def test_options_model_trains_and_round_trips_through_keras_files(trained_options_model,
                                                                  tmp_path):
    model, history = trained_options_model
    assert np.isfinite(history.history["loss"][0])
    out = model.blocks[0].attention.output_dense.kernel.numpy()
    assert np.abs(out).max() > 0  # the zero-initialised projection trained
    config = model.get_config()
    assert {name: config[name] for name in OPTIONS} == OPTIONS
    path = str(tmp_path / "options.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_config() == config
    tokens = _ids((2, 20), seed=1)
    np.testing.assert_array_equal(loaded(tokens), model(tokens))


def test_cached_decoding_matches_the_full_forward_with_the_options(trained_options_model):
    model, _ = trained_options_model
    tokens = _ids((1, 12), seed=2)
    full = np.asarray(model(tokens))[0]
    logits, state = model.prefill(tokens[:, :5], model.initial_state(1, 16))
    np.testing.assert_allclose(np.asarray(logits)[0], full[:5], atol=1e-5)
    for position in range(5, 12):
        logits, state = model.decode(tokens[:, position], state, position)
        np.testing.assert_allclose(np.asarray(logits)[0], full[position], atol=1e-5)


def test_models_saved_before_the_options_load_with_them_off():
    keras.utils.set_random_seed(0)
    config = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY).get_config()
    for name in ("qk_norm", "zero_init_output", "logit_softcap"):
        del config[name]  # an old config.json / .keras file has none of them
    model = TransformerLM.from_config(config)
    assert (model.qk_norm, model.zero_init_output, model.logit_softcap) == (False, False, None)
    assert not model.blocks[0].attention.query_norm
    assert model.count_params() == TransformerLM.from_preset(
        "tiny", vocabulary_size=VOCABULARY).count_params()


def test_relu2_is_relu_squared():
    block = TransformerBlock(num_heads=2, intermediate_dim=16, activation="relu2")
    x = keras.random.normal((2, 5, 8), seed=1)
    block(x)
    pre = block.mlp_in(block.mlp_norm(x))  # mlp_in has no activation of its own
    expected = block.mlp_out(ops.square(ops.relu(pre)))
    np.testing.assert_allclose(block._mlp(x), expected, atol=1e-6)
    assert float(ops.min(pre)) < 0  # so relu mattered


def test_zero_init_output_makes_each_block_the_identity_at_init():
    x = keras.random.normal((2, 5, 8), seed=1)
    block = TransformerBlock(num_heads=2, intermediate_dim=16, zero_init_output=True)
    np.testing.assert_array_equal(block(x), x)
    plain = TransformerBlock(num_heads=2, intermediate_dim=16)
    assert np.abs(np.asarray(plain(x)) - np.asarray(x)).max() > 1e-3


def test_attention_only_blocks_have_no_mlp_and_decode_cached_like_the_full_forward(tmp_path):
    from keras_lm.adaptation.lora import target_layers
    from keras_lm.prune.units import unit_groups

    keras.utils.set_random_seed(0)
    model = TransformerLM(VOCABULARY, sequence_length=16, num_layers=2, num_heads=2,
                          hidden_dim=8, intermediate_dim=0)
    tokens = _ids((1, 12), seed=3)
    full = np.asarray(model(tokens))[0]
    with_mlp = TransformerLM(VOCABULARY, sequence_length=16, num_layers=2, num_heads=2,
                             hidden_dim=8)
    with_mlp(tokens)
    block_mlp = 2 * 8 + 8 * 32 + 32 + 32 * 8 + 8  # mlp_norm, mlp_in, mlp_out
    assert model.count_params() == with_mlp.count_params() - 2 * block_mlp
    assert all(b.mlp_in is None for b in model.blocks)
    logits, state = model.prefill(tokens[:, :5], model.initial_state(1, 16))
    np.testing.assert_allclose(np.asarray(logits)[0], full[:5], atol=1e-5)
    for position in range(5, 12):
        logits, state = model.decode(tokens[:, position], state, position)
        np.testing.assert_allclose(np.asarray(logits)[0], full[position], atol=1e-5)
    path = str(tmp_path / "attention_only.keras")
    model.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path)(tokens)[0], full)
    # Pruning sees heads only; LoRA adapts the attention's layers only.
    assert {g.kind for g in unit_groups(model)} == {"head"}
    assert sorted(target_layers(model)) == ["block_0/output", "block_0/qkv",
                                            "block_1/output", "block_1/qkv"]
    with pytest.raises(ValueError, match="intermediate_dim must be >= 0"):
        TransformerLM(VOCABULARY, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=-1)


def test_qk_norm_normalises_each_head_and_changes_the_outputs():
    x = keras.random.normal((2, 6, 8), seed=1)
    plain = CausalSelfAttention(num_heads=2, rotary=True)
    plain(x)
    outputs = {}
    for kind in ("rms", "layer"):
        layer = CausalSelfAttention(num_heads=2, rotary=True, qk_norm=kind)
        layer(x)
        layer.qkv.set_weights(plain.qkv.get_weights())
        layer.output_dense.set_weights(plain.output_dense.get_weights())
        outputs[kind] = np.asarray(layer(x))
        q, k, _ = layer._project(x, 0)  # (batch, heads, time, head_dim), rotary applied
        # Rotary turns pairs of coordinates: the norm of each head's vector stays.
        for vectors in (q, k):
            rms = np.sqrt(np.mean(np.square(np.asarray(vectors)), axis=-1))
            np.testing.assert_allclose(rms, 1.0, atol=1e-3)
    base = np.asarray(plain(x))
    assert np.abs(outputs["rms"] - base).max() > 1e-3
    assert np.abs(outputs["layer"] - outputs["rms"]).max() > 1e-4
    with pytest.raises(ValueError, match="qk_norm must be one of .* got 'l2'"):
        CausalSelfAttention(num_heads=2, qk_norm="l2")


def test_logit_softcap_bounds_the_logits_by_tanh():
    keras.utils.set_random_seed(0)
    capped = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, logit_softcap=2.0)
    keras.utils.set_random_seed(0)
    plain = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY)
    weights = [w * 50 for w in plain.get_weights()]  # large logits
    plain.set_weights(weights)
    capped.set_weights(weights)
    tokens = _ids((2, 10))
    raw = np.asarray(plain(tokens))
    assert np.abs(raw).max() > 10
    logits = np.asarray(capped(tokens))
    assert np.abs(logits).max() <= 2.0
    np.testing.assert_allclose(logits, 2.0 * np.tanh(raw / 2.0), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="logit_softcap must be > 0 or None, got 0"):
        TransformerLM(VOCABULARY, logit_softcap=0)


def test_attention_weights_only_when_asked():
    keras.utils.set_random_seed(0)
    model = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY)
    tokens = _ids((2, 10))
    logits = model(tokens)
    assert not isinstance(logits, (tuple, list))
    same, weights = model(tokens, return_attention=True)
    np.testing.assert_array_equal(same, logits)
    assert len(weights) == model.num_layers
    assert tuple(weights[0].shape) == (2, model.num_heads, 10, 10)
    np.testing.assert_allclose(np.sum(weights[1], axis=-1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(np.asarray(weights[0]), k=1), 0)  # causal


# --- the optimizer options ---------------------------------------------------


def test_wsd_schedule_warms_up_holds_then_decays_linearly():
    schedule = WarmupStableDecay(1e-3, total_steps=100, warmup_steps=10, decay_steps=20)
    rates = [float(schedule(step)) for step in (0, 5, 10, 50, 80, 90, 100, 120)]
    np.testing.assert_allclose(rates, [0, 5e-4, 1e-3, 1e-3, 1e-3, 5.5e-4, 1e-4, 1e-4],
                               rtol=1e-5, atol=1e-9)
    clone = WarmupStableDecay.from_config(schedule.get_config())
    assert float(clone(90)) == pytest.approx(5.5e-4)
    optimizer = make_optimizer("adamw", 1e-3, total_steps=100, warmup_steps=10,
                               schedule="wsd", decay_fraction=0.2)
    assert optimizer.get_config()["learning_rate"]["config"] == dict(
        learning_rate=1e-3, total_steps=100, warmup_steps=10, decay_steps=20, final_fraction=0.1)


def test_the_clock_follows_the_same_shapes():
    assert rate_at_fraction(0.5, "wsd") == 1.0
    assert rate_at_fraction(0.9, "wsd", decay_fraction=0.2) == pytest.approx(0.55)
    assert rate_at_fraction(1.0, "wsd") == pytest.approx(0.1)
    clock = WallClockSchedule(1e-3, seconds=100, schedule="wsd", decay_fraction=0.5)
    assert clock.rate_at(0.5) == pytest.approx(1e-3)
    assert clock.rate_at(0.75) == pytest.approx(0.55e-3)
    # The cosine of before is unchanged.
    cosine = WallClockSchedule(1e-3, seconds=100, warmup_fraction=0.1)
    assert cosine.rate_at(0.55) == pytest.approx(0.55e-3)


def test_beta2_reaches_adam_and_muon_and_defaults_stay():
    assert make_optimizer("adamw").beta_2 == 0.95
    assert make_optimizer("adamw", beta2=0.99).beta_2 == 0.99
    assert make_optimizer("adam", beta2=0.99).beta_2 == 0.99
    assert make_optimizer("muon").adam_beta_2 == 0.999
    assert make_optimizer("muon", beta2=0.95).adam_beta_2 == 0.95


def test_muon_sends_an_untied_head_to_adamw_at_its_own_rate(trained_options_model):
    model, _ = trained_options_model
    optimizer = model.optimizer
    assert optimizer.exclude_layers == MUON_ADAMW_LAYERS
    assert optimizer.adam_lr_ratio == pytest.approx(3e-3 / 2e-2)
    # Muon gives its AdamW part's variables a second moment ("velocity").
    to_adamw = {v.path for v in optimizer.variables if v.path.endswith("_velocity")}

    def adamw(variable):
        return f"{optimizer.name}/{variable.path.replace('/', '_')}_velocity" in to_adamw

    assert adamw(model.head.kernel) and adamw(model.token_embedding.embeddings)
    assert not adamw(model.blocks[0].attention.qkv.kernel)
    assert not adamw(model.blocks[1].mlp_out.kernel)


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="sgd", beta2=0.9), "beta2=0.9: not used by optimizer=sgd"),
    (dict(name="adamw", beta2=1.0), "beta2 must be in (0, 1), got 1.0"),
    (dict(name="adamw", adam_learning_rate=1e-3), "adam_learning_rate=0.001: only used by"),
    (dict(name="muon", adam_learning_rate=0.0), "adam_learning_rate must be > 0, got 0.0"),
    (dict(name="adamw", schedule="linear"), "schedule: unknown value 'linear'"),
    (dict(name="adamw", decay_fraction=0.0), "decay_fraction must be in (0, 1], got 0.0"),
])
def test_bad_optimizer_options_are_named(kwargs, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_optimizer(**kwargs)


BAD_FLAGS = [
    (["--beta2=1.5"], "--beta2 must be in (0, 1), got 1.5"),
    (["--optimizer=sgd", "--beta2=0.9"], "--beta2=0.9: not used by optimizer=sgd"),
    (["--adam_learning_rate=0.01"], "--adam_learning_rate=0.01: only used by optimizer=muon"),
    (["--decay_fraction=1.5"], "--decay_fraction must be in (0, 1], got 1.5"),
    (["--schedule=linear"], "flag --schedule=linear"),
    (["--model_args=qk_norm=l2"], "--model_args: qk_norm must be one of"),
    (["--model_args=logit_softcap=-1"], "--model_args: logit_softcap must be > 0 or None, got -1"),
    (["--model_args=intermediate_dim=-1"],
     "--model_args: intermediate_dim must be >= 0 in every layer, got [-1]"),
]


@pytest.mark.parametrize("flags,message", BAD_FLAGS, ids=[" ".join(f[0]) for f in BAD_FLAGS])
def test_bad_option_flags_get_one_line_and_exit_2(capsys, tmp_path, flags, message):
    output = tmp_path / "never_created"
    code, _, err = run_in_process(capsys, "train", *TINY, f"--output_dir={output}", *flags)
    assert_one_line_usage_error(code, err, "train", message)
    assert not output.exists()


# --- end to end (slow) -------------------------------------------------------


@pytest.mark.slow
def test_train_command_with_every_option(capsys, tmp_path):
    output = tmp_path / "run"
    code, _, err = run_in_process(
        capsys, "train", *TINY, f"--output_dir={output}", "--steps=6", "--eval_interval=3",
        "--optimizer=muon", "--learning_rate=0.02", "--adam_learning_rate=0.003",
        "--beta2=0.99", "--schedule=wsd", "--decay_fraction=0.5",
        "--model_args=qk_norm=true,activation=relu2,zero_init_output=true,"
        "logit_softcap=15,tie_embeddings=false")
    assert code == 0, err
    with open(output / "config.json") as file:
        config = json.load(file)
    assert (config["schedule"], config["beta2"], config["adam_learning_rate"]) == (
        "wsd", 0.99, 0.003)
    from keras_lm.model_dir import load

    model = load(str(output))
    assert (model.qk_norm, model.activation, model.logit_softcap) == (True, "relu2", 15)
    metrics = json.loads((output / "metrics.json").read_text())
    assert np.isfinite(metrics["val_loss"])


@pytest.mark.slow
def test_options_model_exports_to_saved_model_and_litert(trained_options_model, tmp_path):
    import tensorflow as tf

    from keras_lm.export.litert_runner import LiteRTRunner
    from keras_lm.export.saved_model import export_saved_model
    from keras_lm.export.tflite import export_tflite
    from keras_lm.tokenizers import ByteTokenizer

    model, _ = trained_options_model
    ids = _ids((1, 24), seed=3)
    full = np.asarray(model(ids))[0]
    runner = LiteRTRunner(export_tflite(model, str(tmp_path / "m.tflite"),
                                        prefill_lengths=(8,)).path)
    logits, state = runner.prefill(ids[0, :8])
    np.testing.assert_allclose(logits[0], full[:8], atol=1e-4)
    for position in range(8, 24):
        logits, state = runner.decode(ids[0, position], state, position)
        np.testing.assert_allclose(logits[0], full[position], atol=1e-4)
    path = str(tmp_path / "saved_model")
    export_saved_model(model, ByteTokenizer(), path)
    served = tf.saved_model.load(path)
    np.testing.assert_allclose(
        served.signatures["logits"](token_ids=tf.constant(ids))["logits"][0], full, atol=1e-5)
    assert os.path.isdir(path)


# --- the speedrun benchmark's arithmetic ------------------------------------


def _speedrun():
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "speedrun.py")
    spec = importlib.util.spec_from_file_location("speedrun", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speedrun_interpolates_between_validations_and_parses_candidates():
    speedrun = _speedrun()
    curve = [(0, 0.0, 5.0), (100, 10.0, 3.0), (200, 20.0, 2.0)]  # (step, seconds, loss)
    assert speedrun.time_to_loss(curve, 2.5) == pytest.approx(15.0)
    assert speedrun.time_to_loss(curve, 4.0) == pytest.approx(5.0)
    assert speedrun.time_to_loss(curve, 1.0) is None
    assert speedrun.loss_at_time(curve, 12.0) == pytest.approx(2.8)
    assert speedrun.loss_at_time(curve, 25.0) is None
    baseline = dict(final_loss=2.5, seconds=30.0)
    row = speedrun.compare(baseline, dict(name="b", curve=curve, final_loss=2.0, seconds=20.0,
                                          steps=200, tokens_per_second=1.0))
    assert row["ratio"] == pytest.approx(0.5) and row["loss_at_baseline_seconds"] is None
    (name, settings), = speedrun.parse_candidates("qk:qk_norm=true,learning_rate=0.002")
    model, run = speedrun.recipe(settings, steps=50)
    assert (name, model["qk_norm"], run["learning_rate"], run["steps"]) == ("qk", True, 0.002, 50)
    assert model["position_embedding"] == "learned" and run["beta2"] == 0.99  # the baseline's
    names = [name for name, _ in speedrun.parse_candidates("ablation")]
    assert names == [*speedrun.OPTIONS, "all"]
    with pytest.raises(SystemExit, match="unknown setting 'depth'"):
        speedrun.recipe({"depth": 3}, steps=50)
