"""Induction scores measured during training: a callback the probes hand to a run.

`InductionScores` is a Keras callback: every `every_steps` training steps it
measures the ICL score (loss late minus loss early, Olsson et al. 2022) on
fixed validation batches, and the head scores of `icl.induction_heads`
(the best prefix-matching head of any layer, the best previous-token head
of the first layer, and every head's prefix-matching, previous-token and
copying scores), writes them as
TensorBoard scalars under `log_dir` (`induction/icl_score`,
`induction/best_prefix_matching`, `induction/best_previous_token`,
`induction/prefix_matching/layer_<i>_head_<h>`, `induction/copying/...`) and keeps them in
`history`. At the end of training it writes `history` as JSON and the PNG of
the three curves over steps (`induction_curves_figure`), when paths are given.

Training never imports the probes (see `setup.cfg [importlinter]`); the
caller builds this callback and passes it to `keras_lm.training.train(config,
callbacks=[...])` or to `model.fit`.

Example (`fit(..., callbacks=[callback])` calls these hooks itself):
>>> import numpy as np, tempfile
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=20, sequence_length=16)
>>> model.compile("adamw", jit_compile=False)
>>> x = np.random.default_rng(0).integers(0, 20, (2, 16)).astype("int32")
>>> callback = InductionScores([(x, x)], tempfile.mkdtemp(), every_steps=1, batch_size=2)
>>> callback.set_model(model)
>>> callback.on_train_begin()  # measures step 0
>>> [row["step"] for row in callback.history], sorted(callback.history[0])[:3]
([0], ['best_prefix_matching', 'best_prefix_matching_head', 'best_previous_token'])
"""

import os

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from keras_lm.figures import png_bytes
from keras_lm.io_utils import write_bytes, write_json
from keras_lm.probes import icl
from keras_lm.scoring import position_sums


class PeriodicScores(keras.callbacks.Callback):
    """Scores the model at step 0, every `every_steps` steps and at the end of training.

    The schedule and the TensorBoard writer of the probes' training callbacks;
    a subclass says what a measurement is (`score(step)` -> a history row, and
    `scalars(row)` -> `(tag, value)` pairs for TensorBoard) and what it writes
    when training ends (`write_outputs()`). A second `fit()` goes on from
    where the first stopped.
    """

    def __init__(self, log_dir, every_steps):
        super().__init__()
        self.log_dir = log_dir
        self.every_steps = int(every_steps)
        self.history = []
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)
        if not self.history:  # a second fit() goes on from where the first stopped
            self.measure(int(self.model.optimizer.iterations.numpy()))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every_steps == 0 and (not self.history or self.history[-1]["step"] != step):
            self.measure(step)

    def measure(self, step):
        """Scores the model now; appends the row to `history` and writes the scalars."""
        row = self.score(step)
        self.history.append(row)
        with self._writer.as_default():
            for tag, value in self.scalars(row):
                tf.summary.scalar(tag, value, step=step)
        self._writer.flush()
        return row

    def on_train_end(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if self.history[-1]["step"] != step:
            self.measure(step)
        self._writer.close()
        self.write_outputs()

    def score(self, step):
        raise NotImplementedError

    def scalars(self, row):
        raise NotImplementedError

    def write_outputs(self):
        """Writes the history's files (none here)."""


class InductionScores(PeriodicScores):
    """Measures the ICL score and the induction head scores every `every_steps` steps.

    Args:
        batches: a few `(inputs, targets)` batches (arrays) for the ICL score,
            e.g. the task's validation stream; scored at every measurement.
        log_dir: where the TensorBoard scalars go (e.g. `<run>/logs/induction`).
        every_steps: steps between measurements (also one at step 0).
        special_ids: ids the repeated random tokens leave out (the tokenizer's).
        batch_size: sequences of repeated random tokens for the head scores.
        json_path, png_path: where `on_train_end` writes the history and the
            figure of the three curves (None: not written).
    """

    def __init__(self, batches, log_dir, every_steps=50, special_ids=(), batch_size=16,
                 json_path=None, png_path=None, title=None, answer_batches=None, pad_id=None):
        super().__init__(log_dir, every_steps)
        self.batches = [(np.asarray(x), np.asarray(y)) for x, y in batches]
        # The loss on the answers only (targets off the answers set to pad_id).
        self.answer_batches = [(np.asarray(x), np.asarray(y)) for x, y in answer_batches or ()]
        self.pad_id = pad_id
        self.special_ids = list(special_ids)
        self.batch_size = batch_size
        self.json_path, self.png_path, self.title = json_path, png_path, title

    def score(self, step):
        heads = icl.induction_heads(self.model, self.special_ids, batch_size=self.batch_size)
        icl_result = icl.icl_score(self.model, self.batches)
        extra = {}
        if self.answer_batches:
            loss_sums, _, counts = position_sums(self.model, self.answer_batches, self.pad_id)
            extra["answer_loss"] = float(loss_sums.sum() / max(counts.sum(), 1.0))
        return {"step": step, "icl_score": icl_result["icl_score"], **extra,
                "loss_early": icl_result["loss_early"], "loss_late": icl_result["loss_late"],
                "best_prefix_matching": heads["best_prefix_matching"],
                "best_prefix_matching_head": heads["best_prefix_matching_head"],
                "best_previous_token": heads["best_previous_token"],
                "prefix_matching": heads["prefix_matching"],
                "previous_token": heads["previous_token"],
                "copying": heads["copying"]}

    def scalars(self, row):
        for name in ("icl_score", "loss_early", "loss_late", "best_prefix_matching",
                     "best_previous_token", "answer_loss"):
            if name in row:
                yield f"induction/{name}", row[name]
        for score in ("prefix_matching", "previous_token", "copying"):
            if row[score] is None:  # copying: a model without the weights it reads
                continue
            for (layer, head), value in np.ndenumerate(np.asarray(row[score])):
                yield f"induction/{score}/layer_{layer + 1}_head_{head + 1}", value

    def write_outputs(self):
        for path in (self.json_path, self.png_path):
            if path:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if self.json_path:
            write_json(self.json_path, {"every_steps": self.every_steps,
                                        "threshold": icl.PRESENT, "history": self.history})
        if self.png_path:
            write_bytes(self.png_path, induction_curves_figure(self.history, self.title))


def induction_curves_figure(history, title=None):
    """PNG: the ICL score (left axis) and the two head scores (right axis) over steps.

    `history`: rows with `step`, `icl_score`, `best_prefix_matching` and
    `best_previous_token` (an `InductionScores.history`). A dotted line marks
    the threshold above which a head is called present.

    Example:
    >>> rows = [{"step": s, "icl_score": -s / 10, "best_prefix_matching": s / 20,
    ...          "best_previous_token": s / 30} for s in range(4)]
    >>> induction_curves_figure(rows)[:4]
    b'\\x89PNG'
    """
    steps = [row["step"] for row in history]
    figure = Figure(figsize=(7.0, 4.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.plot(steps, [row["icl_score"] for row in history], color="tab:blue", marker=".",
              label="ICL score (nats, left)")
    if history and "answer_loss" in history[0]:  # the loss drop, on the same step axis
        axes.plot(steps, [row["answer_loss"] for row in history], color="tab:purple",
                  marker=".", label="loss on the answers (nats, left)")
    axes.set_xlabel("training step")
    axes.set_ylabel("ICL score: loss late - loss early (nats)")
    axes.grid(True, alpha=0.3)
    right = axes.twinx()
    right.plot(steps, [row["best_prefix_matching"] for row in history], color="tab:red",
               marker=".", label="best prefix-matching head, any layer (right)")
    right.plot(steps, [row["best_previous_token"] for row in history], color="tab:green",
               marker=".", label="best previous-token head, layer 1 (right)")
    right.axhline(icl.PRESENT, color="gray", linestyle=":", linewidth=1)
    right.set_ylim(-0.02, 1.02)
    right.set_ylabel("attention share")
    lines = axes.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    axes.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center right")
    axes.set_title(title or "induction heads over training", fontsize=10)
    return png_bytes(figure)


def induction_callback(run_dir, task_batches, special_ids, every_steps=50, answer_batches=None,
                       pad_id=None):
    """An `InductionScores` that writes into a run directory's usual places.

    Scalars go to `<run_dir>/logs/induction`, the history to
    `<run_dir>/probes/induction_curves.json` and the figure to
    `<run_dir>/probes/induction_curves.png`.
    """
    return InductionScores(task_batches, os.path.join(run_dir, "logs", "induction"),
                           every_steps=every_steps, special_ids=special_ids,
                           answer_batches=answer_batches, pad_id=pad_id,
                           json_path=os.path.join(run_dir, "probes", "induction_curves.json"),
                           png_path=os.path.join(run_dir, "probes", "induction_curves.png"))


__all__ = ["InductionScores", "induction_callback", "induction_curves_figure"]
