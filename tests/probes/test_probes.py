"""Probes and task runs: the ICL score of a model that learned induction, of an
untrained one, task scores in metrics.json, outputs, and bad input."""

import json
import os

import numpy as np
import pytest
from conftest import assert_one_line_usage_error, run_in_process

from keras_lm.errors import UsageError
from keras_lm.probes import AnswerScores
from keras_lm.probes.runner import run_probe

INDUCTION = dict(task="induction", sequence_length=32, vocabulary_size=16)


@pytest.fixture(scope="module")
def induction_run(tmp_path_factory):
    """A tiny Transformer trained 200 steps on `induction` (~30 s on 2 cores)."""
    from keras_lm.data.synthetic import Task, task_dataset
    from keras_lm.probes.training_callback import induction_callback
    from keras_lm.training import TrainConfig, train

    output = str(tmp_path_factory.mktemp("induction") / "run")
    # The induction scores measured during training (3 times: 0, 100, 200 steps).
    task = Task(INDUCTION["task"], INDUCTION["sequence_length"], INDUCTION["vocabulary_size"])
    batches = [(b["inputs"].numpy(), b["targets"].numpy())
               for b in task_dataset(task, 16, split="validation", num_batches=2)]
    specials = range(INDUCTION["vocabulary_size"], INDUCTION["vocabulary_size"] + 4)
    callback = induction_callback(output, batches, specials, every_steps=100)
    metrics = train(TrainConfig(
        recipe="tiny", preset="tiny", steps=200, eval_interval=100, batch_size=32, val_steps=2,
        learning_rate=3e-3, verbose=0, attention_maps=False, embedding_projector=False,
        samples=False, position_loss=False, hparams=False,  # not checked here
        jit_compile=False,  # XLA compiles for longer than these 200 tiny steps run
        output_dir=output, **INDUCTION), callbacks=[callback])
    return output, metrics


def save_untrained(directory, family):
    """A model directory as `train` leaves it, but with untrained weights."""
    from keras_lm.data.synthetic import Task, task_tokenizer
    from keras_lm.io_utils import write_json
    from keras_lm.models import MODELS

    task = Task(INDUCTION["task"], INDUCTION["sequence_length"], INDUCTION["vocabulary_size"])
    tokenizer = task_tokenizer(task)
    model = MODELS[family].from_preset("tiny", vocabulary_size=tokenizer.vocabulary_size,
                                       sequence_length=32, pad_id=tokenizer.pad_id)
    model.build()
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, "model.keras"))
    tokenizer.save(os.path.join(directory, "tokenizer.json"))
    write_json(os.path.join(directory, "config.json"),
               {**INDUCTION, "model": family, "task_args": {}, "seed": 0})
    return directory


def test_task_run_reports_answer_scores(induction_run):
    _, metrics = induction_run
    for name in ("exact_match", "token_accuracy", "token_edit_distance", "answer_log_likelihood"):
        assert name in metrics
    assert 0 <= metrics["exact_match"] <= metrics["token_accuracy"] <= 1
    # It learned to copy: far above chance (1/16) on the repeats.
    assert metrics["token_accuracy"] > 0.2


def test_icl_score_of_a_model_that_learned_induction_is_clearly_negative(induction_run, capsys):
    output, _ = induction_run
    code, out, err = run_in_process(capsys, "probe", f"--model_dir={output}",
                                    "--probe=icl_score", "--batches=4")
    assert code == 0, err
    result = json.loads(out)
    assert (result["early_position"], result["late_position"]) == (3, 31)  # 50/512, 500/512 of 32
    # Early tokens are unpredictable (ln 16 = 2.77 nats); late ones are copies.
    assert result["loss_early"] > 2.5
    assert result["icl_score"] < -0.4
    assert os.path.isfile(os.path.join(output, "probes", "icl_score.png"))
    with open(os.path.join(output, "probes", "icl_score.json")) as f:
        assert json.load(f)["icl_score"] == result["icl_score"]
    assert os.listdir(os.path.join(output, "logs", "probes"))  # TensorBoard events


def test_induction_probe_repeat_beats_first_copy(induction_run, capsys):
    output, _ = induction_run
    code, out, err = run_in_process(capsys, "probe", f"--model_dir={output}",
                                    "--probe=induction", "--batches=2")
    assert code == 0, err
    result = json.loads(out)
    assert result["accuracy_repeat"] > result["accuracy_first"] + 0.1
    assert result["loss_repeat"] < result["loss_first"] - 0.3


def test_training_logs_induction_scores(induction_run):
    """The fixture's run trained with `induction_callback` (probes -> training)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output, _ = induction_run
    with open(os.path.join(output, "probes", "induction_curves.json")) as f:
        history = json.load(f)["history"]
    assert [row["step"] for row in history] == [0, 100, 200]
    # At step 0 nothing is learned (ICL ~0); after 200 steps the copies are predicted.
    assert abs(history[0]["icl_score"]) < 0.1
    assert history[-1]["icl_score"] < history[0]["icl_score"] - 0.4
    assert np.array(history[-1]["prefix_matching"]).shape == (2, 2)
    assert os.path.getsize(os.path.join(output, "probes", "induction_curves.png")) > 1000
    events = EventAccumulator(os.path.join(output, "logs", "induction")).Reload()
    tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
    assert {"induction/icl_score", "induction/best_prefix_matching",
            "induction/best_previous_token", "induction/prefix_matching/layer_2_head_1",
            "induction/copying/layer_2_head_1"} <= tags
    copying = np.array(history[-1]["copying"])
    assert copying.shape == (2, 2) and np.all(np.abs(copying) <= 1.0)


def test_untrained_model_icl_score_is_near_zero(tmp_path, capsys):
    model_dir = save_untrained(str(tmp_path / "untrained"), "transformer")
    code, out, err = run_in_process(capsys, "probe", f"--model_dir={model_dir}",
                                    "--probe=icl_score", "--batches=4")
    assert code == 0, err
    assert abs(json.loads(out)["icl_score"]) < 0.05
    code, out, err = run_in_process(capsys, "probe", f"--model_dir={model_dir}",
                                    "--probe=induction_heads", "--batch_size=4")
    assert code == 0, err
    scores = np.array(json.loads(out)["prefix_matching"])
    assert scores.shape == (2, 2) and np.all(scores < 0.2)  # no head copies yet


def test_transformer_only_probe_on_an_lstm_is_a_usage_error(tmp_path, capsys):
    model_dir = save_untrained(str(tmp_path / "lstm"), "lstm")
    code, _, err = run_in_process(capsys, "probe", f"--model_dir={model_dir}",
                                  "--probe=induction_heads")
    assert_one_line_usage_error(code, err, "probe", "probe=induction_heads")
    assert "Transformer" in err and "lstm" in err


def test_unknown_probe_is_a_usage_error(tmp_path, capsys):
    model_dir = save_untrained(str(tmp_path / "m"), "lstm")
    code, _, err = run_in_process(capsys, "probe", f"--model_dir={model_dir}", "--probe=nope")
    # The library names the argument `probe`; the command line may spell it as
    # its flag (`--probe: ...`): this text is found in both.
    assert_one_line_usage_error(code, err, "probe", "probe: unknown probe 'nope'")


@pytest.mark.parametrize("kwargs, argument, message", [
    (dict(probe="nope"), "probe", "probe: unknown probe 'nope'; choose from per_position_loss"),
    (dict(probe="icl_score", batches=0), "batches", "batches must be >= 1, got 0"),
    (dict(probe="icl_score", batch_size=-1), "batch_size", "batch_size must be >= 1, got -1"),
])
def test_run_probe_usage_errors_name_their_argument(kwargs, argument, message, tmp_path):
    with pytest.raises(UsageError) as error:
        run_probe(str(tmp_path / "never_read"), **kwargs)
    assert error.value.argument == argument and str(error.value).startswith(message)
    assert "--" not in str(error.value)  # the command line spells flags, not the library


def test_transformer_only_probe_error_names_the_probe_argument(tmp_path):
    model_dir = save_untrained(str(tmp_path / "lstm"), "lstm")
    with pytest.raises(UsageError) as error:
        run_probe(model_dir, "induction_heads")
    assert error.value.argument == "probe"
    assert str(error.value).startswith("probe=induction_heads reads attention weights")
    assert "--" not in str(error.value)


@pytest.mark.parametrize("args, message", [
    (["--task=nope"], "--task: unknown task 'nope'"),
    (["--task=mqar", "--mqar_num_pairs=20", "--vocab_size=128"], "--mqar_num_pairs=20"),
    (["--task=mqar", "--vocab_size=32"], "--vocab_size=32: MQAR needs V > L"),
    (["--task=induction", "--epochs=1"], "--epochs=1.0: not used with task=induction"),
])
def test_train_task_bad_input_is_one_line(args, message, tmp_path, capsys):
    code, _, err = run_in_process(capsys, "train", "--recipe=tiny", "--sequence_length=32",
                                  f"--output_dir={tmp_path}", *args)
    assert_one_line_usage_error(code, err, "train", message)


def test_accuracy_counts_answer_positions_only():
    # Right on every non-answer position, wrong on the one answer: 0 accuracy.
    targets = np.array([[3, 4, 5, 6]])
    predictions = np.array([[3, 4, 0, 6]])
    groups = np.array([[0, 0, 1, 0]])
    scores = AnswerScores()
    scores.update(predictions, targets, groups, np.zeros((1, 4)))
    result = scores.result()
    assert result["token_accuracy"] == 0.0 and result["answer_tokens"] == 1


def test_eval_and_export_of_a_task_run_say_why_not(tmp_path, capsys):
    run = save_untrained(str(tmp_path / "run"), "lstm")
    code, _, err = run_in_process(capsys, "eval", f"--model_dir={run}")
    assert_one_line_usage_error(code, err, "eval", "trained on the synthetic task 'induction'")
    code, _, err = run_in_process(capsys, "export", f"--model_dir={run}")
    assert_one_line_usage_error(code, err, "export", "is a model trained on a synthetic task; "
                                                     "export (a synthetic-task run has an id "
                                                     "tokenizer")
