"""The console script ends without the interpreter's teardown, its output and exit code whole."""

import json
import os

from conftest import keras_lm


def test_whole_process_exit_keeps_output_exit_code_and_files(tmp_path):
    help_run = keras_lm("train", "--help")
    assert help_run.returncode == 0, help_run.stderr
    assert "--sequence_length" in help_run.stdout and "--recipe" in help_run.stdout
    bad = keras_lm("train", "--recipe=tiny", "--steps=0", f"--output_dir={tmp_path / 'bad'}")
    assert bad.returncode == 2
    assert "--steps" in bad.stderr and "Traceback" not in bad.stderr
    run = keras_lm("train", "--recipe=tiny", "--steps=2", "--eval_interval=2", "--verbose=2",
                   "--noattention_maps", "--noposition_loss", "--noembedding_projector",
                   f"--output_dir={tmp_path / 'run'}")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.rstrip().splitlines()[-1].startswith("  tensorboard --logdir")
    with open(tmp_path / "run" / "metrics.json", encoding="utf-8") as file:
        assert json.load(file)["steps"] == 2
    assert os.path.getsize(tmp_path / "run" / "model.keras") > 0
