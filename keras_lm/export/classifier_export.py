"""Export a `TextClassifier`: a SavedModel (text in, label out) and a LiteRT bundle.

`export_classifier(model, tokenizer, directory, texts=...)` writes, under
`directory`:

- `saved_model/`, signatures:
  - `serving_default(texts: string[batch])` -> `{"label": string[batch],
    "probabilities": float32[batch, num_classes]}`, the tokenizer in the
    graph (as for the language models, `import tensorflow_text` before
    loading when the tokenizer is a subword one);
  - `classify_ids(token_ids: int32[batch, time])` -> `{"probabilities"}`.
- `tflite/`:
  - `model_{variant}.tflite` with one signature, `classify`: `token_ids`
    int32 `(1, sequence_length)` -> `probabilities` float32 `(1,
    num_classes)`; builtin operators only (the backbone runs through its
    step API, as `LanguageModel.step_hidden_states` says);
  - `tokenizer.json` (plain JSON, `keras_lm.export.json_tokenizer`);
  - `metadata.json`: the labels (in the order of the probabilities), the
    input rule, special ids, the signature and, per file, the parity
    figures measured at export (for `int8` also its mode, the label
    agreement of each candidate and what it calibrated on).

Quantization (`quantize`): `none` (float32), `fp16`, `dynamic_int8` (int8
weights), and `int8`: int8 weights and activations, the ranges calibrated on
`calibration_texts` (the run's training texts through the input rule); as
for a language model (`keras_lm.export.tflite`), full int8 is kept when it
gives the float model's label on >= `MIN_QUANTIZED_LABEL_AGREEMENT` of the
calibration texts, else int8 activations for the matmuls and the embedding
lookup only (if that agrees more often). Input (int32 ids) and output
(float32 probabilities) keep their types in every variant.

The input rule, the same for Keras, the SavedModel and an app: `<bos>`, the
text's ids, `<eos>`, then `pad_id` up to `sequence_length`; a text too long
keeps its first `sequence_length - 2` ids.

Parity (`measure_classifier_parity`): the same texts through Keras (the
`call` path), the SavedModel's `serving_default` (strings) and each
`.tflite` file (ids made by the bundle's `tokenizer.json`, as an app makes
them): `max_abs_probability_diff` and `label_agreement`. `check` fails a
float32 format above 1e-4 or with any label different, and a quantized
file under `MIN_QUANTIZED_LABEL_AGREEMENT`.

Example (not run here: converting takes seconds):

    model, tokenizer, _ = keras_lm.load_model_dir("saved_models/classify_stdlib")
    report = export_classifier(model, tokenizer, "saved_models/classify_stdlib",
                               texts=["get_event_loop"], verify=True)
"""

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_lm.errors import UsageError
from keras_lm.export.bundle import FORMATS, METADATA_FILE, VARIANTS, VerificationError
from keras_lm.export.json_tokenizer import JsonTokenizer
from keras_lm.export.litert_runner import float_operator_names
from keras_lm.export.tflite import (
    INT8_MATMUL_OPS,
    _add_metadata,
    builtin_operator_names,
    calibrate_int8,
    quantize_calibrated,
)
from keras_lm.io_utils import atomic_path, write_bytes, write_json
from keras_lm.models.text_classifier import encode_texts
from keras_lm.tokenizers import TOKENIZER_FILE

SAVED_MODEL_DIR = "saved_model"
TFLITE_DIR = "tflite"
SIGNATURE = "classify"
QUANTIZATIONS = ("none", "fp16", "dynamic_int8", "int8")
# Texts (through the input rule) that calibrate `int8`'s activation ranges.
CALIBRATION_TEXTS = 128
FLOAT32_MAX_ABS_PROBABILITY_DIFF = 1e-4
MIN_QUANTIZED_LABEL_AGREEMENT = 0.95
# Texts that exercise the edges of the input rule, beside the caller's.
EDGE_TEXTS = ("", "a", "The quick brown fox jumps over the lazy dog. " * 40)


def export_classifier(model, tokenizer, directory, *, formats=FORMATS, quantize=("none",),
                      texts=(), verify=False, calibration_texts=None,
                      calibration_source=None):
    """Writes the formats of `formats` under `directory`; returns the report (a dict).

    `texts` (e.g. the run's validation texts) are classified by every
    format for the parity figures. `calibration_texts` (e.g. the run's
    training texts; default `texts`) calibrate `int8`, at most
    `CALIBRATION_TEXTS` of them spread over the list; `calibration_source`
    says in the report where they come from. With `verify`, a missed bound
    raises `VerificationError` (after writing, so the files can be inspected).
    """
    formats = _choices("formats", formats, FORMATS)
    quantize = _choices("quantize", quantize, QUANTIZATIONS)
    if "int8" in quantize and "tflite" in formats:
        calibration = _spread(list(texts if calibration_texts is None else calibration_texts),
                              CALIBRATION_TEXTS)
        if not calibration:
            raise UsageError("calibration_texts: quantize=int8 needs texts to calibrate on, "
                             "got none", argument="calibration_texts")
    if not os.path.isdir(directory):
        raise UsageError(f"directory: {directory!r} does not exist", argument="directory")
    if model.compute_dtype != "float32":
        raise UsageError(f"model: export needs a float32 classifier, got {model.compute_dtype}",
                         argument="model")
    texts = list(texts) + list(EDGE_TEXTS)
    report = {"labels": list(model.labels), "texts": len(texts), "files": {}}
    keras_probabilities = model.predict_proba(texts, tokenizer)
    saved_model = os.path.join(directory, SAVED_MODEL_DIR)
    if "saved_model" in formats:
        export_classifier_saved_model(model, tokenizer, saved_model)
        report["saved_model_parity"] = _saved_model_parity(saved_model, texts,
                                                           keras_probabilities, model.labels)
    if "tflite" in formats:
        with atomic_path(os.path.join(directory, TFLITE_DIR)) as bundle:
            os.makedirs(bundle)
            tokenizer.save(os.path.join(bundle, TOKENIZER_FILE))
            app_tokenizer = JsonTokenizer.load(os.path.join(bundle, TOKENIZER_FILE))
            for q in quantize:
                name = f"model_{VARIANTS[q]}.tflite"
                representative = None
                if q == "int8":
                    representative = [app_input_ids(app_tokenizer, text, model.sequence_length)
                                      for text in calibration]
                data, int8_info = classifier_tflite(model, q, representative,
                                                    with_info=True)
                write_bytes(os.path.join(bundle, name), data)
                probabilities = run_classify_tflite(data, app_tokenizer, texts,
                                                    model.sequence_length)
                report["files"][VARIANTS[q]] = {
                    "file": name, "quantize": q, "size_bytes": len(data),
                    "operators": builtin_operator_names(data),
                    "parity": _compare(probabilities, keras_probabilities),
                }
                if int8_info:
                    int8_info["calibration"] = {"texts": len(calibration),
                                                "source": calibration_source or "texts"}
                    report["files"][VARIANTS[q]].update(int8_info)
            report["failures"] = check_classifier_parity(report)
            write_json(os.path.join(bundle, METADATA_FILE), bundle_metadata(model, tokenizer,
                                                                            report))
    report["failures"] = check_classifier_parity(report)
    if verify and report["failures"]:
        raise VerificationError("; ".join(report["failures"]))
    return report


def export_classifier_saved_model(model, tokenizer, path):
    """Writes the classifier's SavedModel (see the module docstring) at `path`, atomically."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    labels = tf.constant(model.labels)

    def serving_default(texts):
        ids, _ = encode_texts(tokenizer, texts, model.sequence_length)
        probabilities = tf.nn.softmax(model(ids, training=False), axis=-1)
        return {"label": tf.gather(labels, tf.argmax(probabilities, axis=-1)),
                "probabilities": probabilities}

    archive.add_endpoint("serving_default", serving_default,
                         [tf.TensorSpec([None], tf.string, name="texts")])
    archive.add_endpoint(
        "classify_ids",
        lambda token_ids: {"probabilities": tf.nn.softmax(model(token_ids, training=False), -1)},
        [tf.TensorSpec([None, None], tf.int32, name="token_ids")])
    with atomic_path(path) as tmp:
        archive.write_out(tmp, verbose=False)


def classifier_tflite(model, quantize="none", representative_ids=None, with_info=False):
    """The bytes of a `.tflite` file with the `classify` signature (builtin operators only).

    `quantize="int8"` needs `representative_ids`: `classify` inputs (int32
    `(1, sequence_length)` arrays, as `app_input_ids` makes them) that
    calibrate the activation ranges. As for a language model
    (`keras_lm.export.tflite`), full int8 (every operator with an int8
    kernel) is kept when it gives the float model's label on at least
    `MIN_QUANTIZED_LABEL_AGREEMENT` of them; otherwise int8 activations for
    the matmuls and the embedding lookup only, if that agrees more often.
    The input stays int32 ids and the output float32 probabilities.
    With `with_info`, returns `(bytes, info)`: for int8, `int8_mode`,
    `int8_label_agreement` and `int8_max_abs_probability_diff` per
    candidate (on the representative inputs), `int8_fallback_reason` and
    `float_operators`; else `{}`.
    """
    if (quantize == "int8") != (representative_ids is not None):
        raise UsageError(f"representative_ids: needed with quantize='int8' and only then, got "
                         f"quantize={quantize!r}", argument="representative_ids")
    spec = tf.TensorSpec([1, model.sequence_length], tf.int32, name="token_ids")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE, lambda token_ids: {"probabilities": tf.nn.softmax(model.step_logits(token_ids),
                                                                      axis=-1)}, [spec])
    # Keras variables reach the converter through a SavedModel written by
    # ExportArchive (as in keras_lm.export.tflite).
    saved_model = tempfile.mkdtemp(prefix="keras_lm_classifier_")
    try:
        archive.write_out(saved_model, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model,
                                                             signature_keys=[SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize in ("fp16", "dynamic_int8"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        info = {}
        if quantize == "int8":
            data, info = _classifier_int8(model, converter, representative_ids)
        else:
            data = converter.convert()
    finally:
        shutil.rmtree(saved_model, ignore_errors=True)
    builtin_operator_names(data)  # raises on a custom or Flex operator
    data = _add_metadata(data, {
        "format": "keras_lm.tflite_classifier", "version": 1, "signature": SIGNATURE,
        "labels": list(model.labels), "sequence_length": model.sequence_length,
        "pad_id": model.pad_id, "quantize": quantize,
        **{k: v for k, v in info.items() if k != "float_operators"}})
    return (data, info) if with_info else data


def _classifier_int8(model, converter, representative_ids):
    """Calibrates once, then keeps full int8 or int8 matmuls (see `classifier_tflite`)."""
    inputs = [np.asarray(ids, np.int32).reshape(1, model.sequence_length)
              for ids in representative_ids]
    expected = np.concatenate([
        keras.ops.convert_to_numpy(keras.ops.softmax(model.step_logits(ids), axis=-1))
        for ids in inputs])
    calibrated = calibrate_int8(
        converter, lambda: ((SIGNATURE, {"token_ids": ids}) for ids in inputs))

    def figures(data):
        probabilities = _run_ids(data, inputs)
        return (round(float((probabilities.argmax(-1) == expected.argmax(-1)).mean()), 4),
                round(float(np.abs(probabilities - expected).max()), 6))

    full = quantize_calibrated(calibrated)
    agreement, error = figures(full)
    info = {"int8_mode": "full", "int8_label_agreement": {"full": agreement},
            "int8_max_abs_probability_diff": {"full": error}, "int8_fallback_reason": None}
    data = full
    if agreement < MIN_QUANTIZED_LABEL_AGREEMENT:
        matmuls = quantize_calibrated(calibrated, INT8_MATMUL_OPS)
        matmul_agreement, matmul_error = figures(matmuls)
        info["int8_label_agreement"]["matmuls"] = matmul_agreement
        info["int8_max_abs_probability_diff"]["matmuls"] = matmul_error
        if matmul_agreement > agreement:  # else keep the smaller, faster one
            data = matmuls
            info["int8_mode"] = "matmuls"
            info["int8_fallback_reason"] = (
                f"full int8 gave the float model's label on {agreement:.1%} of the "
                f"calibration texts (< {MIN_QUANTIZED_LABEL_AGREEMENT:.0%}); int8 activations "
                f"for {', '.join(INT8_MATMUL_OPS)} only: {matmul_agreement:.1%}")
    info["float_operators"] = float_operator_names(data)
    return data, info


def _run_ids(model, inputs):
    """Probabilities `(len(inputs), num_classes)` of a `.tflite` file on `classify` inputs."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=bytes(model)).get_signature_runner(SIGNATURE)
    return np.concatenate([runner(token_ids=ids)["probabilities"] for ids in inputs])


def app_input_ids(tokenizer, text, sequence_length):
    """The `classify` input of `text`, as an app makes it (`JsonTokenizer`, NumPy).

    Example:
    >>> tokenizer = JsonTokenizer({"kind": "byte", "special_ids": {"<pad>": 256,
    ...                            "<bos>": 257, "<eos>": 258}})
    >>> app_input_ids(tokenizer, "ab", 6).tolist()
    [[257, 97, 98, 258, 256, 256]]
    """
    special = tokenizer.special_ids
    body = tokenizer.encode(text)[: sequence_length - 2]
    ids = [special["<bos>"], *body, special["<eos>"]]
    ids += [special["<pad>"]] * (sequence_length - len(ids))
    return np.array([ids], np.int32)


def run_classify_tflite(model, tokenizer, texts, sequence_length):
    """Probabilities `(len(texts), num_classes)` from a `.tflite` file (path or bytes) by LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, (bytes, bytearray)):
        interpreter = Interpreter(model_content=bytes(model))
    else:
        interpreter = Interpreter(model_path=os.fspath(model))
    runner = interpreter.get_signature_runner(SIGNATURE)
    return np.concatenate([
        runner(token_ids=app_input_ids(tokenizer, text, sequence_length))["probabilities"]
        for text in texts])


def bundle_metadata(model, tokenizer, report):
    """The bundle's `metadata.json` (see the module docstring)."""
    length = model.sequence_length
    classes = len(model.labels)
    return {
        "format": "keras_lm.litert_classifier_bundle",
        "version": 1,
        "task": "classify",
        "labels": list(model.labels),
        "family": getattr(model.backbone, "family", None),
        "pooling": model.pooling,
        "vocabulary_size": int(model.backbone.vocabulary_size),
        "sequence_length": length,
        "special_ids": dict(tokenizer.special_ids),
        "tokenizer": TOKENIZER_FILE,
        "input": (f"token_ids: <bos>, the text's ids, <eos>, then <pad> up to {length}; a "
                  f"longer text keeps its first {length - 2} ids"),
        "signatures": {SIGNATURE: {
            "inputs": [{"name": "token_ids", "shape": [1, length], "dtype": "int32"}],
            "outputs": [{"name": "probabilities", "shape": [1, classes], "dtype": "float32"}]}},
        "files": report["files"],
        "saved_model_parity": report.get("saved_model_parity"),
        "parity_texts": report["texts"],
        "failures": report["failures"],
    }


def check_classifier_parity(report):
    """The bounds the report misses, as one-line strings (empty: all hold)."""
    failures = []
    formats = [("saved_model", report.get("saved_model_parity"), "none")]
    formats += [(f"tflite {v}", f["parity"], f["quantize"]) for v, f in report["files"].items()]
    for name, parity, quantize in formats:
        if parity is None:
            continue
        if quantize == "none":
            if parity["max_abs_probability_diff"] > FLOAT32_MAX_ABS_PROBABILITY_DIFF:
                failures.append(f"{name}: max |probability difference| "
                                f"{parity['max_abs_probability_diff']:.2e} > "
                                f"{FLOAT32_MAX_ABS_PROBABILITY_DIFF:.0e}")
            if parity["label_agreement"] < 1 or parity.get("label_names_identical") is False:
                failures.append(f"{name}: labels differ from Keras on "
                                f"{1 - parity['label_agreement']:.1%} of the texts")
        elif parity["label_agreement"] < MIN_QUANTIZED_LABEL_AGREEMENT:
            failures.append(f"{name}: labels agree with Keras on {parity['label_agreement']:.1%}"
                            f" of the texts (< {MIN_QUANTIZED_LABEL_AGREEMENT:.0%})")
    return failures


def _saved_model_parity(path, texts, keras_probabilities, labels):
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](texts=tf.constant(texts))
    parity = _compare(out["probabilities"].numpy(), keras_probabilities)
    names = [label.decode("utf-8") for label in out["label"].numpy()]
    expected = [labels[i] for i in keras_probabilities.argmax(-1)]
    parity["label_names_identical"] = names == expected
    return parity


def _compare(probabilities, keras_probabilities):
    return {
        "max_abs_probability_diff": float(np.abs(probabilities - keras_probabilities).max()),
        "label_agreement": float((probabilities.argmax(-1) ==
                                  keras_probabilities.argmax(-1)).mean()),
    }


def _spread(items, count):
    """At most `count` of `items`, evenly spread over the list (its order kept).

    Example:
    >>> _spread(list(range(10)), 4)
    [0, 2, 5, 7]
    """
    if len(items) <= count:
        return items
    return [items[i * len(items) // count] for i in range(count)]


def _choices(argument, values, choices):
    values = [values] if isinstance(values, str) else list(values)
    bad = [v for v in values if v not in choices]
    if bad or not values:
        raise UsageError(f"{argument} must be some of {', '.join(choices)} for a classifier, "
                         f"got {', '.join(map(str, values)) or 'none'}", argument=argument)
    return tuple(dict.fromkeys(values))
