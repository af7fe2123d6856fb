"""Seeds tables from per-seed CSVs (keras_lm.probes.seeds_table, docs/experiments/seeds_table.py)."""

import csv
import os
import subprocess
import sys

import pytest

from keras_lm.errors import UsageError
from keras_lm.probes.seeds_table import read_seed_csvs, seeds_table, summarise

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_seed(folder, seed, rows):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"seed-{seed}.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def curve(values, every=250, **extra):
    return [{"step": every * (i + 1), "exact_match": v, **extra} for i, v in enumerate(values)]


def test_summary_median_min_fraction_and_transition():
    seeds = {0: curve([0.2, 0.6, 0.99]),   # half-way (0.475) at 500, reaches 0.95
             1: curve([0.3, 0.5, 0.97]),   # half-way at 500
             2: curve([0.25, 0.26, 0.27]),  # never half-way
             3: curve([0.5, 0.9, 0.96]),   # half-way at 250
             4: curve([0.2, 0.3])}         # stopped early: last step 500
    s = summarise(seeds, "exact_match", threshold=0.95)
    assert s["finals"] == [0.99, 0.97, 0.27, 0.96, 0.3]
    assert s["median"] == 0.96 and s["min"] == 0.27 and s["max"] == 0.99
    assert s["reached"] == 0.6  # 3 of 5
    assert s["transition_steps"] == [500, 500, 250] and s["median_transition_step"] == 500
    assert s["last_steps"] == [750, 750, 750, 750, 500]
    # An explicit half-way mark moves the transition.
    assert summarise(seeds, "exact_match", 0.95, halfway=0.9)["transition_steps"] == [750, 750, 500]


def test_table_from_folders_split_by_a_column(tmp_path):
    folder = str(tmp_path / "phase")
    for seed in range(3):
        write_seed(folder, seed, curve([0.1, 0.2], num_layers=1)
                   + curve([0.1, 0.8 if seed else 0.3], num_layers=2))
    groups = read_seed_csvs(folder, group="num_layers")
    assert sorted(groups) == [1, 2] and sorted(groups[2]) == [0, 1, 2]
    table = seeds_table([folder], "exact_match", 0.5, group="num_layers")
    lines = table.splitlines()
    assert lines[2].startswith("| phase, num_layers=1 | 3 | 0.200 | 0.200 | 0.200 | 0% | - |")
    assert lines[3].startswith("| phase, num_layers=2 | 3 | 0.800 | 0.300 | 0.800 | 67% | 500 (3/3) |")


def test_no_csv_is_a_usage_error_and_the_script_exits_2(tmp_path):
    with pytest.raises(UsageError, match="^folder: no seed-<s>.csv files in"):
        seeds_table([str(tmp_path)], "exact_match", 0.95)
    write_seed(str(tmp_path / "a"), 0, curve([0.5]))
    with pytest.raises(UsageError, match="^metric: no numeric 'accuracy'"):
        seeds_table([str(tmp_path / "a")], "accuracy", 0.95)
    script = os.path.join(ROOT, "docs", "experiments", "seeds_table.py")
    done = subprocess.run([sys.executable, script, str(tmp_path / "empty")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("seeds_table.py: folder: no seed-<s>.csv files in")
    done = subprocess.run([sys.executable, script, str(tmp_path / "a"), "--threshold=0.4"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "| a | 1 | 0.500 |" in done.stdout
