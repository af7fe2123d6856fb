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
    figures measured at export.

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
from keras_lm.export.tflite import _add_metadata, builtin_operator_names
from keras_lm.io_utils import atomic_path, write_bytes, write_json
from keras_lm.models.text_classifier import encode_texts
from keras_lm.tokenizers import TOKENIZER_FILE

SAVED_MODEL_DIR = "saved_model"
TFLITE_DIR = "tflite"
SIGNATURE = "classify"
QUANTIZATIONS = ("none", "fp16", "dynamic_int8")
FLOAT32_MAX_ABS_PROBABILITY_DIFF = 1e-4
MIN_QUANTIZED_LABEL_AGREEMENT = 0.95
# Texts that exercise the edges of the input rule, beside the caller's.
EDGE_TEXTS = ("", "a", "The quick brown fox jumps over the lazy dog. " * 40)


def export_classifier(model, tokenizer, directory, *, formats=FORMATS, quantize=("none",),
                      texts=(), verify=False):
    """Writes the formats of `formats` under `directory`; returns the report (a dict).

    `texts` (e.g. the run's validation texts) are classified by every
    format for the parity figures. With `verify`, a missed bound raises
    `VerificationError` (after writing, so the files can be inspected).
    """
    formats = _choices("formats", formats, FORMATS)
    quantize = _choices("quantize", quantize, QUANTIZATIONS)
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
                data = classifier_tflite(model, q)
                write_bytes(os.path.join(bundle, name), data)
                probabilities = run_classify_tflite(data, app_tokenizer, texts,
                                                    model.sequence_length)
                report["files"][VARIANTS[q]] = {
                    "file": name, "quantize": q, "size_bytes": len(data),
                    "operators": builtin_operator_names(data),
                    "parity": _compare(probabilities, keras_probabilities),
                }
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


def classifier_tflite(model, quantize="none"):
    """The bytes of a `.tflite` file with the `classify` signature (builtin operators only)."""
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
        data = converter.convert()
    finally:
        shutil.rmtree(saved_model, ignore_errors=True)
    builtin_operator_names(data)  # raises on a custom or Flex operator
    return _add_metadata(data, {
        "format": "keras_lm.tflite_classifier", "version": 1, "signature": SIGNATURE,
        "labels": list(model.labels), "sequence_length": model.sequence_length,
        "pad_id": model.pad_id, "quantize": quantize})


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


def _choices(argument, values, choices):
    values = [values] if isinstance(values, str) else list(values)
    bad = [v for v in values if v not in choices]
    if bad or not values:
        raise UsageError(f"{argument} must be some of {', '.join(choices)} for a classifier, "
                         f"got {', '.join(map(str, values)) or 'none'}", argument=argument)
    return tuple(dict.fromkeys(values))
