"""LiteRT export: parity with Keras, builtin-only operators, quantization, failures.

Each tiny model is converted once per variant (module fixtures); the whole
file runs in about a minute on two cores.
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile

import ai_edge_litert  # noqa: F401  a hard dependency: fail, never skip, if it is missing
import keras
import numpy as np
import pytest

from keras_lm.export import tflite as tflite_export
from keras_lm.export.litert_runner import LiteRTRunner, read_metadata, run_prompt
from keras_lm.export.schema import ExportSchema, litert_name
from keras_lm.export.tflite import (
    QUANTIZATIONS,
    NonBuiltinOperatorError,
    StepArchive,
    builtin_operator_names,
    export_tflite,
    step_archive,
)
from keras_lm.models import LSTMLM, TransformerLM

VOCABULARY = 259
CONTEXT = 64  # the tiny presets' sequence_length
PREFILL_LENGTHS = (8, 32)
BUILDERS = {
    "rotary": lambda: TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY),
    "learned": lambda: TransformerLM.from_preset(
        "tiny", vocabulary_size=VOCABULARY, position_embedding="learned"
    ),
    "lstm": lambda: LSTMLM.from_preset("tiny", vocabulary_size=VOCABULARY),
}
# fp16 weights round each weight by <= 2**-11 relative (~5e-4); on these
# models the logits moved by <= 4e-4 (logit std ~0.1). Ten times that:
FP16_ATOL = 5e-3


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    return {name: build() for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tflite")


def _texts(count, length, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, VOCABULARY, length).astype(np.int32) for _ in range(count)]


# Families exported in several variants: converted from one `step_archive` each,
# as the bundle does (the same files, the step functions traced once). "learned"
# has one variant, converted by export_tflite alone (the path without an archive).
SHARED_ARCHIVE = ("rotary", "lstm")


@pytest.fixture(scope="module")
def exports(models, export_dir):
    """`exports[(name, quantize)]` -> TFLiteExport, converted on first use."""
    cache, archives = {}, {}

    class Exports:
        def __getitem__(self, key):
            if key not in cache:
                name, quantize = key
                # int4 quantizes the float32 file (as the bundle does): no second conversion.
                if quantize == "int4":
                    source = {"from_float32": self[name, "none"].path}
                elif name in SHARED_ARCHIVE:
                    if name not in archives:
                        archives[name] = stack.enter_context(
                            step_archive(models[name], PREFILL_LENGTHS))
                    source = {"archive": archives[name]}
                else:
                    source = {}
                cache[key] = export_tflite(
                    models[name],
                    str(export_dir / f"{name}_{quantize}.tflite"),
                    prefill_lengths=PREFILL_LENGTHS,
                    quantize=quantize,
                    representative_ids=_texts(4, 48, seed=1) if quantize == "int8" else None,
                    **source,
                )
            return cache[key]

    with contextlib.ExitStack() as stack:
        yield Exports()


def keras_greedy(model, prompt, max_new_tokens, end_id=None, banned_ids=()):
    """Greedy continuation by full forward passes (no cache, no step API)."""
    ids = list(prompt)
    new = []
    while len(new) < max_new_tokens and len(ids) < model.sequence_length:
        logits = np.array(model(np.array([ids], np.int32)))[0, -1]
        logits[list(banned_ids)] = -np.inf
        token = int(np.argmax(logits))
        if token == end_id:
            break
        new.append(token)
        ids.append(token)
    return new


# --- float32 parity ---------------------------------------------------------


# Learned positions change no cached-decoding code (their layout is checked by
# default below); their step-by-step and greedy parity run with `pytest -m slow`.
PARITY_CASES = ["rotary", pytest.param("learned", marks=pytest.mark.slow), "lstm"]


@pytest.mark.parametrize("name", PARITY_CASES)
def test_float32_steps_match_keras_at_every_position(models, exports, name):
    model = models[name]
    info = exports[name, "none"]
    runner = LiteRTRunner(info.path)
    ids = _texts(1, CONTEXT, seed=2)[0]
    full = np.asarray(model(ids[None]))[0]  # (time, vocabulary)
    for length in PREFILL_LENGTHS:
        logits, state = runner.prefill(ids[:length])
        assert logits.shape == (1, length, VOCABULARY)
        np.testing.assert_allclose(logits[0], full[:length], atol=1e-4)
        _, keras_state = model.prefill(ids[None, :length], model.initial_state(1, CONTEXT))
        assert sorted(state) == sorted(map(litert_name, keras_state))
        for key in keras_state:
            np.testing.assert_allclose(state[litert_name(key)], np.asarray(keras_state[key]),
                                       atol=1e-4)
        for position in range(length, CONTEXT):
            logits, state = runner.decode(ids[position], state, position)
            assert logits.shape == (1, VOCABULARY)
            np.testing.assert_allclose(logits[0], full[position], atol=1e-4)


@pytest.mark.parametrize("name", PARITY_CASES)
def test_greedy_generation_matches_keras(models, exports, name):
    model = models[name]
    runner = LiteRTRunner(exports[name, "none"].path)
    # 11 tokens: prefill_8 + 3 forced decodes; 5 tokens: no prefill fits.
    for prompt in (_texts(1, 11, seed=3)[0].tolist(), _texts(1, 5, seed=4)[0].tolist()):
        expected = keras_greedy(model, prompt, 20)
        assert runner.generate_ids(prompt, 20) == expected
        assert len(expected) == 20
        # Banning the first choice changes the text the same way in both.
        banned = (expected[0], 0)
        assert runner.generate_ids(prompt, 20, banned_ids=banned) == keras_greedy(
            model, prompt, 20, banned_ids=banned
        )
        # An end id stops before itself.
        end_id = expected[5]
        stopped = runner.generate_ids(prompt, 20, end_id=end_id)
        assert stopped == expected[: expected.index(end_id)]


def test_generation_stops_at_the_context(models, exports):
    runner = LiteRTRunner(exports["rotary", "none"].path)
    assert runner.max_length == CONTEXT
    prompt = _texts(1, CONTEXT - 4, seed=5)[0].tolist()
    new = runner.generate_ids(prompt, 20)
    assert new == keras_greedy(models["rotary"], prompt, 20)
    assert len(new) == 4
    assert runner.generate_ids(_texts(1, CONTEXT, seed=5)[0], 5) == []
    with pytest.raises(ValueError, match="prompt_ids"):
        runner.generate_ids(_texts(1, CONTEXT + 1, seed=5)[0], 5)
    with pytest.raises(ValueError, match="position"):
        runner.decode(1, runner.initial_state(), CONTEXT)


# --- the file's layout ------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILDERS))
def test_signatures_names_and_metadata(models, exports, name):
    model = models[name]
    info = exports[name, "none"]
    runner = LiteRTRunner(info.path)
    signatures = runner.interpreter.get_signature_list()
    assert sorted(signatures) == ["decode", "prefill_32", "prefill_8"]
    assert info.signatures == ("prefill_8", "prefill_32", "decode")
    state_names = sorted(map(litert_name, model.initial_state(1, CONTEXT)))
    if name != "lstm":  # LiteRT-LM's names for a key/value cache
        assert state_names[:2] == ["kv_cache_k_0", "kv_cache_k_1"]
    for key, io in signatures.items():
        assert sorted(io["inputs"]) == sorted(state_names + ["input_pos", "tokens"])
        assert sorted(io["outputs"]) == sorted(state_names + ["logits"])
    assert {k: s for k, (s, _) in runner.state_specs.items()} == {
        litert_name(k): tuple(v.shape) for k, v in model.initial_state(1, CONTEXT).items()
    }
    metadata = read_metadata(info.path)
    assert metadata["family"] == model.family
    assert metadata["vocabulary_size"] == VOCABULARY
    assert metadata["sequence_length"] == CONTEXT
    assert metadata["prefill_lengths"] == list(PREFILL_LENGTHS)
    assert metadata["state_names"] == state_names
    assert metadata["quantize"] == "none"
    # One set of weights for the three signatures: three copies would make
    # the file over 3x the float32 weights; graphs add ~0.4-0.5x here.
    assert info.size_bytes < 2 * 4 * model.count_params()
    assert os.path.getsize(info.path) == info.size_bytes


def test_runner_checks_its_arguments(exports):
    runner = LiteRTRunner(exports["lstm", "none"].path)
    with pytest.raises(ValueError, match="token_ids"):
        runner.prefill(np.zeros(9, np.int32))
    with pytest.raises(ValueError, match="prompt_ids"):
        runner.generate_ids([], 3)


def test_runner_needs_neither_keras_nor_tensorflow(exports):
    """The runner module runs with only numpy and ai_edge_litert importable.

    It is loaded from its file: importing it as `keras_lm.export.litert_runner`
    also runs the package's `__init__`, which imports Keras. An app copies
    `litert_runner.py` alone.
    """
    from keras_lm.export import litert_runner

    path = exports["lstm", "none"].path
    code = (
        "import importlib.util, sys\n"
        "for name in ('keras', 'tensorflow', 'keras_hub', 'keras_lm'): sys.modules[name] = None\n"
        "spec = importlib.util.spec_from_file_location(\n"
        f"    'litert_runner', {litert_runner.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"print(len(module.LiteRTRunner({path!r}).generate_ids([1, 2, 3], 4)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "4"


# --- builtin operators only -------------------------------------------------


@pytest.mark.parametrize("quantize", QUANTIZATIONS)
def test_transformer_uses_builtin_operators_only(exports, quantize):
    info = exports["rotary", quantize]
    names = builtin_operator_names(info.path)
    assert names == list(info.operators)
    assert not [n for n in names if n.startswith("CUSTOM") or "Flex" in n]
    assert {"DYNAMIC_UPDATE_SLICE", "FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"} <= set(names)
    assert "WHILE" not in names
    if quantize == "int4":
        # Hybrid kernels read the int4 weights as they are (no DEQUANTIZE op).
        kinds = {kind for kind, _ in tflite_export.constant_tensors(info.path).values()}
        assert "INT4" in kinds
    elif quantize != "none":
        assert "DEQUANTIZE" in names  # float16 or int8 weights, dequantized
    if quantize == "int8":
        assert "QUANTIZE" in names  # float activations into int8 operators


# int8's calibrated conversion of the LSTM (~10 s) runs with `pytest -m slow`;
# the Transformer's runs by default above.
@pytest.mark.parametrize("quantize", ["none", pytest.param("int8", marks=pytest.mark.slow)])
def test_lstm_uses_builtin_operators_only(exports, quantize):
    names = builtin_operator_names(exports["lstm", quantize].path)
    assert {"FULLY_CONNECTED", "LOGISTIC", "TANH"} <= set(names)
    assert not {"WHILE", "UNIDIRECTIONAL_SEQUENCE_LSTM"} & set(names)
    assert not [n for n in names if n.startswith("CUSTOM")]


def _convert_function(function, select_tf_ops):
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((4,), tf.float32)])
        def run(self, x):
            return {"y": function(x)}

    module = Module()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.run.get_concrete_function()], module
    )
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    converter.allow_custom_ops = not select_tf_ops
    return converter.convert()


def test_non_builtin_operators_are_refused(tmp_path):
    import tensorflow as tf

    flex = _convert_function(tf.math.cumprod, select_tf_ops=True)
    with pytest.raises(NonBuiltinOperatorError, match="CUSTOM:FlexCumprod"):
        builtin_operator_names(flex)
    custom = tmp_path / "custom.tflite"
    custom.write_bytes(_convert_function(lambda x: tf.math.igamma(x, x), select_tf_ops=False))
    with pytest.raises(NonBuiltinOperatorError, match="CUSTOM:Igamma"):
        builtin_operator_names(str(custom))
    plain = _convert_function(tf.math.tanh, select_tf_ops=False)
    assert builtin_operator_names(plain) == ["TANH"]


# --- quantized variants -----------------------------------------------------


def test_fp16_is_half_the_size_and_close_to_float32(exports):
    none, fp16 = exports["rotary", "none"], exports["rotary", "fp16"]
    assert fp16.size_bytes < 0.75 * none.size_bytes
    float_runner, half_runner = LiteRTRunner(none.path), LiteRTRunner(fp16.path)
    ids = _texts(1, CONTEXT, seed=6)[0]
    expected, float_state = float_runner.prefill(ids[:32])
    logits, state = half_runner.prefill(ids[:32])
    worst = np.abs(logits - expected).max()
    for position in range(32, CONTEXT):
        expected, float_state = float_runner.decode(ids[position], float_state, position)
        logits, state = half_runner.decode(ids[position], state, position)
        worst = max(worst, np.abs(logits - expected).max())
    assert 0 < worst < FP16_ATOL
    assert read_metadata(fp16.path)["quantize"] == "fp16"


@pytest.mark.parametrize(
    "name, quantize",
    [("rotary", "fp16"), ("rotary", "dynamic_int8"), ("rotary", "int8"), ("lstm", "int8"),
     ("rotary", "int4")],
)
def test_quantized_files_run_and_generate(exports, name, quantize):
    info = exports[name, quantize]
    assert info.size_bytes < exports[name, "none"].size_bytes
    runner = LiteRTRunner(info.path)
    new = runner.generate_ids([5, 6, 7, 8, 9, 10, 11, 12, 13], 12, banned_ids=(0, 1))
    assert len(new) == 12
    assert all(2 <= t < VOCABULARY for t in new)
    assert read_metadata(info.path)["quantize"] == quantize


def test_int4_quantizes_only_a_float32_file_of_the_same_signatures(models, exports, tmp_path):
    info = exports["rotary", "int4"]  # quantized from exports["rotary", "none"]
    assert info.int4["granularity"] == tflite_export.INT4_BLOCK and info.int4["int4_weights"]
    path = tmp_path / "int4.tflite"
    for source in (exports["rotary", "fp16"].path, exports["rotary", "none"].path):
        # fp16: not float32; float32 with prefill_8 and prefill_32: not these signatures.
        with pytest.raises(ValueError, match="from_float32 must be a float32 file exported"):
            export_tflite(models["rotary"], str(path), prefill_lengths=(8,), quantize="int4",
                          from_float32=source)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["rotary", "lstm"])
def test_int8_records_its_mode_and_accuracy(exports, name):
    info = exports[name, "int8"]
    assert info.int8_mode in ("full", "matmuls")
    agreement, error = info.int8_top1_agreement, info.int8_max_abs_error
    assert set(agreement) == set(error) and "full" in agreement
    if info.int8_mode == "full":
        assert info.int8_fallback_reason is None
        assert agreement["full"] >= tflite_export.INT8_MIN_TOP1_AGREEMENT or (
            agreement["full"] > agreement["matmuls"]
        )
    else:
        # Full int8 fell short and the fallback agreed more often.
        assert agreement["full"] < tflite_export.INT8_MIN_TOP1_AGREEMENT
        assert agreement["matmuls"] >= agreement["full"]
        assert "full int8" in info.int8_fallback_reason
        # int8 matmuls only: everything else reads float activations.
        assert set(info.float_operators) >= {"ADD", "MUL"}
        assert not set(info.float_operators) & {"FULLY_CONNECTED", "BATCH_MATMUL"}
    assert read_metadata(info.path)["int8_mode"] == info.int8_mode
    assert 0 <= min(agreement.values()) <= 1


@pytest.mark.slow  # a calibrated conversion (~20 s); int8's operators are checked by default above
def test_int8_keeps_full_integer_when_it_agrees(tmp_path):
    """A briefly trained LSTM quantizes fully: every operator reads int8."""
    import keras_lm.models.transformer_lm as source

    with open(source.__file__, "rb") as f:
        data = np.frombuffer(f.read(), np.uint8).astype(np.int32)
    windows = np.stack([data[i : i + CONTEXT + 1] for i in range(0, len(data) - CONTEXT, 16)])
    keras.utils.set_random_seed(0)
    model = LSTMLM.from_preset("tiny", vocabulary_size=VOCABULARY)
    model.compile("adamw", learning_rate=1e-2, total_steps=len(windows) // 32)
    model.fit(windows[:, :-1], windows[:, 1:], batch_size=32, epochs=1, verbose=0)
    info = export_tflite(
        model,
        str(tmp_path / "int8.tflite"),
        prefill_lengths=(8,),
        quantize="int8",
        representative_ids=[data[i : i + CONTEXT] for i in range(0, 4000, 1000)],
    )
    assert info.int8_mode == "full" and info.int8_fallback_reason is None
    assert info.int8_top1_agreement["full"] >= tflite_export.INT8_MIN_TOP1_AGREEMENT
    assert "matmuls" not in info.int8_top1_agreement
    assert info.float_operators == ()  # float only at the QUANTIZE/DEQUANTIZE interface
    prompt = data[5000:5010].tolist()
    new = LiteRTRunner(info.path).generate_ids(prompt, 10)
    expected = keras_greedy(model, prompt, 10)
    assert sum(a == b for a, b in zip(new, expected)) >= 5  # int8: close, not exact


# --- bad input, atomic writes -----------------------------------------------


def _leftovers(directory):
    return sorted(os.listdir(directory))


def test_bad_arguments_write_nothing(models, tmp_path):
    model = models["lstm"]
    path = tmp_path / "model.tflite"
    with pytest.raises(ValueError, match="prefill_lengths"):
        export_tflite(model, str(path), prefill_lengths=(8, CONTEXT + 1))
    with pytest.raises(ValueError, match="prefill_lengths"):
        export_tflite(model, str(path), prefill_lengths=())
    with pytest.raises(ValueError, match="prefill_lengths"):
        export_tflite(model, str(path), prefill_lengths=(8.5,))
    with pytest.raises(ValueError, match="path"):
        export_tflite(model, str(tmp_path / "missing" / "model.tflite"))
    with pytest.raises(ValueError, match="quantize"):
        export_tflite(model, str(path), quantize="int2")
    with pytest.raises(ValueError, match="representative_ids"):
        export_tflite(model, str(path), quantize="int8")
    with pytest.raises(ValueError, match="representative_ids"):
        export_tflite(model, str(path), quantize="int8", representative_ids=[[1, VOCABULARY]])
    with pytest.raises(ValueError, match="representative_ids"):
        export_tflite(model, str(path), representative_ids=[[1, 2]])
    with pytest.raises(ValueError, match="from_float32: only used with quantize='int4'"):
        export_tflite(model, str(path), from_float32=str(path))
    # An archive must be of this model and these prefill lengths (checked before use).
    schema = ExportSchema.of(model, (8,))
    with pytest.raises(ValueError, match=r"^archive must be a step_archive of this model with "
                                         r"prefill_lengths=\(8, 32\), got one with "
                                         r"prefill_lengths=\(8,\)$"):
        export_tflite(model, str(path), archive=StepArchive(model, schema, {}, str(tmp_path)))
    with pytest.raises(ValueError, match="prefill_lengths=\\(8,\\) of another model$"):
        export_tflite(model, str(path), prefill_lengths=(8,),
                      archive=StepArchive(models["rotary"], schema, {}, str(tmp_path)))
    assert _leftovers(tmp_path) == []
    # An existing file survives a failed export untouched.
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match="quantize"):
        export_tflite(model, str(path), quantize="bf16")
    assert path.read_bytes() == b"previous"


def test_failed_conversion_leaves_no_file_and_no_saved_model(models, tmp_path, monkeypatch):
    import tensorflow as tf

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "out"
    out.mkdir()
    path = out / "model.tflite"

    def fail(saved_model_dir, signature_keys=None, tags=None):
        assert os.path.isdir(saved_model_dir)  # written, then must be removed
        raise RuntimeError("conversion failed")

    with monkeypatch.context() as patch:
        patch.setattr(tf.lite.TFLiteConverter, "from_saved_model", staticmethod(fail))
        with pytest.raises(RuntimeError, match="conversion failed"):
            export_tflite(models["lstm"], str(path), prefill_lengths=(4,))
    assert _leftovers(out) == [] and _leftovers(scratch) == []

    # A failed write (here: the final rename) removes its temporary file.
    def no_replace(source, target):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", no_replace)
        with pytest.raises(OSError, match="disk full"):
            export_tflite(models["lstm"], str(path), prefill_lengths=(4,))
    assert _leftovers(out) == [] and _leftovers(scratch) == []

    # A successful export leaves only the file (readable by others too).
    export_tflite(models["lstm"], str(path), prefill_lengths=(4,))
    assert _leftovers(out) == ["model.tflite"] and _leftovers(scratch) == []
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_mixed_precision_model_exports_from_a_float32_copy(tmp_path):
    keras.utils.set_random_seed(0)
    model = LSTMLM.from_preset("tiny", vocabulary_size=VOCABULARY, dtype="mixed_bfloat16")
    info = export_tflite(model, str(tmp_path / "bf16.tflite"), prefill_lengths=(4,))
    runner = LiteRTRunner(info.path)
    assert all(dtype == np.float32 for _, dtype in runner.state_specs.values())
    ids = _texts(1, 4, seed=7)[0]
    logits, _ = runner.prefill(ids)
    copy = tflite_export._float32_model(model)
    assert copy is not model and copy.compute_dtype == "float32"
    np.testing.assert_allclose(logits[0], np.asarray(copy(ids[None]))[0], atol=1e-4)
    # bfloat16 compute in Keras vs float32 in the file: close, not equal.
    np.testing.assert_allclose(logits[0], np.asarray(model(ids[None]))[0], atol=0.05)


# --- the one schema ---------------------------------------------------------


class _UnevenModel:
    """A step API whose layers have different head counts (as after pruning)."""

    vocabulary_size, sequence_length = 11, 16

    def initial_state(self, batch_size, max_length):
        return {f"layer_{i}_key": np.zeros((batch_size, heads, max_length, 4), np.float32)
                for i, heads in enumerate((4, 2))}


def test_schema_keeps_each_state_tensors_own_shape():

    litert = ExportSchema.of(_UnevenModel(), prefill_lengths=[4])
    assert [(t.name, t.key) for t in litert.state] == [
        ("kv_cache_k_0", "layer_0_key"), ("kv_cache_k_1", "layer_1_key")]
    assert litert.signature_entries()["decode"]["inputs"][:2] == [
        {"name": "tokens", "shape": [1, 1], "dtype": "int32"},
        {"name": "input_pos", "shape": [1], "dtype": "int32"}]
    assert litert.signature_entries()["decode"]["outputs"][0]["shape"] == [1, 1, 11]
    schema = ExportSchema.of(_UnevenModel(), prefill_lengths=[8, 4, 8], layout="saved_model")
    assert schema.prefill_lengths == (4, 8)
    assert [(t.name, t.shape) for t in schema.state] == [
        ("layer_0_key", (4, 16, 4)), ("layer_1_key", (2, 16, 4))]
    assert {k: v.shape for k, v in schema.zero_state().items()} == {
        "layer_0_key": (1, 4, 16, 4), "layer_1_key": (1, 2, 16, 4)}
    specs = schema.tensor_specs("decode", batch_size=None)
    assert list(specs) == ["token_ids", "position", "layer_0_key", "layer_1_key"]
    assert specs["layer_1_key"].shape.as_list() == [None, 2, 16, 4]
    assert schema.tensor_specs("prefill", batch_size=None)["token_ids"].shape.as_list() == [None, None]
    prefill = schema.signature_entries()["prefill_4"]
    assert prefill["inputs"][0] == {"name": "token_ids", "shape": [1, 4], "dtype": "int32"}
    assert prefill["outputs"][0] == {"name": "logits", "shape": [1, 4, 11], "dtype": "float32"}
    with pytest.raises(ValueError, match=r"prefill_lengths must be in \[1, sequence_length=16\]"):
        ExportSchema.of(_UnevenModel(), prefill_lengths=[17])


def test_runner_checks_the_file_against_its_recorded_schema(models, exports):
    from keras_lm.export.litert_runner import check_signatures
    from keras_lm.export.schema import ExportSchema

    runner = LiteRTRunner(exports["rotary", "none"].path)
    recorded = runner.metadata["signature_specs"]
    schema = ExportSchema.of(models["rotary"], PREFILL_LENGTHS)
    assert recorded == schema.signature_entries()
    assert runner.metadata["state"] == schema.state_entries()
    wrong = json.loads(json.dumps(recorded))
    wrong["decode"]["inputs"][-1]["shape"][1] += 1  # another head count than the file's
    with pytest.raises(ValueError, match="the inputs of 'decode'"):
        check_signatures(runner._runners, wrong)


def test_int4_block_size_0_is_channel_wise_and_other_sizes_are_refused(exports):
    float32 = open(exports["rotary", "none"].path, "rb").read()
    _, info = tflite_export.quantize_int4(float32, block_size=0)
    assert info["granularity"] == "CHANNELWISE" and info["int4_weights"]
    with pytest.raises(ValueError, match="int4_block_size must be one of 0, 32, 64, 128, 256, got 16"):
        tflite_export.quantize_int4(float32, block_size=16)


def _float_buffer_bytes(data):
    """Bytes of the distinct float32 constant buffers of a `.tflite` file."""
    return sum(4 * int(np.prod(shape)) for shape in _constant_buffers(data, "FLOAT32").values())


def _constant_buffers(data, dtype_name):
    """`{buffer index: shape}` of the constant tensors of one type (buffers are shared)."""
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(data, 0)
    found = {}
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            if tensor.Type() == getattr(schema.TensorType, dtype_name) and tensor.Buffer() > 0:
                found[tensor.Buffer()] = tuple(int(d) for d in tensor.ShapeAsNumpy())
    return found


def test_int4_reads_one_int8_table_for_a_tied_embedding(models, exports):
    # Quantizing a tied embedding's logits alone made the quantizer copy the
    # float table into every signature (GPT-2 small: int4 575 MB > float32
    # 498 MB); the lookups as EMBEDDING_LOOKUP share one table with them,
    # int8 channel-wise (TOKEN_TABLE_BITS) beside int4 projections.
    table_shape = tuple(models["rotary"].token_embedding.embeddings.shape)
    float32 = open(exports["rotary", "none"].path, "rb").read()
    assert "GATHER" in builtin_operator_names(float32)
    assert "EMBEDDING_LOOKUP" not in builtin_operator_names(float32)
    info = exports["rotary", "int4"]
    int4 = open(info.path, "rb").read()
    assert info.int4["embedding_lookups"] == 3  # prefill_8, prefill_32 and decode
    assert "EMBEDDING_LOOKUP" in builtin_operator_names(int4)
    assert tflite_export.TOKEN_TABLE_BITS == 8
    assert list(_constant_buffers(int4, "INT8").values()).count(table_shape) == 1
    assert table_shape not in _constant_buffers(int4, "INT4").values()
    assert table_shape not in _constant_buffers(int4, "FLOAT32").values()
    assert _float_buffer_bytes(int4) < 4 * np.prod(table_shape) / 4
    # The projections are int4.
    assert any(len(shape) == 2 for shape in _constant_buffers(int4, "INT4").values())


def test_token_lookups_rewrite_keeps_the_float_logits(exports):
    from keras_lm.export.tflite_rewrites import token_lookups_as_embedding_lookups

    float32 = open(exports["rotary", "none"].path, "rb").read()
    rewritten, count = token_lookups_as_embedding_lookups(float32, VOCABULARY)
    assert count == 3
    assert "GATHER" not in builtin_operator_names(rewritten)
    assert token_lookups_as_embedding_lookups(float32, VOCABULARY + 1) == (float32, 0)
    tokens = _texts(1, 10, seed=5)[0]  # prefill_8, then decode twice
    logits = [np.concatenate([rows for rows, _ in run_prompt(LiteRTRunner(data), tokens)])
              for data in (float32, rewritten)]
    assert logits[0].shape == (10, VOCABULARY)
    np.testing.assert_array_equal(logits[0], logits[1])


def _stacked_cache_file(stride):
    """A `.tflite` file of `stack((key, value), axis=1)` sliced apart (keras-hub's cache), updated."""
    import tensorflow as tf

    spec = tf.TensorSpec([1, 4, 2, 3], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def step(key, value):
        cache = tf.stack((key, value), axis=1) * 1.0
        cache = tf.stack((cache[:, 0] + 1.0, cache[:, 1] * 2.0), axis=1)
        return {"key": cache[:, 0], "value": cache[:, 1, ::stride]}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [step.get_concrete_function()], step)
    return converter.convert()


def _run_stacked(data, key, value):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    for detail, array in zip(sorted(interpreter.get_input_details(), key=lambda d: d["name"]),
                             (key, value)):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    # In the graph's output order: folding renames an output to the entry it was.
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


@pytest.mark.parametrize("stride", [1, 2])
def test_slices_of_a_stacked_cache_fold_to_its_entries(stride):
    from keras_lm.export.tflite_rewrites import fold_slices_of_packs

    data = _stacked_cache_file(stride)
    assert "PACK" in builtin_operator_names(data)
    folded, count = fold_slices_of_packs(data)
    # A strided slice of an entry is not the entry: it stays, so its pack does.
    assert count == (4 if stride == 1 else 3)
    assert ("PACK" in builtin_operator_names(folded)) == (stride == 2)
    rng = np.random.default_rng(0)
    key, value = (rng.normal(size=(1, 4, 2, 3)).astype(np.float32) for _ in range(2))
    for expected, got in zip(_run_stacked(data, key, value), _run_stacked(folded, key, value)):
        np.testing.assert_array_equal(expected, got)
