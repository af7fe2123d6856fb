"""Scoring a classifier: accuracy, macro-F1, per-class precision and recall, confusion matrix.

`evaluate_classifier(model, rows)` scores a `TextClassifier` on labelled
rows; `classification_report` computes the figures from label indices (no
model), `confusion_figure` draws the matrix as a PNG and `write_confusion`
writes it beside the run and to TensorBoard.

Example:
>>> report = classification_report([0, 0, 1, 1], [0, 1, 1, 1], ["cat", "dog"])
>>> report["accuracy"], round(report["macro_f1"], 3), report["per_class"]["dog"]["precision"]
(0.75, 0.733, 0.6666666666666666)
>>> report["confusion_matrix"]
[[1, 1], [0, 2]]
"""

import os

import numpy as np
from matplotlib.figure import Figure

from keras_lm.figures import png_bytes
from keras_lm.io_utils import write_bytes

CONFUSION_FILE = "confusion_matrix.png"


def classification_report(true, predicted, labels):
    """Accuracy, macro-F1 and per-class precision/recall/F1/support of index arrays.

    A class never predicted has precision 0 (and one with no true rows
    recall 0), as scikit-learn reports them with `zero_division=0`; the
    macro-F1 averages the classes that occur (true or predicted), as
    scikit-learn's `f1_score(average="macro")` does without `labels`.
    `confusion_matrix[i][j]` counts rows of true class `i` predicted `j`.
    """
    true, predicted = np.asarray(true, np.int64), np.asarray(predicted, np.int64)
    count = len(labels)
    matrix = np.zeros((count, count), np.int64)
    np.add.at(matrix, (true, predicted), 1)
    per_class, f1s = {}, []
    for i, label in enumerate(labels):
        hits, predicted_i, true_i = matrix[i, i], matrix[:, i].sum(), matrix[i].sum()
        precision = hits / predicted_i if predicted_i else 0.0
        recall = hits / true_i if true_i else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": float(precision), "recall": float(recall),
                            "f1": float(f1), "support": int(true_i)}
        if true_i or predicted_i:  # as scikit-learn: the classes that occur
            f1s.append(f1)
    return {
        "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "macro_f1": float(np.mean(f1s)),
        "examples": int(matrix.sum()),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def evaluate_classifier(model, rows, tokenizer=None, batch_size=64):
    """`classification_report` of `model` (a `TextClassifier`) on `rows`, plus `loss`.

    Every row's label must be one of `model.labels` (see
    `labeled_data.check_known_labels`). `loss` is the mean cross-entropy
    (nats) of the true labels.
    """
    probabilities = model.predict_proba([row.text for row in rows], tokenizer, batch_size)
    index = {label: i for i, label in enumerate(model.labels)}
    true = np.array([index[row.label] for row in rows])
    report = classification_report(true, probabilities.argmax(-1), model.labels)
    picked = probabilities[np.arange(len(rows)), true]
    report["loss"] = float(-np.mean(np.log(np.maximum(picked, 1e-12))))
    return report


def confusion_figure(matrix, labels, title):
    """PNG of a confusion matrix: true labels down, predicted across, counts written in."""
    matrix = np.asarray(matrix, dtype="float64")
    count = len(labels)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)  # colour: recall per row
    size = 1.6 + 0.7 * count
    figure = Figure(figsize=(size + 0.6, size), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), value in np.ndenumerate(matrix):
        axes.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=9,
                  color="white" if share[i, j] > 0.6 else "black")
    axes.set_xticks(range(count), labels, rotation=45 if count > 3 else 0, ha="right"
                    if count > 3 else "center", fontsize=8)
    axes.set_yticks(range(count), labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    return png_bytes(figure)


def write_confusion(run_dir, report, title, step=0, tag="eval/confusion_matrix"):
    """Writes `run_dir/confusion_matrix.png` and the same image to `run_dir/logs/eval`.

    Returns the PNG's path.
    """
    import tensorflow as tf  # only to write the TensorBoard image

    labels = list(report["per_class"])
    png = confusion_figure(report["confusion_matrix"], labels, title)
    path = os.path.join(run_dir, CONFUSION_FILE)
    write_bytes(path, png)
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs", "eval"))
    with writer.as_default():
        tf.summary.image(tag, tf.image.decode_png(png)[tf.newaxis], step=step)
        for name in ("accuracy", "macro_f1"):
            tf.summary.scalar(f"eval/{name}", report[name], step=step)
    writer.close()
    return path
