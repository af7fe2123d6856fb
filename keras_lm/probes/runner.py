"""Running a probe on a trained model's directory: data, result, JSON, PNG, TensorBoard.

Example (after `keras-lm train --task=induction ... --output_dir=runs/ind`):
    from keras_lm.probes.runner import run_probe
    result = run_probe("runs/ind", "icl_score")
    result["icl_score"]   # also in runs/ind/probes/icl_score.json and .png
"""

import json
import os

import tensorflow as tf

from keras_lm import data
from keras_lm.data.synthetic import Task, task_dataset
from keras_lm.errors import UsageError
from keras_lm.io_utils import write_bytes, write_json
from keras_lm.model_dir import load_model_dir, run_files
from keras_lm.probes import icl
from keras_lm.probes.plots import head_scores_figure, position_loss_figure

PROBES = ("per_position_loss", "icl_score", "induction", "induction_heads")
TRANSFORMER_ONLY = ("induction_heads",)


def run_probe(model_dir, probe, files=None, batches=16, batch_size=32, loaded=None):
    """Runs `probe` on the model of `model_dir`; writes and returns its result dict.

    Writes `model_dir/probes/<probe>.json` and `.png`, and the plot and the
    scalar results under `model_dir/logs/probes` for TensorBoard.
    `loaded`: an already loaded `(model, tokenizer, config)` of `model_dir`.
    A bad argument raises `UsageError` naming it (`error.argument`).
    """
    if probe == "fewshot_classify":  # it reads labelled rows, not text windows
        raise UsageError("probe: fewshot_classify runs with "
                         "keras_lm.probes.fewshot_classify.fewshot_classify (it needs data)",
                         argument="probe")
    if probe not in PROBES:
        raise UsageError(f"probe: unknown probe {probe!r}; choose from "
                         f"{', '.join(PROBES)}, fewshot_classify", argument="probe")
    for name, value in (("batches", batches), ("batch_size", batch_size)):
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}", argument=name)
    model, tokenizer, config = loaded or load_model_dir(model_dir)
    if probe in TRANSFORMER_ONLY and not hasattr(model, "blocks"):
        raise UsageError(
            f"probe={probe} reads attention weights and needs a Transformer run; "
            f"model_dir={model_dir} holds a {config.get('model', type(model).__name__)} model",
            argument="probe")
    specials = tokenizer.special_ids.values()
    if probe == "induction":
        result = icl.induction(model, specials, batches=batches, batch_size=batch_size)
        title = (f"repeated random tokens: loss {result['loss_first']:.2f} on the first copy, "
                 f"{result['loss_repeat']:.2f} on the repeat")
        png = position_loss_figure(result["losses"], title)
    elif probe == "induction_heads":
        result = icl.induction_heads(model, specials, batch_size=batch_size)
        png = head_scores_figure(
            {"prefix matching (induction heads)": result["prefix_matching"],
             "previous token": result["previous_token"],
             # Copying lies in [-1, 1]; the colour scale shows 0..1 (a negative one is dark).
             **({"copying (OV eigenvalues)": result["copying"]} if result["copying"] else {})},
            f"present above {result['threshold']}; uniform attention scores "
            f"{result['uniform_baseline']:.2f}")
    else:
        batches_ds = _probe_batches(model, tokenizer, config, files, batches, batch_size)
        if probe == "icl_score":
            result = icl.icl_score(model, batches_ds)
            title = (f"ICL score {result['icl_score']:.3f}: loss at token "
                     f"{result['late_position']} minus token {result['early_position']}")
        else:
            result = icl.per_position_loss(model, batches_ds)
            losses = result["losses"]
            title = f"loss by position (first {losses[0]:.2f}, last {losses[-1]:.2f})"
        png = position_loss_figure(result["losses"], title)
    result = {"probe": probe, "model_dir": str(model_dir), **result}
    _write(model_dir, probe, result, png, _trained_steps(model_dir))
    return result


def _probe_batches(model, tokenizer, config, files, batches, batch_size):
    """`(inputs, targets)` batches: the run's task stream, or text windows."""
    length = model.sequence_length
    if config.get("task"):
        if files:
            raise UsageError(f"files: {config['task']!r} is a task run; its probes read "
                             "the task's own validation stream (leave files out)",
                             argument="files")
        # The task's ids: `vocabulary_size` (`vocab_size` in runs written before 0.2).
        task = Task(config["task"], length, config.get("vocab_size", config.get("vocabulary_size")),
                    **config.get("task_args", {}))
        stream = task_dataset(task, batch_size, seed=config.get("seed", 0), split="validation",
                              num_batches=batches)
        # Every position counts: the ICL score compares an early and a late one.
        return stream.map(lambda b: (b["inputs"], b["targets"]))
    paths = data.resolve_files(files, "files") if files else run_files(config)[1]
    windows = data.text_dataset(paths, tokenizer, length, batch_size).take(batches)
    if not any(True for _ in windows):
        raise UsageError(f"files: fewer than {length + 1} tokens to probe", argument="files")
    return windows


def _trained_steps(model_dir):
    path = os.path.join(model_dir, "metrics.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return int(json.load(f).get("steps", 0))
    return 0


def _write(model_dir, probe, result, png, step):
    directory = os.path.join(model_dir, "probes")
    os.makedirs(directory, exist_ok=True)
    write_json(os.path.join(directory, f"{probe}.json"), result)
    write_bytes(os.path.join(directory, f"{probe}.png"), png)
    writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs", "probes"))
    with writer.as_default():
        tf.summary.image(f"probes/{probe}", tf.image.decode_png(png)[tf.newaxis], step=step)
        for name, value in result.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tf.summary.scalar(f"probes/{probe}/{name}", float(value), step=step)
    writer.close()
