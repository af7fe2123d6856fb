"""Induction heads as a phase change: 1-layer against 2-layer models, scored while they train.

Trains one Transformer per depth on the `induction` task (every position
in the loss) with the `InductionScores` callback, so every `every_steps`
steps the loss on the answers (the repeated tokens), the ICL score, the
best prefix-matching head (any layer, with its copying score) and the best
previous-token head (layer 1) are measured (Olsson et al. 2022). The task is
`induction_repeat="random"` by default: one random segment repeated at a
random offset in random tokens, which no fixed-offset head solves (the
periodic task, `repeat="periodic"`, is solved by positional heads).
Writes into `output_dir`:

- `runs/layers-<n>/`: each run (TensorBoard: `logs/induction` holds the
  scores as scalars; `probes/induction_curves.png` its own three curves);
- `results.csv` / `results.json`: one row per (depth, measurement);
- `phase_change.png`: the three curves of every depth over steps, one
  panel per score.

Example:
    from keras_lm.probes.phase_change import PhaseChange, run_phase_change
    rows = run_phase_change(PhaseChange(output_dir="/tmp/phase", steps=1500))
"""

import csv
import dataclasses
import io
import os

import numpy as np
from matplotlib.figure import Figure

from keras_lm.data.synthetic import Task, task_dataset, task_tokenizer
from keras_lm.figures import png_bytes
from keras_lm.io_utils import write_bytes, write_json
from keras_lm.probes.icl import PRESENT
from keras_lm.probes.training_callback import induction_callback
from keras_lm.training import TrainConfig, train

COLUMNS = ("num_layers", "seed", "step", "answer_loss", "icl_score", "loss_early", "loss_late",
           "best_prefix_matching", "best_prefix_matching_head", "best_prefix_matching_copying",
           "best_previous_token")


@dataclasses.dataclass
class PhaseChange:
    """The experiment's settings (names follow `keras-lm train`'s flags)."""

    output_dir: str
    num_layers: tuple = (1, 2)
    steps: int = 1500
    every_steps: int = 50
    width: int = 32
    num_heads: int = 2
    sequence_length: int = 64
    vocabulary_size: int = 64
    batch_size: int = 32
    learning_rate: float = 3e-3
    position_embedding: str = "rotary"
    block_length: int = None  # None: the task's lengths (L/8 to L/2, drawn per sequence)
    repeat: str = "random"  # the task's induction_repeat: "random" or "periodic"
    intermediate_dim: int = None  # MLP width (None: 4 x width; 0: attention-only blocks)
    seed: int = 0
    model_args: dict = None  # more TransformerLM arguments, e.g. {"smear": True}

    def task_args(self):
        if self.block_length is None:
            return {"induction_repeat": self.repeat}
        return {"induction_min_length": self.block_length,
                "induction_max_length": self.block_length, "induction_repeat": self.repeat}

    def task(self):
        return Task("induction", self.sequence_length, self.vocabulary_size, **self.task_args())

    def config(self, layers):
        return TrainConfig(
            model="transformer", preset="tiny",
            model_args={"hidden_dim": self.width, "num_heads": self.num_heads,
                        "num_layers": layers, "position_embedding": self.position_embedding,
                        "intermediate_dim": self.intermediate_dim, **(self.model_args or {})},
            task="induction", task_args=self.task_args(), sequence_length=self.sequence_length,
            vocabulary_size=self.vocabulary_size, batch_size=self.batch_size, steps=self.steps,
            eval_interval=self.steps, val_steps=2, learning_rate=self.learning_rate,
            seed=self.seed, dropout=0.0, verbose=0, attention_maps=False,
            embedding_projector=False, samples=False,
            output_dir=os.path.join(self.output_dir, "runs", f"layers-{layers}"))


def run_phase_change(experiment):
    """Trains every depth with the induction scores logged; writes the outputs; returns rows."""
    task = experiment.task()
    tokenizer = task_tokenizer(task)
    # The ICL score's batches: the task's validation stream, every position counts;
    # the answer loss: the same batches, the repeated tokens only.
    validation = list(task_dataset(task, 32, seed=experiment.seed, split="validation",
                                   num_batches=4))
    batches = [(b["inputs"].numpy(), b["targets"].numpy()) for b in validation]
    pad = tokenizer.pad_id
    answers = [(b["inputs"].numpy(), np.where(b["answer_group"].numpy() > 0,
                                              b["targets"].numpy(), pad)) for b in validation]
    rows, histories = [], {}
    for layers in experiment.num_layers:
        config = experiment.config(layers)
        callback = induction_callback(config.output_dir, batches, tokenizer.special_ids.values(),
                                      experiment.every_steps, answer_batches=answers, pad_id=pad)
        train(config, callbacks=[callback])
        histories[layers] = callback.history
        rows += [history_row(experiment, layers, row) for row in callback.history]
        write_results(experiment, rows, histories)
    return rows


def history_row(experiment, layers, row):
    """One results.csv row from an `InductionScores` history row."""
    layer, head = row["best_prefix_matching_head"]
    copying = row["copying"][layer - 1][head - 1] if row["copying"] else None
    return {"num_layers": layers, "seed": experiment.seed,
            "best_prefix_matching_head": f"{layer}.{head}",
            "best_prefix_matching_copying": copying,
            **{k: row.get(k) for k in COLUMNS if k not in (
                "num_layers", "seed", "best_prefix_matching_head",
                "best_prefix_matching_copying")}}


def write_results(experiment, rows, histories):
    out = experiment.output_dir
    write_json(os.path.join(out, "results.json"),
               {"experiment": dataclasses.asdict(experiment), "threshold": PRESENT,
                "histories": {str(k): v for k, v in histories.items()}})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS)
    writer.writeheader()
    writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                     for row in rows)
    write_bytes(os.path.join(out, "results.csv"), buffer.getvalue().encode())
    write_bytes(os.path.join(out, "phase_change.png"), phase_change_figure(histories))


def phase_change_figure(histories):
    """PNG: ICL score, best prefix-matching and best previous-token score over steps, per depth.

    Example:
    >>> rows = [{"step": s, "icl_score": -s, "best_prefix_matching": s / 4,
    ...          "best_previous_token": s / 3} for s in range(3)]
    >>> phase_change_figure({1: rows, 2: rows})[:4]
    b'\\x89PNG'
    """
    figure = Figure(figsize=(12.0, 3.8), dpi=100, layout="constrained")
    first = next(iter(histories.values()), [{}])[0]
    loss = (("answer_loss", "loss on the repeated tokens (nats)") if "answer_loss" in first
            else ("icl_score", "ICL score (loss late - loss early, nats)"))
    panels = (loss,
              ("best_prefix_matching", "best prefix-matching head (any layer)"),
              ("best_previous_token", "best previous-token head (layer 1)"))
    for i, (key, label) in enumerate(panels):
        axes = figure.add_subplot(1, 3, i + 1)
        for layers, history in sorted(histories.items()):
            axes.plot([r["step"] for r in history], [r[key] for r in history], marker=".",
                      label=f"{layers} layer{'s' * (layers > 1)}")
        if key not in ("icl_score", "answer_loss"):
            axes.axhline(PRESENT, color="gray", linestyle=":", linewidth=1)
            axes.set_ylim(-0.02, 1.02)
        axes.set_xlabel("training step")
        axes.set_title(label, fontsize=9)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    return png_bytes(figure)


__all__ = ["PhaseChange", "phase_change_figure", "run_phase_change"]
