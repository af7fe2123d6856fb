"""keras-lm sweep: a tiny grid writes its tables and plots, resumes, warns, rejects bad input."""

import csv
import json
import os

from conftest import assert_one_line_usage_error, run_in_process

# LSTMs: no XLA compilation, so a 3-step run takes seconds.
TINY_SWEEP = ["sweep", "--task=mqar", "--mqar_num_pairs=2", "--sequence_length=16",
              "--vocab_size=32", "--model=lstm", "--sizes=8", "--steps=3", "--batch_size=4"]


def test_tiny_sweep_writes_results_and_resumes(tmp_path, capsys):
    output = str(tmp_path / "sweep")
    code, out, err = run_in_process(capsys, *TINY_SWEEP, f"--output_dir={output}",
                                    "--max_minutes=0.01")
    assert code == 0, err
    assert "max_minutes=0.01" in err and "warning" in err  # warned before starting
    with open(os.path.join(output, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [(r["family"], r["width"]) for r in rows] == [("lstm", "8")]
    for row in rows:
        assert 0 <= float(row["exact_match"]) <= float(row["token_accuracy"]) <= 1
        assert row["icl_score"] != ""
    for name in ("exact_match_and_token_accuracy.png", "exact_match_and_token_edit_distance.png",
                 "exact_match_and_answer_log_likelihood.png", "icl_score.png"):
        with open(os.path.join(output, name), "rb") as f:
            assert f.read(4) == b"\x89PNG"
    with open(os.path.join(output, "results.json")) as f:
        assert len(json.load(f)["results"]) == 1
    # Each run's HParams session for TensorBoard.
    assert any(name.startswith("events") for name in
               os.listdir(os.path.join(output, "runs", "lstm-w8-l1-s3", "logs")))

    model_file = os.path.join(output, "runs", "lstm-w8-l1-s3", "model.keras")
    before = os.path.getmtime(model_file)
    code, out, err = run_in_process(capsys, *TINY_SWEEP, f"--output_dir={output}",
                                    "--sizes=8,16")
    assert code == 0, err
    assert out.count("finished before, skipped") == 1
    assert "training lstm-w16-l1-s3" in out
    assert os.path.getmtime(model_file) == before  # not trained again
    with open(os.path.join(output, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [(r["family"], r["width"]) for r in rows] == [("lstm", "8"), ("lstm", "16")]
    assert int(rows[0]["num_parameters"]) < int(rows[1]["num_parameters"])


def test_sweep_bad_input_is_one_line(tmp_path, capsys):
    out = f"--output_dir={tmp_path}"
    code, _, err = run_in_process(capsys, *TINY_SWEEP, "--model=lstm,gru", out)
    assert_one_line_usage_error(code, err, "sweep", "--model: unknown family 'gru'")
    code, _, err = run_in_process(capsys, *TINY_SWEEP, "--sizes=8,x", out)
    assert_one_line_usage_error(code, err, "sweep", "--sizes: expected a comma-separated list")
    code, _, err = run_in_process(capsys, *TINY_SWEEP, "--mqar_num_pairs=5", out)
    assert_one_line_usage_error(code, err, "sweep", "--mqar_num_pairs=5")
    code, _, err = run_in_process(capsys, "sweep", "--task=mqar")
    assert_one_line_usage_error(code, err, "sweep", "--output_dir is required")


def test_model_args_reach_the_transformer_cells_only(tmp_path, capsys):
    from keras_lm.probes.sweep import Sweep

    sweep = Sweep(task="mqar", families=["transformer", "lstm"], sizes=[32], steps=[3],
                  output_dir=str(tmp_path), model_args={"intermediate_dim": 0})
    configs = {cell["family"]: sweep.config(cell) for cell in sweep.cells()}
    assert configs["transformer"].model_args["intermediate_dim"] == 0
    assert "intermediate_dim" not in configs["lstm"].model_args
    code, _, err = run_in_process(capsys, *TINY_SWEEP, "--model_args=intermediate_dim",
                                  f"--output_dir={tmp_path}")
    assert_one_line_usage_error(code, err, "sweep", "--model_args: expected name=value")


def test_recipe_settings_reach_the_cells(tmp_path, capsys):
    """Round 3's MQAR recipe as a sweep: model_args override the sweep's heads,
    weight decay is shared by the cells, the LSTM has widths of its own."""
    from keras_lm.probes.sweep import Sweep

    sweep = Sweep(task="mqar", families=["transformer", "lstm"], sizes=[16, 64], steps=[3],
                  output_dir=str(tmp_path), weight_decay=0.0, family_sizes={"lstm": [128]},
                  model_args={"intermediate_dim": 0, "num_heads": 1})
    cells = sweep.cells()
    assert [(c["family"], c["width"]) for c in cells] == [
        ("transformer", 16), ("transformer", 64), ("lstm", 128)]
    configs = [sweep.config(cell) for cell in cells]
    assert configs[1].model_args["num_heads"] == 1  # not 64 // 16
    assert {config.weight_decay for config in configs} == {0.0}
    out = f"--output_dir={tmp_path}"
    code, _, err = run_in_process(capsys, *TINY_SWEEP, "--lstm_sizes=8,0", out)
    assert_one_line_usage_error(code, err, "sweep", "--lstm_sizes: expected positive integers")
    code, _, err = run_in_process(capsys, *TINY_SWEEP, "--model=transformer",
                                  "--lstm_sizes=8", out)
    assert_one_line_usage_error(code, err, "sweep", "--lstm_sizes: 'lstm' is not one of")
    code, _, err = run_in_process(capsys, *TINY_SWEEP, "--score_every=0", out)
    assert_one_line_usage_error(code, err, "sweep", "--score_every: expected a positive")
    assert not os.listdir(tmp_path)  # nothing written
