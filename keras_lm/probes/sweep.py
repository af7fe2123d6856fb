"""Sweeps: a grid of task runs (families x widths x depths x steps), scored and plotted.

Each cell is one `keras_lm.training.train` run in `output_dir/runs/<cell>`
(with its own HParams session under `logs/`, so `tensorboard --logdir
output_dir/runs` compares them all), then scored: the task's answer scores
(exact match and the continuous metrics of Schaeffer et al. 2023) and the
ICL score. A cell whose `metrics.json` exists is finished: a re-run reads it
instead of training again, so an interrupted sweep resumes.

Writes `results.csv`, `results.json` and, per continuous metric, a PNG of
exact match and that metric side by side against parameter count, one line
per model family and depth.

Example:
    from keras_lm.probes.sweep import Sweep, run_sweep
    run_sweep(Sweep(task="mqar", task_args={"mqar_num_pairs": 4}, sequence_length=32,
                    vocabulary_size=64, families=["transformer", "lstm"], sizes=[16, 32],
                    steps=[200], output_dir="/tmp/sweep"))
"""

import csv
import dataclasses
import io
import itertools
import json
import logging
import os

from keras_lm.data.synthetic import task_tokenizer
from keras_lm.errors import UsageError
from keras_lm.io_utils import write_bytes, write_json
from keras_lm.models import MODELS
from keras_lm.probes.answer_curves import answer_curves_callback
from keras_lm.probes.plots import sweep_figure
from keras_lm.probes.runner import run_probe
from keras_lm.training import TrainConfig, build_model, train
from keras_lm.training.run_directory import prepare_output_dir

logger = logging.getLogger("keras_lm")

CONTINUOUS = ("token_accuracy", "token_edit_distance", "answer_log_likelihood")
COLUMNS = ("family", "width", "num_layers", "steps", "group", "num_parameters", "exact_match",
           *CONTINUOUS, "val_loss", "icl_score", "wall_time_seconds", "run_dir")
# A rough cost model for the warning before a sweep starts (measured on 2
# shared cores): start-up, compilation and scoring of a run, and the speed of
# training on small models, where overhead dominates the 6 N flops per token.
SECONDS_PER_RUN = 25.0
FLOPS_PER_SECOND = 4e9
DEFAULT_LAYERS = {"transformer": 2, "lstm": 1}


@dataclasses.dataclass
class Sweep:
    """The grid and the settings shared by its runs (names follow the flags)."""

    task: str
    families: list
    sizes: list
    steps: list
    output_dir: str
    num_layers: list = None  # None: 2 for the Transformer, 1 for the LSTM
    task_args: dict = dataclasses.field(default_factory=dict)
    sequence_length: int = 64
    vocabulary_size: int = None
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0
    max_minutes: float = None
    model_args: dict = dataclasses.field(default_factory=dict)  # the Transformer cells' extras
    weight_decay: float = 0.1
    # Widths per family, where a family's differ from `sizes` (e.g. {"lstm": [64, 128, 256]}):
    # an LSTM matches a Transformer's parameters at a larger width.
    family_sizes: dict = None
    # Score the answers every this many steps during each run (`AnswerCurves`).
    score_every: int = None

    def cells(self):
        """The grid's cells as dicts, in the order they run."""
        for family in self.families:
            if family not in MODELS:
                raise UsageError(f"families: unknown family {family!r}; "
                                 f"choose from {', '.join(MODELS)}", argument="families")
        family_sizes = self.family_sizes or {}
        for family in family_sizes:
            if family not in self.families:
                raise UsageError(f"family_sizes: {family!r} is not one of the sweep's families "
                                 f"({', '.join(self.families)})", argument="family_sizes")
        for name, values in (("sizes", self.sizes), ("steps", self.steps),
                             ("num_layers", self.num_layers or [1]),
                             *(("family_sizes", v) for v in family_sizes.values())):
            if not values or any(v < 1 for v in values):
                raise UsageError(f"{name}: expected positive integers, got {values}",
                                 argument=name)
        if self.score_every is not None and self.score_every < 1:
            raise UsageError(f"score_every: expected a positive number of steps, got "
                             f"{self.score_every}", argument="score_every")
        cells = []
        pairs = [(family, width) for family in self.families
                 for width in family_sizes.get(family, self.sizes)]
        for (family, width), steps in itertools.product(pairs, self.steps):
            for layers in self.num_layers or [DEFAULT_LAYERS[family]]:
                group = f"{family}, {layers} layer{'s' * (layers > 1)}"
                if len(self.steps) > 1:  # one line per training length too
                    group += f", {steps} steps"
                cells.append(dict(family=family, width=width, num_layers=layers, steps=steps,
                                  group=group))
        return cells

    def config(self, cell):
        """The `TrainConfig` of one cell."""
        width, layers = cell["width"], cell["num_layers"]
        if cell["family"] == "transformer":
            # Heads of 16 dimensions: 2 at width 32, 4 at 64, unless model_args says
            # otherwise (e.g. num_heads=1, Zoology's attention).
            args = {**dict(hidden_dim=width, num_heads=max(1, width // 16), num_layers=layers),
                    **(self.model_args or {})}
        else:
            args = dict(hidden_dim=width, embedding_dim=width, num_layers=layers)
        return TrainConfig(
            model=cell["family"], preset="tiny", model_args=args,
            task=self.task, task_args=dict(self.task_args),
            sequence_length=self.sequence_length, vocabulary_size=self.vocabulary_size,
            batch_size=self.batch_size, steps=cell["steps"], eval_interval=cell["steps"],
            val_steps=4, learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            seed=self.seed,
            dropout=0.0, verbose=0, attention_maps=False, embedding_projector=False,
            output_dir=os.path.join(self.output_dir, "runs", cell_name(cell)),
        )


def cell_name(cell):
    """`transformer-w64-l2-s1000`: the run directory of a cell."""
    return f"{cell['family']}-w{cell['width']}-l{cell['num_layers']}-s{cell['steps']}"


def estimate_minutes(sweep, cells):
    """A rough estimate of the grid's time on this kind of machine (see FLOPS_PER_SECOND)."""
    seconds = 0.0
    for cell in cells:
        config = sweep.config(cell)
        if os.path.isfile(os.path.join(config.output_dir, "metrics.json")):
            continue
        model = build_model(config, task_tokenizer(config.make_task()))
        model.build()
        tokens = cell["steps"] * config.batch_size * config.sequence_length
        seconds += SECONDS_PER_RUN + 6 * model.count_params() * tokens / FLOPS_PER_SECOND
    return seconds / 60


def run_sweep(sweep):
    """Trains and scores every unfinished cell; writes the tables and plots; returns the rows."""
    cells = sweep.cells()
    configs = [sweep.config(cell) for cell in cells]
    for config in configs:
        config.validate()  # every cell's mistakes before the first run
    prepare_output_dir(sweep.output_dir)
    minutes = estimate_minutes(sweep, cells)
    if sweep.max_minutes is not None and minutes > sweep.max_minutes:
        logger.warning(f"max_minutes={sweep.max_minutes}: the grid's {len(cells)} runs are "
                       f"estimated at {minutes:.0f} minutes; starting anyway (Ctrl-C stops it, "
                       "a re-run resumes)")
    print(f"sweep: {len(cells)} runs, about {minutes:.1f} minutes left to train", flush=True)
    rows = []
    for cell, config in zip(cells, configs):
        metrics_path = os.path.join(config.output_dir, "metrics.json")
        if os.path.isfile(metrics_path):
            print(f"sweep: {cell_name(cell)} finished before, skipped", flush=True)
        else:
            print(f"sweep: training {cell_name(cell)}", flush=True)
            train(config, callbacks=[answer_curves_callback(config.output_dir, config.make_task(),
                                                            sweep.score_every)]
                  if sweep.score_every else ())
        with open(metrics_path, encoding="utf-8") as f:
            metrics = json.load(f)
        probe_path = os.path.join(config.output_dir, "probes", "icl_score.json")
        if os.path.isfile(probe_path):
            with open(probe_path, encoding="utf-8") as f:
                icl = json.load(f)
        else:
            icl = run_probe(config.output_dir, "icl_score", batches=4)
        rows.append({**cell, **{k: metrics.get(k) for k in COLUMNS if k in metrics},
                     "icl_score": icl["icl_score"], "run_dir": config.output_dir,
                     **{k: v for k, v in metrics.items() if k.startswith("accuracy_at_shots")},
                     **order_columns(metrics)})
        write_results(sweep, rows)  # after every cell: a partial table survives a crash
    return rows


def order_columns(metrics):
    """`exact_match_answer_<j>`: exact match of the j-th answer of a sequence.

    On MQAR the j-th answer is the j-th query: flat when the model matches
    keys, ~1/(N-j+1) when it only picks among unanswered values.

    Example:
    >>> order_columns({"exact_match_by_order": [0.25, 0.5]})
    {'exact_match_answer_1': 0.25, 'exact_match_answer_2': 0.5}
    """
    return {f"exact_match_answer_{j}": value
            for j, value in enumerate(metrics.get("exact_match_by_order") or [], 1)}


def write_results(sweep, rows):
    """results.json, results.csv and the PNGs of `rows` into `sweep.output_dir`."""
    out = sweep.output_dir
    write_json(os.path.join(out, "results.json"),
               {"sweep": dataclasses.asdict(sweep), "results": rows})
    # Extra columns in a stable order, `exact_match_answer_2` before `_10`.
    columns = list(COLUMNS) + sorted({k for row in rows for k in row} - set(COLUMNS),
                                     key=lambda k: (k.rstrip("0123456789"), len(k), k))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(os.path.join(out, "results.csv"), buffer.getvalue().encode())
    for metric in CONTINUOUS:
        png = sweep_figure(rows, ["exact_match", metric],
                           f"{sweep.task}: exact match and {metric.replace('_', ' ')}",
                           group="group")
        write_bytes(os.path.join(out, f"exact_match_and_{metric}.png"), png)
    # Emergence or mirage (Schaeffer et al. 2023): the four answer scores on
    # one figure, against size, and against training length when the grid has several.
    png = sweep_figure(rows, ["exact_match", *CONTINUOUS],
                       f"{sweep.task}: exact match against the continuous scores", group="group")
    write_bytes(os.path.join(out, "emergence.png"), png)
    if len(set(sweep.steps)) > 1:
        by_steps = [{**row, "size": f"{row['family']} w{row['width']} l{row['num_layers']}"}
                    for row in rows]
        png = sweep_figure(by_steps, ["exact_match", *CONTINUOUS],
                           f"{sweep.task}: the answer scores against training steps",
                           x="steps", group="size")
        write_bytes(os.path.join(out, "emergence_by_steps.png"), png)
    # Zoology's figure 2: accuracy against width, one line per family (the
    # parameters, which differ between families at one width, are the panels above).
    png = sweep_figure(rows, ["exact_match"], f"{sweep.task}: exact match against width",
                       x="width", group="group")
    write_bytes(os.path.join(out, "exact_match_by_width.png"), png)
    png = sweep_figure(rows, ["icl_score", "val_loss"], f"{sweep.task}: ICL score and loss",
                       group="group")
    write_bytes(os.path.join(out, "icl_score.png"), png)

