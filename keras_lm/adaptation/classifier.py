"""Fine-tuning a classifier head on a trained language model: `keras-lm finetune --head=classifier`.

`finetune_classifier(base_dir, output_dir, data, ...)` reads labelled texts
(`keras_lm.adaptation.labeled_data`), builds a `TextClassifier` on the
base run's model (`TextClassifier.from_lm`: the base's weights copied, a new
head), trains the whole of it with `model.fit` (or, with `lora_rank`, LoRA
adapters on the backbone and the whole head), and writes a run directory
that `keras-lm eval`, `classify` and `export` read:

- `model.keras` (the classifier, its labels in its config), `tokenizer.json`
  (the base's);
- `config.json`: `head: "classifier"`, the base (`base_model_dir`, its
  weights digest), the labels, the keys, the settings and the validation
  choice (`validation`: `val_data` or `hash_10_percent`);
- `validation.jsonl`: the validation rows themselves, so `eval` and
  `export` score exactly them, whatever happens to the data file later;
- `metrics.json`, `confusion_matrix.png`, `logs/` (TensorBoard: the
  training curves and the final confusion matrix).

The base directory is only read. Every check (the data, the labels, the
base, the output directory) runs before anything is written.

`train_classifier` is the same training on a classifier in memory (no run
directory): the few-shot probe and the examples use it.

Example:
    from keras_lm.adaptation.classifier import finetune_classifier
    metrics = finetune_classifier("saved_models/quickstart", "saved_models/labels",
                                  "labels.csv", steps=300)
    metrics["val_accuracy"]
"""

import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_lm import compat
from keras_lm.adaptation.classifier_metrics import evaluate_classifier, write_confusion
from keras_lm.adaptation.labeled_data import (
    VALIDATION_FRACTION,
    check_known_labels,
    describe_data,
    label_set,
    read_rows,
    split_rows,
    write_rows,
)
from keras_lm.adaptation.lora import (
    TARGETS,
    count_trainable,
    enable_lora,
    is_lora_weight,
)
from keras_lm.errors import UsageError
from keras_lm.models import TextClassifier
from keras_lm.models.text_classifier import POOLINGS, load_language_model
from keras_lm.training.console import Console, format_duration
from keras_lm.training.distribute import make_strategy, weights_digest
from keras_lm.training.run_directory import RunDirectory

logger = logging.getLogger("keras_lm")

HEAD = "classifier"
VALIDATION_FILE = "validation.jsonl"
DEFAULT_BATCH_SIZE = 32
DEFAULT_LEARNING_RATE = 3e-4
DEFAULT_EPOCHS = 4
# Evaluations on the validation rows during a run (TensorBoard's curve).
EVALUATIONS = 5


def finetune_classifier(base_dir, output_dir, data, *, val_data=None, text_key="text",
                        label_key="label", pooling="last", steps=None,
                        batch_size=DEFAULT_BATCH_SIZE, learning_rate=DEFAULT_LEARNING_RATE,
                        seed=0, verbose=1, max_length=None, dropout=0.1, jit_compile="auto",
                        lora_rank=None, lora_alpha=None, lora_targets=None, recipe=None):
    """Trains a classifier on the language model of `base_dir`; returns the final metrics.

    Args:
        base_dir: a `keras-lm train` directory (read only).
        output_dir: the new run directory (not `base_dir`).
        data: labelled texts: a `.jsonl`/`.csv`/`.tsv` file, or a list of
            dicts or `(text, label)` pairs.
        val_data: validation rows in the same forms; default: a
            deterministic 10% of `data` by a hash of each row.
        text_key, label_key: the text's and the label's key (column).
        pooling: `last` (the `<eos>` position) or `mean`.
        steps: training steps (default: `DEFAULT_EPOCHS` passes over the
            training rows).
        batch_size, learning_rate, seed: training settings (AdamW with
            warm-up and cosine decay; every weight trained unless LoRA).
        verbose: 0 silent, 1 and 2 one line per evaluation.
        max_length: the longest input in tokens (default: the base's
            context); longer texts keep their beginning (a warning counts them).
        dropout: dropout on the pooled features.
        jit_compile: XLA for training; "auto" is the base family's choice.
        lora_rank, lora_alpha, lora_targets: LoRA on the backbone's Dense
            layers named by `lora_targets` (default: all of
            `keras_lm.adaptation.lora.TARGETS`), through `enable_lora`; every
            other backbone weight is frozen and the new head trains fully.
            `model.keras` holds the adapters merged. Transformer bases only.
        recipe: the name of the recipe these settings come from (recorded
            in `config.json`; `keras-lm finetune --recipe=classify_stdlib`).

    Returns:
        A dict: `val_accuracy`, `val_macro_f1`, `val_loss`, `train_loss`,
        `train_accuracy`, `steps`, `num_parameters`, `trainable_parameters`, `labels`,
        `train_examples`, `val_examples`, `wall_time_seconds`, `output_dir`.
    """
    started = time.time()
    if lora_rank is None:
        for name, value in (("lora_alpha", lora_alpha), ("lora_targets", lora_targets)):
            if value is not None:
                raise UsageError(f"{name}={value}: only used with lora_rank", argument=name)
    check_settings(pooling=pooling, steps=steps, batch_size=batch_size,
                   learning_rate=learning_rate, max_length=max_length)
    base_dir = os.fspath(base_dir)
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(base_dir):
        raise UsageError(f"base_dir: {base_dir!r} is not a directory (a `keras-lm train` "
                         "output directory)", argument="base_dir")
    if os.path.realpath(output_dir) == os.path.realpath(base_dir):
        raise UsageError(f"output_dir: {output_dir!r} is the base directory; fine-tuning "
                         "never changes its base: choose a new directory", argument="output_dir")
    train_rows, val_rows, labels, validation = labeled_split(data, val_data, text_key, label_key)
    try:
        backbone, tokenizer = load_language_model(base_dir)
    except UsageError as error:
        raise UsageError(error.spelled_as("base_dir"), argument="base_dir") from None
    if tokenizer is None:
        raise UsageError(f"base_dir: no tokenizer.json in {base_dir!r}", argument="base_dir")
    if max_length is not None and max_length > backbone.sequence_length:
        raise UsageError(f"max_length must be at most the base's context "
                         f"({backbone.sequence_length} tokens), got {max_length}",
                         argument="max_length")
    base_digest = weights_digest(backbone)
    lora = None
    if lora_rank is not None:
        # The backbone's targets get adapters and every other backbone weight
        # is frozen; the head, made below, is new and trains fully.
        lora = enable_lora(backbone, lora_rank, lora_alpha, lora_targets or TARGETS)
    steps = steps or default_steps(len(train_rows), batch_size)

    run_dir = RunDirectory(output_dir, make_strategy("default"))
    run_dir.prepare()
    keras.utils.set_random_seed(seed)
    classifier = TextClassifier(backbone, labels, pooling=pooling, sequence_length=max_length,
                                dropout=dropout)
    classifier.tokenizer = tokenizer
    console = Console(verbose)
    config = {
        "head": HEAD,
        "recipe": recipe,
        "base_model_dir": os.path.abspath(base_dir),
        "base_weights_digest": base_digest,
        "model": getattr(backbone, "family", None),
        "data": describe_data(data),
        "text_key": text_key,
        "label_key": label_key,
        "labels": labels,
        "validation": validation,
        "validation_file": VALIDATION_FILE,
        "pooling": pooling,
        "max_length": classifier.sequence_length,
        "dropout": dropout,
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "num_parameters": count_parameters(classifier),  # as saved: without adapters
        "trainable_parameters": count_trainable(classifier),
        "lora": lora,
        "model_config": classifier.get_config(),
        "output_dir": output_dir,
    }
    run_dir.start(config, tokenizer)
    write_rows(run_dir.path(VALIDATION_FILE), val_rows, text_key, label_key)
    console.line(f"classifier ({pooling} pooling) on {base_dir}: {trained_line(classifier, lora)}"
                 f"; {len(labels)} labels, {len(train_rows)} train / {len(val_rows)} "
                 f"validation rows ({validation['kind']}); training for {steps} steps of "
                 f"{batch_size}")
    history = train_classifier(
        classifier, tokenizer, train_rows, steps=steps, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed, val_rows=val_rows, console=console,
        log_dir=os.path.join(output_dir, "logs"), jit_compile=jit_compile)
    run_dir.save_model(classifier)
    report = evaluate_classifier(classifier, val_rows, tokenizer)
    write_confusion(output_dir, report, _title(report, "validation"), step=steps)
    metrics = {
        "val_accuracy": report["accuracy"],
        "val_macro_f1": report["macro_f1"],
        "val_loss": report["loss"],
        "val_per_class": report["per_class"],
        "train_loss": _last(history, "loss"),
        "train_accuracy": _last(history, "accuracy"),
        "steps": int(classifier.optimizer.iterations.numpy()),
        "num_parameters": config["num_parameters"],
        "trainable_parameters": config["trainable_parameters"],
        "labels": labels,
        "train_examples": len(train_rows),
        "val_examples": len(val_rows),
        "output_dir": output_dir,
        "wall_time_seconds": time.time() - started,
    }
    run_dir.write_metrics(metrics)
    console.line(f"done in {format_duration(metrics['wall_time_seconds'])}: validation accuracy "
                 f"{report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f} on "
                 f"{len(val_rows)} rows (always the most frequent label: "
                 f"{_majority_share(train_rows, val_rows):.3f})\n"
                 f"outputs in {output_dir}: model.keras, tokenizer.json, config.json, "
                 f"{VALIDATION_FILE}, metrics.json, confusion_matrix.png, logs/\nnext:\n"
                 f"  keras-lm classify --model_dir={output_dir} --text='...'\n"
                 f"  keras-lm eval --model_dir={output_dir}\n"
                 f"  keras-lm export --model_dir={output_dir}")
    return metrics


def trained_line(classifier, lora):
    """What trains, for the console: every weight, or LoRA's adapters and the head."""
    trainable = count_trainable(classifier)
    if not lora:
        return f"every weight: {trainable:,} trainable parameters"
    total = count_parameters(classifier)
    return (f"LoRA rank {lora['rank']} (alpha {lora['alpha']:g}) on "
            f"{','.join(lora['targets'])} and the new head: {trainable:,} trainable of "
            f"{total:,} parameters ({trainable / total:.2%})")


def count_parameters(model):
    """The parameters of `model` without LoRA's adapters (those of its `model.keras`)."""
    return int(sum(np.prod(w.shape) for w in model.weights if not is_lora_weight(w)))


def labeled_split(data, val_data=None, text_key="text", label_key="label"):
    """`(train_rows, val_rows, labels, validation)`: the rows, checked and split.

    `validation` describes the choice for `config.json`: `{"kind":
    "val_data", "path": ...}` or `{"kind": "hash_10_percent", ...}`.
    """
    if data is None or (isinstance(data, str) and not data):
        raise UsageError("data: a classifier needs labelled texts (a .jsonl, .csv or .tsv file "
                         f"with {text_key!r} and {label_key!r}), got none", argument="data")
    rows = read_rows(data, text_key, label_key, argument="data")
    if val_data is not None:
        val_rows = read_rows(val_data, text_key, label_key, argument="val_data")
        labels = label_set(rows, argument="data")
        check_known_labels(val_rows, labels, argument="val_data",
                           known_from="the training data")
        validation = {"kind": "val_data", "rows": len(val_rows),
                      "path": describe_data(val_data)}
        return rows, val_rows, labels, validation
    label_set(rows, argument="data")  # one class is an error before any split
    train_rows, val_rows = split_rows(rows)
    if not val_rows:
        raise UsageError(f"data: {len(rows)} rows are too few to hold out validation rows; "
                         "add rows or give val_data", argument="data")
    labels = label_set(train_rows, argument="data")
    validation = {"kind": "hash_10_percent", "fraction": VALIDATION_FRACTION,
                  "rows": len(val_rows),
                  "rule": "rows whose SHA-256 of [text, label] (as JSON) read as a fraction of "
                          "2**64 is below the fraction"}
    return train_rows, val_rows, labels, validation


def check_settings(pooling="last", steps=None, batch_size=DEFAULT_BATCH_SIZE,
                   learning_rate=DEFAULT_LEARNING_RATE, max_length=None):
    """Raises `UsageError` for a bad training setting (before any work)."""
    if pooling not in POOLINGS:
        raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}",
                         argument="pooling")
    for name, value in (("steps", steps), ("batch_size", batch_size),
                        ("max_length", max_length)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise UsageError(f"{name} must be a positive integer, got {value!r}", argument=name)
    if max_length == 1:  # room for <bos> and one token of text at least
        raise UsageError("max_length must be at least 2, got 1", argument="max_length")
    if not learning_rate > 0:
        raise UsageError(f"learning_rate must be > 0, got {learning_rate}",
                         argument="learning_rate")


def default_steps(train_examples, batch_size, epochs=DEFAULT_EPOCHS):
    """Steps for `epochs` passes over the training rows (at least 20)."""
    return max(20, math.ceil(epochs * train_examples / batch_size))


def train_classifier(classifier, tokenizer, rows, *, steps, batch_size=DEFAULT_BATCH_SIZE,
                     learning_rate=DEFAULT_LEARNING_RATE, seed=0, val_rows=None, console=None,
                     log_dir=None, jit_compile="auto"):
    """Trains `classifier` (a `TextClassifier`) on labelled `rows` for `steps` steps.

    Compiles it (AdamW, warm-up and cosine over `steps`), feeds shuffled
    batches of `batch_size` rows, and with `val_rows` evaluates
    `EVALUATIONS` times on them. `console` (a `Console`) gets one line per
    evaluation; `log_dir` gets TensorBoard's scalars. Returns the Keras
    `History`.
    """
    index = {label: i for i, label in enumerate(classifier.labels)}
    ids, cut = classifier.encode([row.text for row in rows], tokenizer)
    if cut:
        logger.warning("%d of %d texts are longer than %d tokens: their beginning was kept",
                       cut, len(rows), classifier.sequence_length)
    targets = np.array([index[row.label] for row in rows], np.int32)
    batch_size = min(batch_size, len(rows))
    train = (tf.data.Dataset.from_tensor_slices((ids, targets))
             .shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
             .repeat().batch(batch_size, drop_remainder=True))
    validation = None
    if val_rows:
        val_ids, _ = classifier.encode([row.text for row in val_rows], tokenizer)
        val_targets = np.array([index[row.label] for row in val_rows], np.int32)
        validation = tf.data.Dataset.from_tensor_slices((val_ids, val_targets)).batch(64)
    classifier.compile("adamw", learning_rate=learning_rate, total_steps=steps,
                       warmup_steps=max(1, steps // 10), jit_compile=jit_compile)
    evaluations = min(EVALUATIONS, steps) if validation is not None else 1
    interval = math.ceil(steps / evaluations)
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if console is not None:
        callbacks.append(ClassifierProgress(console, steps))
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir, write_graph=False))
    with compat.quiet_keras_data_warnings():
        return classifier.fit(train, epochs=math.ceil(steps / interval), steps_per_epoch=interval,
                              validation_data=validation, callbacks=callbacks, verbose=0,
                              shuffle=False)  # the dataset shuffles


class ClassifierProgress(keras.callbacks.Callback):
    """One line per evaluation: step, loss, accuracy, validation figures, time left."""

    def __init__(self, console, total_steps):
        super().__init__()
        self.console = console
        self.total_steps = total_steps

    def on_train_begin(self, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        step = int(self.model.optimizer.iterations.numpy())
        parts = [f"step {step:,}/{self.total_steps:,}"]
        for key, name in (("loss", "loss"), ("accuracy", "accuracy"),
                          ("val_loss", "val loss"), ("val_accuracy", "val accuracy")):
            if key in logs:
                parts.append(f"{name} {float(logs[key]):.3f}")
        rate = step / max(time.time() - self._start, 1e-9)
        parts.append("time left " + format_duration(max(self.total_steps - step, 0) / rate))
        self.console.line("  ".join(parts))


def _last(history, key):
    values = history.history.get(key)
    return float(values[-1]) if values else None


def _majority_share(train_rows, val_rows):
    counts = {}
    for row in train_rows:
        counts[row.label] = counts.get(row.label, 0) + 1
    majority = max(counts, key=counts.get)
    return sum(row.label == majority for row in val_rows) / len(val_rows)


def _title(report, what):
    return f"{what}: accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}"
