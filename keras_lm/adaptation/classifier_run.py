"""A finished classifier run: its validation rows, its evaluation, classifying texts.

What `keras-lm eval` and `keras-lm classify` do with a `finetune_classifier`
run directory (the commands stay thin).

Example (after `keras-lm finetune --head=classifier --output_dir=runs/labels`):
    import keras_lm
    report = keras_lm.Run("runs/labels").evaluate()   # its own validation rows
    report["accuracy"], report["confusion_matrix_png"]
"""

import os

import numpy as np

from keras_lm.adaptation.classifier_metrics import evaluate_classifier, write_confusion
from keras_lm.adaptation.labeled_data import (
    VALIDATION_FRACTION,
    check_known_labels,
    read_rows,
    split_rows,
)
from keras_lm.errors import UsageError

VALIDATION_FILE = "validation.jsonl"


def run_validation_rows(model_dir, config):
    """The validation rows a classifier run kept (`validation.jsonl` in its directory)."""
    name = config.get("validation_file", VALIDATION_FILE)
    path = os.path.join(model_dir, name)
    if not os.path.isfile(path):
        raise UsageError(f"model_dir: no {name} in {model_dir!r} (the run's validation rows); "
                         "pass data", argument="model_dir")
    return read_rows(path, config.get("text_key", "text"), config.get("label_key", "label"),
                     argument="model_dir")


def run_training_texts(config):
    """The training texts of a classifier run, read again from its `data`, or None.

    The rows of `config["data"]` (a file, or a built-in data set) less the
    validation rows the hash split held out (none when the run had
    `val_data`); None when the data is not readable here (or was rows given
    in Python). What `keras-lm export --quantize=int8` calibrates on.
    """
    data = config.get("data")
    if not isinstance(data, str):
        return None
    data = data.removeprefix("builtin:")
    try:
        rows = read_rows(data, config.get("text_key", "text"), config.get("label_key", "label"))
    except UsageError:
        return None
    validation = config.get("validation") or {}
    if validation.get("kind") == "hash_10_percent":
        rows, _ = split_rows(rows, validation.get("fraction", VALIDATION_FRACTION))
    return [row.text for row in rows]


def evaluate_run(model, tokenizer, config, model_dir, data=None, text_key=None, label_key=None):
    """Accuracy, macro-F1, per-class precision/recall of a classifier run, as a dict.

    On `data` (labelled rows, every label one the classifier knows) or, by
    default, the run's own validation rows. Also writes
    `model_dir/confusion_matrix.png` and the image to TensorBoard
    (`logs/eval`); the dict names the PNG (`confusion_matrix_png`).
    """
    if data:
        rows = read_rows(data, text_key or config.get("text_key", "text"),
                         label_key or config.get("label_key", "label"), argument="data")
        check_known_labels(rows, model.labels, argument="data",
                           known_from="the classifier's labels")
        source = os.path.abspath(data) if isinstance(data, (str, os.PathLike)) else "rows"
    else:
        rows = run_validation_rows(model_dir, config)
        source = "validation"
    report = evaluate_classifier(model, rows, tokenizer)
    step = int(config.get("steps") or 0)
    title = (f"{'validation' if source == 'validation' else os.path.basename(str(source))}: "
             f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}")
    png = write_confusion(model_dir, report, title, step=step)
    return {"data": source, **report, "confusion_matrix_png": png}


def classify_texts(model, texts, tokenizer=None):
    """`[{"label": ..., "probabilities": {label: p}}]`, one per text, in order."""
    probabilities = model.predict_proba(texts, tokenizer)
    return [
        {"label": model.labels[int(np.argmax(p))],
         "probabilities": {label: round(float(v), 6) for label, v in zip(model.labels, p)}}
        for p in probabilities
    ]
