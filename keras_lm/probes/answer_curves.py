"""The answer scores over training: a callback the probes hand to a task run.

`AnswerCurves` is a Keras callback: every `every_steps` training steps it
scores the model's answers on a fixed held-out set of a synthetic task
(`keras_lm.scoring.evaluate_task` on the same `test` batches each time, the
scores a sweep reports): exact match, token accuracy, token edit distance
and answer log-likelihood. It writes them as TensorBoard scalars under
`log_dir` (`answers/exact_match`, ...), keeps them in `history`, and at the
end of training writes the history as JSON and CSV and a PNG of the curves
over steps (`answer_curves_figure`), when paths are given.

One run scored along the way shows the four metrics of Schaeffer et al.
(2023) on one training schedule: emergence or mirage without the confound of
one run (and one learning-rate schedule) per training length.

Training never imports the probes (see `setup.cfg [importlinter]`); the
caller builds this callback and passes it to `keras_lm.training.train(config,
callbacks=[...])` (as `keras-lm sweep --score_every=50` does) or to `model.fit`.

Example (`fit(..., callbacks=[callback])` calls these hooks itself):
>>> import tempfile
>>> from keras_lm.data.synthetic import Task
>>> from keras_lm.models import LSTMLM
>>> task = Task("addition", sequence_length=16, addition_digits=1)
>>> model = LSTMLM.from_preset("tiny", vocabulary_size=20, sequence_length=16)
>>> model.compile("adamw", jit_compile=False)
>>> callback = AnswerCurves(task, tempfile.mkdtemp(), every_steps=10, batch_size=4,
...                         num_batches=1)
>>> callback.set_model(model)
>>> callback.on_train_begin()  # scores step 0
>>> [row["step"] for row in callback.history], sorted(callback.history[0])[:2]
([0], ['answer_log_likelihood', 'exact_match'])
"""

import csv
import io
import os

import numpy as np
from matplotlib.figure import Figure

from keras_lm.figures import png_bytes
from keras_lm.io_utils import write_bytes, write_json
from keras_lm.probes.training_callback import PeriodicScores
from keras_lm.scoring import evaluate_task

METRICS = ("exact_match", "token_accuracy", "token_edit_distance", "answer_log_likelihood")


class AnswerCurves(PeriodicScores):
    """Scores a task's answers on a fixed held-out set every `every_steps` steps.

    Args:
        task: the `keras_lm.data.synthetic.Task` the model trains on.
        log_dir: where the TensorBoard scalars go (e.g. `<run>/logs/answers`).
        every_steps: steps between measurements (also one at step 0 and at the end).
        batch_size, num_batches: the held-out set (the task's `test` stream,
            the same batches at every measurement).
        json_path, csv_path, png_path: where `on_train_end` writes the history
            and the figure (None: not written).
    """

    def __init__(self, task, log_dir, every_steps=50, batch_size=32, num_batches=8,
                 json_path=None, csv_path=None, png_path=None, title=None):
        super().__init__(log_dir, every_steps)
        self.task = task
        self.batch_size, self.num_batches = batch_size, num_batches
        self.json_path, self.csv_path, self.png_path = json_path, csv_path, png_path
        self.title = title

    def score(self, step):
        result = evaluate_task(self.model, self.task, batch_size=self.batch_size,
                               num_batches=self.num_batches, seed=0, split="test")
        return {"step": step, **{name: float(result[name]) for name in METRICS}}

    def scalars(self, row):
        return [(f"answers/{name}", row[name]) for name in METRICS]

    def write_outputs(self):
        for path in (self.json_path, self.csv_path, self.png_path):
            if path:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if self.json_path:
            write_json(self.json_path, {"task": self.task.name, "every_steps": self.every_steps,
                                        "held_out_sequences": self.batch_size * self.num_batches,
                                        "history": self.history})
        if self.csv_path:
            write_bytes(self.csv_path, history_csv(self.history).encode())
        if self.png_path:
            write_bytes(self.png_path, answer_curves_figure(self.history, self.title))


def history_csv(history):
    """The rows as CSV text: `step` and the four metrics.

    Example:
    >>> print(history_csv([{"step": 0, "exact_match": 0.5, "token_accuracy": 0.75,
    ...                     "token_edit_distance": 1.0, "answer_log_likelihood": -2.0}]), end="")
    step,exact_match,token_accuracy,token_edit_distance,answer_log_likelihood
    0,0.5,0.75,1.0,-2.0
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ("step", *METRICS), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def normalised(history, metric):
    """The share of its rise over the run a metric has covered at each step: 0 at the
    first row, 1 at the last (edit distance falls, so its fall counts as the rise).

    Puts the four metrics on one scale, to compare the shapes of their curves.

    Example:
    >>> rows = [{"token_edit_distance": d} for d in (3.0, 2.0, 0.0)]
    >>> normalised(rows, "token_edit_distance").tolist()
    [0.0, 0.3333333333333333, 1.0]
    """
    values = np.array([row[metric] for row in history], dtype="float64")
    span = values[-1] - values[0]
    # + 0.0: no -0.0 where a falling metric has not moved.
    return (values - values[0]) / span + 0.0 if span else np.zeros_like(values)


def sharpness_gap(history, reference="token_accuracy", metric="exact_match", at=0.5):
    """`(step, metric share)`: where the normalised `reference` first reaches `at` of its
    rise, and how much of its own rise the normalised `metric` has covered there.

    Both are read between the scored steps by linear interpolation, so the answer
    depends little on how often the run was scored. "Exact match is sharper than
    token accuracy" reads: when token accuracy has made half of its progress, exact
    match has made much less of its own (two straight lines give `at` for both).

    Example:
    >>> rows = [{"step": s, "token_accuracy": t, "exact_match": e}
    ...         for s, t, e in ((0, 0.0, 0.0), (100, 0.25, 0.0), (200, 0.75, 0.5),
    ...                         (300, 1.0, 1.0))]
    >>> sharpness_gap(rows)
    (150.0, 0.25)
    """
    steps = np.array([row["step"] for row in history], dtype="float64")
    reference_share = normalised(history, reference)
    metric_share = normalised(history, metric)
    i = int(np.argmax(reference_share >= at - 1e-9))  # 0.4999... is half
    if i == 0:
        return float(steps[0]), float(metric_share[0])
    low, high = reference_share[i - 1], reference_share[i]
    fraction = (at - low) / (high - low)
    return (float(steps[i - 1] + fraction * (steps[i] - steps[i - 1])),
            float(metric_share[i - 1] + fraction * (metric_share[i] - metric_share[i - 1])))


def answer_curves_figure(history, title=None):
    """PNG: the answer scores over steps: the two shares, edit distance,
    log-likelihood, and all four normalised to their rise (the shapes compared).

    Example:
    >>> rows = [{"step": s, "exact_match": s / 4, "token_accuracy": s / 3,
    ...          "token_edit_distance": 3 - s, "answer_log_likelihood": -3 + s}
    ...         for s in range(4)]
    >>> answer_curves_figure(rows)[:4]
    b'\\x89PNG'
    """
    steps = [row["step"] for row in history]
    figure = Figure(figsize=(16.0, 3.6), dpi=100, layout="constrained")
    figure.suptitle(title or "the answer scores over training", fontsize=11)
    panels = ((("exact_match", "token_accuracy"), "share of answers / tokens"),
              (("token_edit_distance",), "token edit distance (per answer)"),
              (("answer_log_likelihood",), "answer log-likelihood (nats per token)"))
    for i, (metrics, label) in enumerate(panels):
        axes = figure.add_subplot(1, 4, i + 1)
        for metric in metrics:
            axes.plot(steps, [row[metric] for row in history], marker=".", label=metric)
        if metric == "token_edit_distance":
            axes.invert_yaxis()  # up is better on every panel
        if i == 0:
            axes.set_ylim(-0.02, 1.02)
        axes.set_ylabel(label)
        axes.legend(fontsize=8)
    axes = figure.add_subplot(1, 4, 4)
    for metric in METRICS:
        axes.plot(steps, normalised(history, metric), marker=".", label=metric)
    axes.axhline(0.5, color="gray", linestyle=":", linewidth=1)
    axes.set_ylabel("share of the run's rise covered")
    axes.legend(fontsize=8)
    for axes in figure.axes:
        axes.set_xlabel("training step")
        axes.grid(True, alpha=0.3)
    return png_bytes(figure)


def answer_curves_callback(run_dir, task, every_steps=50):
    """An `AnswerCurves` that writes into a run directory's usual places.

    Scalars go to `<run_dir>/logs/answers`, the history to
    `<run_dir>/probes/answer_curves.json` and `.csv`, the figure to
    `<run_dir>/probes/answer_curves.png`.
    """
    probes = os.path.join(run_dir, "probes")
    return AnswerCurves(task, os.path.join(run_dir, "logs", "answers"), every_steps=every_steps,
                        json_path=os.path.join(probes, "answer_curves.json"),
                        csv_path=os.path.join(probes, "answer_curves.csv"),
                        png_path=os.path.join(probes, "answer_curves.png"),
                        title=f"{task.name}: the answer scores over training")


__all__ = ["AnswerCurves", "answer_curves_callback", "answer_curves_figure", "history_csv",
           "normalised", "sharpness_gap"]
