"""Structured pruning: per-layer sizes, the smaller model, `keras-lm prune` end to end."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import assert_one_line_usage_error, run_captured, run_in_process

from keras_lm.models import LSTMLM, TransformerLM
from keras_lm.prune import magnitude_prune, prune, unit_groups
from keras_lm.prune.structured import choose_units, smaller_model
from keras_lm.prune.unstructured import zero_share


def _json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _ids(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("int32")


@pytest.fixture(scope="module")
def uneven():
    """A Transformer whose layers differ in heads and MLP width (as a pruned one does)."""
    keras.utils.set_random_seed(0)
    return TransformerLM(259, sequence_length=16, num_layers=2, num_heads=[2, 1], head_dim=4,
                         hidden_dim=8, intermediate_dim=[5, 3])


def _decode_matches_forward(model):
    ids = _ids((2, 7))
    full = np.asarray(model(ids))
    state = model.initial_state(2, model.sequence_length)
    logits, state = model.prefill(ids[:, :4], state)
    np.testing.assert_allclose(np.asarray(logits), full[:, :4], atol=1e-5)
    for t in range(4, 7):
        logits, state = model.decode(ids[:, t], state, t)
        np.testing.assert_allclose(np.asarray(logits), full[:, t], atol=1e-5)


def test_per_layer_sizes_decode_with_the_cache_and_save(uneven, tmp_path):
    state = uneven.initial_state(1, 16)
    assert tuple(state["layer_0_key"].shape) == (1, 2, 16, 4)
    assert tuple(state["layer_1_value"].shape) == (1, 1, 16, 4)
    _decode_matches_forward(uneven)
    lstm = LSTMLM(259, embedding_dim=8, hidden_dim=[6, 3], num_layers=2)
    assert tuple(lstm.initial_state(1)["layer_1_h"].shape) == (1, 3)
    _decode_matches_forward(lstm)
    for model in (uneven, lstm):
        path = str(tmp_path / f"{model.family}.keras")
        model.save(path)
        again = keras.models.load_model(path)
        np.testing.assert_allclose(np.asarray(again(_ids((1, 5)))),
                                   np.asarray(model(_ids((1, 5)))), atol=1e-6)


def test_a_model_of_scalar_sizes_keeps_its_old_config():
    model = TransformerLM(259, sequence_length=16, num_layers=2, num_heads=2, hidden_dim=8)
    config = model.get_config()
    assert "head_dim" not in config and config["num_heads"] == 2
    assert config["intermediate_dim"] == 32
    again = TransformerLM.from_config(config)  # as a .keras file saved before reads
    assert again.count_params() == model.count_params() and again.head_dim == 4
    with pytest.raises(ValueError, match="head_dim is needed"):
        TransformerLM(259, num_layers=2, num_heads=[2, 1], hidden_dim=8)
    with pytest.raises(ValueError, match="one int per layer"):
        TransformerLM(259, num_layers=2, num_heads=[2, 1, 1], hidden_dim=8, head_dim=4)


def _zero_outgoing(model, groups, removed):
    """A copy of `model` in which the removed units write nothing downstream."""
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    by_path = {w.path: w for w in copy.weights}
    for group, units in zip(groups, removed):
        for weight_slice in group.slices:
            # Heads: their output rows; neurons: mlp_out rows; LSTM units: the
            # recurrent row and the reader's row (axis 0 of a reading weight).
            reads = (weight_slice.axis == 0
                     and weight_slice.variable.path.split("/")[-2:] != ["qkv", "bias"]
                     and not weight_slice.variable.path.endswith(("mlp_in/bias", "cell/bias")))
            if reads and units:
                variable = by_path[weight_slice.variable.path]
                value = np.asarray(variable).copy()
                value[weight_slice.indices[sorted(units)].ravel()] = 0
                variable.assign(value)
    return copy


@pytest.mark.parametrize("family", ["transformer", "lstm"])
def test_the_smaller_model_computes_what_the_base_computes_without_those_units(family):
    keras.utils.set_random_seed(1)
    model = (TransformerLM(259, sequence_length=16, num_layers=2, num_heads=2, hidden_dim=8)
             if family == "transformer" else
             LSTMLM(259, embedding_dim=8, hidden_dim=6, num_layers=2))
    groups = unit_groups(model)
    # Transformer: no head of layer 0, head 0 of layer 1, neurons 1 and 3; LSTM: units 1, 3.
    removed = [({0} if g.layer else set()) if g.kind == "head" else {1, 3} for g in groups]
    pruned = smaller_model(model, groups, removed)
    expected = _zero_outgoing(model, groups, removed)
    ids = _ids((2, 6))
    np.testing.assert_allclose(np.asarray(pruned(ids)), np.asarray(expected(ids)), atol=1e-5)
    assert pruned.count_params() < model.count_params()
    if family == "transformer":
        assert pruned.get_config()["num_heads"] == [2, 1]
        assert pruned.get_config()["intermediate_dim"] == [30, 30]
    else:
        assert pruned.get_config()["hidden_dim"] == [4, 4]


def test_prune_removes_the_share_asked_and_keeps_a_head_and_a_neuron_per_layer():
    keras.utils.set_random_seed(2)
    model = TransformerLM(259, sequence_length=16, num_layers=2, num_heads=2, hidden_dim=8)
    windows = _ids((4, 17))
    pruned, report = prune(model, 0.3, windows, batch_size=2)
    assert 0.3 <= report["removed_share"] < 0.45
    assert report["num_parameters_after"] == pruned.count_params() < model.count_params()
    _, most = prune(model, 0.99, windows, batch_size=2)
    assert most["kept"]["num_heads"] == [1, 1] and most["kept"]["intermediate_dim"] == [1, 1]
    assert most["removed_share"] < 0.99  # what the floor of one unit per layer leaves
    masked = magnitude_prune(model, 0.3)
    assert abs(zero_share(masked) - 0.3) < 0.01 and masked.count_params() == model.count_params()


def test_units_go_in_order_of_importance_per_parameter():
    # Two layers of 2 heads (140 parameters each) and 32 neurons (17 each).
    model = TransformerLM(259, sequence_length=16, num_layers=2, num_heads=2, hidden_dim=8)
    groups = unit_groups(model)
    scores = [np.full(g.count, 1.0) * g.parameters_per_unit() for g in groups]  # 1 per parameter
    scores[2][1] = 0.5 * 140  # head 1 of layer 1: the least per parameter (0.5)
    scores[1][5] = 10.0  # neuron 5 of layer 0: the least in total, 10 / 17 = 0.59 per parameter
    scores[3][7] = 0.7 * 17  # neuron 7 of layer 1: third (0.7 per parameter)
    total = sum(int(g.parameters_per_unit().sum()) for g in groups)
    kinds = [(g.kind, g.layer) for g in groups]
    assert kinds == [("head", 0), ("neuron", 0), ("head", 1), ("neuron", 1)]
    # A share that one head covers removes that head alone, not the smallest total score.
    assert choose_units(groups, scores, 100 / total) == [set(), set(), {1}, set()]
    assert choose_units(groups, scores, 150 / total) == [set(), {5}, {1}, set()]
    assert choose_units(groups, scores, 160 / total) == [set(), {5}, {1}, {7}]


def test_prune_removes_a_head_that_contributes_nothing_first_and_changes_no_output():
    keras.utils.set_random_seed(3)
    model = TransformerLM(259, sequence_length=16, num_layers=2, num_heads=2, hidden_dim=8)
    head = unit_groups(model)[2]  # the heads of layer 1
    assert (head.kind, head.layer) == ("head", 1)
    for weight_slice in head.slices:  # head 0 of layer 1 reads and writes only zeros
        value = np.asarray(weight_slice.variable).copy()
        np.moveaxis(value, weight_slice.axis, 0)[weight_slice.indices[0]] = 0
        weight_slice.variable.assign(value)
    pruned, report = prune(model, 0.01, _ids((4, 17)), batch_size=2)
    assert report["removed_units"] == {"heads_layer_0": [], "neurons_layer_0": [],
                                       "heads_layer_1": [0], "neurons_layer_1": []}
    assert pruned.get_config()["num_heads"] == [2, 1]
    ids = _ids((2, 9), seed=1)
    np.testing.assert_allclose(np.asarray(pruned(ids)), np.asarray(model(ids)), atol=1e-5)


@pytest.mark.slow
def test_a_pruned_model_exports_to_tflite_with_per_layer_state(uneven, tmp_path):
    from keras_lm.export.litert_runner import LiteRTRunner
    from keras_lm.export.tflite import export_tflite

    info = export_tflite(uneven, str(tmp_path / "uneven.tflite"), prefill_lengths=(4,))
    runner = LiteRTRunner(info.path)
    ids = _ids((1, 6))
    full = np.asarray(uneven(ids))
    logits, state = runner.prefill(ids[0, :4])  # (1, 4, vocabulary)
    np.testing.assert_allclose(logits[0], full[0, :4], atol=1e-4)
    logits, state = runner.decode(int(ids[0, 4]), state, 4)
    np.testing.assert_allclose(np.ravel(logits), full[0, 4], atol=1e-4)
    assert np.argmax(logits) == np.argmax(full[0, 4])


@pytest.mark.slow
def test_litert_lm_engine_runs_a_model_of_uneven_layers(uneven, tmp_path):
    """A pruned model's per-layer cache shapes in a `.litertlm` bundle: the engine's greedy text
    is the Keras model's."""
    from keras_lm.export.litertlm import engine_greedy, write_litertlm
    from keras_lm.export.tflite import export_tflite
    from keras_lm.tokenizers import ByteTokenizer

    tokenizer = ByteTokenizer()
    info = export_tflite(uneven, str(tmp_path / "uneven.tflite"), prefill_lengths=(4,))
    path = tmp_path / "uneven.litertlm"
    write_litertlm(info.path, path, tokenizer, uneven.sequence_length)
    prompts = ["ab", "x = ", "def"]
    expected = uneven.generate(prompts, 8, tokenizer=tokenizer)
    assert engine_greedy(path, prompts, 8) == expected
    assert all(len(text) > 0 for text in expected)


# --- keras-lm prune ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pruned_run(trained, tmp_path_factory):
    """The tiny session run, pruned by a quarter in this process."""
    output = tmp_path_factory.mktemp("pruned") / "run"
    result = run_captured("prune", f"--model_dir={trained[0]}", "--sparsity=0.25",
                          f"--output_dir={output}", "--importance_batches=2", "--verbose=0")
    assert result.returncode == 0, result.stderr[-3000:]
    return trained[0], output


def test_prune_writes_a_smaller_run_directory(pruned_run):
    base, output = pruned_run
    assert sorted(os.listdir(output)) == ["config.json", "metrics.json", "model.keras",
                                          "tokenizer.json"]
    config = _json(output / "config.json")
    metrics = _json(output / "metrics.json")
    base_metrics = _json(base / "metrics.json")
    assert config["run_kind"] == "prune" and config["base"]["model_dir"] == str(base)
    assert config["prune"]["removed_share"] >= 0.25
    assert config["val_files"] == _json(base / "config.json")["val_files"]
    assert config["model_config"]["head_dim"] == 16  # tiny: 32 wide, 2 heads
    assert metrics["num_parameters"] < base_metrics["num_parameters"]
    assert metrics["base_val_bits_per_byte"] == base_metrics["val_bits_per_byte"]
    # A quarter of an untrained-looking tiny model's least important units.
    assert abs(metrics["pruned_val_bits_per_byte"] - metrics["base_val_bits_per_byte"]) < 1.0


@pytest.mark.slow
def test_a_recovered_pruned_run_evaluates_generates_exports_and_probes(trained, tmp_path,
                                                                      capsys):
    base = trained[0]
    output = tmp_path / "pruned"
    code, out, err = run_in_process(capsys, "prune", f"--model_dir={base}", "--sparsity=0.6",
                                    f"--output_dir={output}", "--recover_steps=4",
                                    "--importance_batches=2", "--batch_size=4")
    assert code == 0, err
    metrics = _json(output / "metrics.json")
    assert metrics["steps"] == 4 and metrics["prune"]["removed_share"] >= 0.6
    assert _json(output / "config.json")["run_kind"] == "prune"
    code, out, err = run_in_process(capsys, "eval", f"--model_dir={output}")
    assert code == 0, err
    np.testing.assert_allclose(json.loads(out)["bits_per_byte"], metrics["val_bits_per_byte"],
                               rtol=1e-4)
    code, out, err = run_in_process(capsys, "generate", f"--model_dir={output}",
                                    "--prompt=the ", "--max_new_tokens=8", "--temperature=0")
    assert code == 0 and out.strip(), err
    code, out, err = run_in_process(capsys, "export", f"--model_dir={output}",
                                    "--quantize=none", "--prefill_lengths=8", "--verify")
    assert code == 0, err
    assert (output / "tflite" / "model_float32.tflite").is_file()
    assert (output / "saved_model" / "saved_model.pb").is_file()
    code, out, err = run_in_process(capsys, "probe", f"--model_dir={output}",
                                    "--probe=induction_heads", "--batch_size=4")
    assert code == 0, err


@pytest.mark.parametrize("flags, message", [
    (["--sparsity=0"], "--sparsity must be in (0, 1)"),
    (["--sparsity=1"], "--sparsity must be in (0, 1)"),
    (["--sparsity=-0.5"], "--sparsity must be in (0, 1)"),
    ([], "--sparsity must be in (0, 1)"),
    (["--sparsity=0.2", "--recover_steps=-1"], "--recover_steps must be an integer >= 0"),
    (["--sparsity=0.2", "--model_dir=MISSING"], "--model_dir: "),
    (["--sparsity=0.2", "--output_dir=BASE"], "--output_dir=BASE: is the base model's"),
])
def test_bad_input_is_one_line_and_writes_nothing(trained, tmp_path, capsys, flags, message):
    output = tmp_path / "out"
    args = [f.replace("MISSING", str(tmp_path / "nothing")) for f in flags]
    args = [f"--model_dir={trained[0]}", f"--output_dir={output}", *args]
    if "--output_dir=BASE" in flags:
        args = [a for a in args if not a.startswith("--output_dir=")]
        args.append(f"--output_dir={trained[0]}")
        message = f"--output_dir={trained[0]}: is the base model's"
    code, _, err = run_in_process(capsys, "prune", *args)
    assert_one_line_usage_error(code, err, "prune", message)
    assert not output.exists()


def test_a_model_with_value_embeddings_is_refused_in_one_line(trained, tmp_path, capsys):
    import shutil

    import keras_lm
    from keras_lm.models import TransformerLM

    base = tmp_path / "base"
    shutil.copytree(trained[0], base, ignore=shutil.ignore_patterns("logs", "checkpoints"))
    model = keras_lm.load(str(base))
    TransformerLM(**{**model.get_config(), "value_embeddings": 1}).save(str(base / "model.keras"))
    output = tmp_path / "out"
    code, _, err = run_in_process(capsys, "prune", f"--model_dir={base}", "--sparsity=0.2",
                                  f"--output_dir={output}")
    assert_one_line_usage_error(code, err, "prune", f"--model_dir={base}: its value_embeddings=1")
    assert not output.exists()
