"""The lab's outputs without training: a sweep's table and figures from given rows."""

import csv
import os

from keras_lm.probes.sweep import Sweep, order_columns, write_results


def test_sweep_table_has_order_columns_and_the_emergence_figures(tmp_path):
    sweep = Sweep(task="addition", families=["transformer"], sizes=[16, 32], steps=[100, 200],
                  output_dir=str(tmp_path))
    rows = []
    for width, steps in [(16, 100), (16, 200), (32, 100), (32, 200)]:
        exact = [0.1 * (width // 16) + steps / 1000] * 11  # 11 answers: _10 and _11 too
        rows.append({"family": "transformer", "width": width, "num_layers": 2, "steps": steps,
                     "group": f"transformer, {steps} steps", "num_parameters": 100 * width,
                     "exact_match": exact[0], "token_accuracy": 0.5, "token_edit_distance": 1.0,
                     "answer_log_likelihood": -1.0, "val_loss": 1.0, "icl_score": 0.0,
                     **order_columns({"exact_match_by_order": exact})})
    write_results(sweep, rows)
    with open(tmp_path / "results.csv") as f:
        header = next(csv.reader(f))
    order = [name for name in header if name.startswith("exact_match_answer_")]
    assert order == [f"exact_match_answer_{j}" for j in range(1, 12)]  # 2 before 10
    for name in ("emergence.png", "emergence_by_steps.png", "exact_match_by_width.png"):
        with open(os.path.join(tmp_path, name), "rb") as f:
            assert f.read(4) == b"\x89PNG"
