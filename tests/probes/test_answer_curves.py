"""AnswerCurves: the answer scores of a task run measured during training (a few steps, tiny LSTM)."""

import csv
import json
import os

import numpy as np


def test_answer_curves_score_a_run_every_n_steps(tmp_path):
    import keras

    from keras_lm.data.synthetic import (
        Task,
        task_dataset,
        task_tokenizer,
        training_pairs,
    )
    from keras_lm.models import LSTMLM
    from keras_lm.probes.answer_curves import AnswerCurves
    from keras_lm.scoring import evaluate_task

    keras.utils.set_random_seed(0)
    task = Task("addition", sequence_length=16, addition_digits=1)
    tokenizer = task_tokenizer(task)
    model = LSTMLM.from_preset("tiny", vocabulary_size=tokenizer.vocabulary_size,
                               sequence_length=16, pad_id=tokenizer.pad_id)
    model.compile("adamw", learning_rate=1e-2, total_steps=6, jit_compile=False)
    callback = AnswerCurves(task, str(tmp_path / "logs"), every_steps=2, batch_size=8,
                            num_batches=2, json_path=str(tmp_path / "out" / "curves.json"),
                            csv_path=str(tmp_path / "out" / "curves.csv"),
                            png_path=str(tmp_path / "out" / "curves.png"))
    data = training_pairs(task_dataset(task, 8, seed=0), task, tokenizer.pad_id)
    model.fit(data, steps_per_epoch=5, epochs=1, verbose=0, callbacks=[callback])
    # Step 0, every 2 steps, and the last step.
    assert [row["step"] for row in callback.history] == [0, 2, 4, 5]
    # The last row is the held-out score of the finished model, the same batches.
    final = evaluate_task(model, task, batch_size=8, num_batches=2, seed=0)
    for name in ("exact_match", "token_accuracy", "token_edit_distance",
                 "answer_log_likelihood"):
        np.testing.assert_allclose(callback.history[-1][name], final[name], rtol=1e-5)
    with open(tmp_path / "out" / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["step"]) for row in rows] == [0, 2, 4, 5]
    with open(tmp_path / "out" / "curves.json") as f:
        assert json.load(f)["every_steps"] == 2
    with open(tmp_path / "out" / "curves.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"
    assert any(name.startswith("events") for name in os.listdir(tmp_path / "logs"))


def test_sharpness_gap_reads_the_normalised_curves():
    from keras_lm.probes.answer_curves import sharpness_gap

    # Token accuracy rises linearly, exact match only at the end: a sharp curve.
    rows = [{"step": 50 * i, "token_accuracy": 0.3 + 0.07 * i, "exact_match": 0.9 * (i == 10)}
            for i in range(11)]
    step, exact_share = sharpness_gap(rows)
    assert abs(step - 250) < 1e-6 and exact_share == 0.0
    # Both linear: exact match has covered as much as token accuracy.
    rows = [{**row, "exact_match": 0.09 * i} for i, row in enumerate(rows)]
    assert abs(sharpness_gap(rows)[1] - 0.5) < 1e-9
