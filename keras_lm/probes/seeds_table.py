"""Seeds tables: one experiment's per-seed result CSVs summarised, as a markdown table.

Each experiment writes one CSV per seed (`seed-<s>.csv`, a row per
evaluation, with a step column). For a configuration (a folder of such CSVs,
optionally split by a column such as `num_layers`) the table gives, over
seeds, the metric at each seed's last evaluation: median, min, max, the
fraction of seeds at or above the threshold, and the median *transition
step*: the first evaluation at or above half-way (`halfway`, by default
half the threshold). A seed that never gets half-way has no transition
step; the median is over the seeds that have one, and the table says how
many did. The last step each seed reached is listed too, so a partial run
(stopped early) shows as one.

Example:
>>> rows = {0: [{"step": 250, "exact_match": 0.3}, {"step": 500, "exact_match": 0.97}],
...         1: [{"step": 250, "exact_match": 0.2}, {"step": 500, "exact_match": 0.4}]}
>>> summary = summarise(rows, "exact_match", threshold=0.95)
>>> summary["median"], summary["min"], summary["reached"], summary["transition_steps"]
(0.685, 0.4, 0.5, [500])
"""

import csv
import glob
import os
import re
import statistics

from keras_lm.errors import UsageError

SEED_FILE = re.compile(r"seed-(\d+)\.csv$")


def read_seed_csvs(folder, step="step", group=None):
    """`{group value: {seed: [row, ...]}}` from `folder/seed-<s>.csv`, rows sorted by step.

    Without `group` every row is in the group `None`. Numbers are parsed;
    other cells stay strings.
    """
    paths = sorted(glob.glob(os.path.join(folder, "seed-*.csv")))
    if not paths:
        raise UsageError(f"folder: no seed-<s>.csv files in {folder!r}", argument="folder")
    groups = {}
    for path in paths:
        match = SEED_FILE.search(os.path.basename(path))
        if not match:
            continue
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                row = {key: _number(value) for key, value in row.items()}
                key = row.get(group) if group else None
                groups.setdefault(key, {}).setdefault(int(match.group(1)), []).append(row)
    for seeds in groups.values():
        for rows in seeds.values():
            rows.sort(key=lambda row: row[step])
    return groups


def summarise(seed_rows, metric, threshold, halfway=None, step="step"):
    """The seeds table's numbers for one configuration: `{seed: rows}` -> dict (see the module doc)."""
    halfway = threshold / 2 if halfway is None else halfway
    finals, transitions, last_steps = [], [], []
    for seed in sorted(seed_rows):
        rows = [row for row in seed_rows[seed] if isinstance(row.get(metric), (int, float))]
        if not rows:
            continue
        finals.append(rows[-1][metric])
        last_steps.append(rows[-1][step])
        above = [row[step] for row in rows if row[metric] >= halfway]
        if above:
            transitions.append(above[0])
    if not finals:
        raise UsageError(f"metric: no numeric {metric!r} column in the seeds' rows",
                         argument="metric")
    return {"seeds": len(finals), "median": round(statistics.median(finals), 4),
            "min": min(finals), "max": max(finals),
            "reached": round(sum(v >= threshold for v in finals) / len(finals), 4),
            "transition_steps": transitions,
            "median_transition_step": statistics.median(transitions) if transitions else None,
            "last_steps": last_steps, "finals": finals, "halfway": halfway}


def markdown_table(summaries, metric, threshold):
    """`summaries`: `{label: summarise(...)}` -> a markdown table (a string)."""
    lines = [f"| configuration | seeds | median {metric} | min | max | reaching {threshold} | "
             "median transition step (seeds that got half-way) | last step per seed | "
             "per seed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, s in summaries.items():
        transition = ("-" if s["median_transition_step"] is None
                      else f"{s['median_transition_step']:g} ({len(s['transition_steps'])}/"
                      f"{s['seeds']})")
        lines.append(
            f"| {label} | {s['seeds']} | {s['median']:.3f} | {s['min']:.3f} | {s['max']:.3f} | "
            f"{s['reached']:.0%} | {transition} | {' '.join(f'{v:g}' for v in s['last_steps'])} "
            f"| {' '.join(f'{v:.3f}' for v in s['finals'])} |")
    return "\n".join(lines) + "\n"


def seeds_table(folders, metric, threshold, halfway=None, group=None, step="step"):
    """The markdown seeds table of several configurations (one folder each)."""
    summaries = {}
    for folder in folders:
        name = os.path.basename(os.path.normpath(folder))
        for key, seed_rows in sorted(read_seed_csvs(folder, step, group).items(),
                                     key=lambda item: str(item[0])):
            label = name if key is None else f"{name}, {group}={key}"
            summaries[label] = summarise(seed_rows, metric, threshold, halfway, step)
    return markdown_table(summaries, metric, threshold)


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text


__all__ = ["markdown_table", "read_seed_csvs", "seeds_table", "summarise"]
