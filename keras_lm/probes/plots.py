"""PNG plots of probes and sweeps (matplotlib's object API, no pyplot state).

Example:
>>> png = head_scores_figure([[0.1, 0.9], [0.0, 0.2]], "prefix matching")
>>> png[:4]
b'\\x89PNG'
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from keras_lm.figures import png_bytes, position_loss_figure

__all__ = ["head_scores_figure", "position_loss_figure", "sweep_figure"]

SHARES = ("exact_match", "token_accuracy")


def head_scores_figure(scores, title):
    """A layers x heads heatmap of one score per attention head, values written in.

    `scores`: one `(layers, heads)` matrix, or a dict of named matrices drawn
    side by side (e.g. prefix matching and previous token). Layers may differ
    in head count (a pruned model): the missing cells stay blank.
    """
    panels = scores if isinstance(scores, dict) else {"": scores}
    panels = {name: _padded(value) for name, value in panels.items()}
    layers, heads = next(iter(panels.values())).shape
    figure = Figure(figsize=(len(panels) * (1.2 + 0.9 * heads), 1.3 + 0.7 * layers), dpi=100,
                    layout="constrained")
    figure.suptitle(title, fontsize=10)
    for i, (name, matrix) in enumerate(panels.items()):
        axes = figure.add_subplot(1, len(panels), i + 1)
        axes.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        for (layer, head), value in np.ndenumerate(matrix):
            if not np.isnan(value):
                axes.text(head, layer, f"{value:.2f}", ha="center", va="center",
                          color="white" if value < 0.6 else "black", fontsize=9)
        axes.set_xticks(range(heads), [f"head {h + 1}" for h in range(heads)])
        axes.set_yticks(range(layers), [f"layer {i + 1}" for i in range(layers)])
        if name:
            axes.set_title(name, fontsize=9)
    return png_bytes(figure)


def _padded(rows):
    """`(layers, heads)` float64 with NaN where a layer has fewer heads."""
    heads = max(len(row) for row in rows)
    return np.array([list(row) + [np.nan] * (heads - len(row)) for row in rows], dtype="float64")


def sweep_figure(rows, metrics, title, x="num_parameters", group="family"):
    """One panel per metric, the metric against parameter count, one line per family.

    `rows`: dicts holding `x`, `group` and the metrics (e.g. the rows of a
    sweep's results.csv). Lines join the points of a group in order of `x`.
    """
    figure = Figure(figsize=(4.2 * len(metrics), 3.6), dpi=100, layout="constrained")
    figure.suptitle(title, fontsize=11)
    groups = sorted({row[group] for row in rows})
    for i, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), i + 1)
        for name in groups:
            points = sorted((float(row[x]), float(row[metric])) for row in rows
                            if row[group] == name and row.get(metric) not in (None, ""))
            if points:
                axes.plot(*zip(*points), marker="o", label=str(name))
        axes.set_xscale("log")
        # Ticks at the runs' own sizes: a grid often spans less than a decade.
        sizes = sorted({float(row[x]) for row in rows})
        axes.set_xticks(sizes, [_short(v) for v in sizes], rotation=45 if len(sizes) > 4 else 0)
        axes.xaxis.set_minor_formatter(NullFormatter())
        if metric in SHARES:
            axes.set_ylim(-0.02, 1.02)  # shares on one scale, so panels compare
        axes.set_xlabel("parameters" if x == "num_parameters" else x)
        if metric == "token_edit_distance":
            axes.invert_yaxis()  # up is better on every panel
        axes.set_ylabel(metric)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    return png_bytes(figure)


def _short(number):
    """12345 -> '12k', 1500000 -> '1.5M'."""
    if number >= 1e6:
        return f"{number / 1e6:.3g}M"
    return f"{number / 1e3:.3g}k" if number >= 1e3 else f"{number:.0f}"
