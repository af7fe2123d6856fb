"""One text file, the commonest corpus: trained, evaluated and exported with no
--val_files (the file is split inside, at a line boundary)."""

import json
import random

import pytest

from conftest import NO_VIEWS, WORDS, run_captured, run_in_process


@pytest.fixture(scope="module")
def one_file_run(tmp_path_factory):
    """`keras-lm train --train_files=input.txt` (tiny, 4 steps): (file, output dir, stdout).

    Its first 2 steps see 8-token windows (`--sequence_warmup_steps`), so the
    warm-up's changing batch shape runs through a whole training run here.
    """
    root = tmp_path_factory.mktemp("one_file")
    rng = random.Random(0)
    path = root / "input.txt"
    path.write_text("".join(" ".join(rng.choice(WORDS) for _ in range(8)) + ".\n"
                            for _ in range(2500)), encoding="utf-8")
    output = root / "run"
    # The TensorBoard views and samples are tested on runs of their own
    # (tests/training/test_tensorboard.py, tests/cli/test_train_command.py): off here, where they cost more
    # than the training (the position losses read the whole validation tail).
    result = run_captured("train", "--recipe=tiny", "--sequence_length=32", "--batch_size=4",
                          "--val_steps=1", "--steps=4", "--eval_interval=2", "--nojit_compile",
                          "--sequence_warmup_steps=2", "--nosamples", *NO_VIEWS,
                          f"--train_files={path}", f"--output_dir={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    return path, output, result.stdout


def test_one_file_trains_and_evaluates_on_its_own_tail(one_file_run, capsys):
    path, output, out = one_file_run
    assert "1 file split inside at a line boundary: its last 5%" in out
    config = json.loads((output / "config.json").read_text())
    assert config["validation_split"] == "within_files"
    assert config["sequence_warmup_steps"] == 2
    metrics = json.loads((output / "metrics.json").read_text())
    code, out, err = run_in_process(capsys, "eval", f"--model_dir={output}")
    assert code == 0, err
    evaluation = json.loads(out)
    # eval found the same validation text as training's final evaluation.
    assert evaluation["loss"] == pytest.approx(metrics["val_loss"], rel=1e-5)
    assert 0 < evaluation["tokens"] < 0.1 * path.stat().st_size


@pytest.mark.slow
def test_one_file_run_exports(one_file_run, capsys):
    _, output, _ = one_file_run
    code, out, err = run_in_process(capsys, "export", f"--model_dir={output}",
                                    "--format=tflite", "--quantize=none", "--verify")
    assert code == 0, err
    metadata = json.loads((output / "tflite" / "metadata.json").read_text())
    parity = metadata["files"]["float32"]["parity"]  # on windows of the file's own tail
    assert parity["max_abs_logit_diff"] <= 1e-4 and parity["greedy_identical"]
    assert parity["perplexity"] == pytest.approx(parity["keras_perplexity"], rel=1e-5)
    # The trained weights on the run's own validation text: the final evaluation's
    # perplexity (204.5 after these 4 steps; 204.7 on the parity's windows). An
    # untrained model scores ~259 (chance), the head of the file or other text
    # something else.
    val_perplexity = json.loads((output / "metrics.json").read_text())["val_perplexity"]
    assert parity["keras_perplexity"] == pytest.approx(val_perplexity, rel=0.02)
