"""Recipes live in the library: `TrainConfig.from_recipe` / `FinetuneConfig.from_recipe` build
exactly what `keras-lm train` / `keras-lm finetune` build from the same flags; NaN settings and a
diverging run are refused or failed, never reported as a result."""

import math
import os

import numpy as np
import pytest

from conftest import TINY, assert_one_line_usage_error, run_in_process, write_corpus
from keras_lm.adaptation.config import FinetuneConfig
from keras_lm.cli import finetune_command, train_command
from keras_lm.errors import UsageError
from keras_lm.training import RECIPES, TrainConfig

# (flags, the same settings as Python arguments)
TRAIN_CASES = [
    ([], {}),
    (["--steps=50"], {"steps": 50}),
    (["--epochs=2"], {"epochs": 2.0}),
    (["--steps=50", "--train_minutes=1"], {"steps": 50, "train_minutes": 1.0}),
    (["--model=lstm"], {"model": "lstm"}),
    (["--model_args=num_layers=2"], {"model_args": {"num_layers": 2}}),
    (["--sequence_length=32"], {"sequence_length": 32}),
    (["--sequence_length=32", "--sample_tokens=8"], {"sequence_length": 32, "sample_tokens": 8}),
    (["--learning_rate=0.01", "--batch_size=4", "--tokenizer=char"],
     {"learning_rate": 0.01, "batch_size": 4, "tokenizer": "char"}),
    (["--task=mqar", "--mqar_num_pairs=4", "--vocab_size=64"],
     {"task": "mqar", "task_args": {"mqar_num_pairs": 4}, "vocabulary_size": 64}),
]


def flags_config(module, argv):
    module.FLAGS.unparse_flags()
    module.FLAGS(["keras-lm", *argv])
    try:
        return module.config_from_flags()
    finally:
        module.FLAGS.unparse_flags()


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("flags, given", TRAIN_CASES, ids=[" ".join(c[0]) or "none"
                                                           for c in TRAIN_CASES])
def test_the_cli_and_python_build_the_same_train_config(recipe, flags, given):
    from_flags = flags_config(train_command, [f"--recipe={recipe}", *flags])
    from_python = TrainConfig.from_recipe(recipe, **given)
    assert from_flags == from_python
    assert from_python.recipe == recipe


def test_the_recipe_rules_hold_in_python():
    quickstart = RECIPES["quickstart"]
    assert TrainConfig.from_recipe("quickstart").to_dict().items() >= quickstart.items()
    # Given steps turn the clock off; the recipe's model_args stay with its family.
    assert TrainConfig.from_recipe("quickstart", steps=5).train_minutes is None
    assert TrainConfig.from_recipe("quickstart", model="lstm").model_args == {}
    merged = TrainConfig.from_recipe("quickstart", model_args={"num_layers": 2}).model_args
    assert merged == {**quickstart["model_args"], "num_layers": 2}
    # A shorter context shortens the recipe's samples.
    assert TrainConfig.from_recipe("quickstart", sequence_length=32).sample_tokens == 31


def test_a_plain_config_records_no_recipe_and_keeps_plain_defaults():
    config = TrainConfig()
    assert config.recipe is None
    assert (config.batch_size, config.learning_rate) != (RECIPES["quickstart"]["batch_size"],
                                                         RECIPES["quickstart"]["learning_rate"])
    with pytest.raises(UsageError, match="recipe: unknown recipe 'fast'"):
        TrainConfig.from_recipe("fast")


FINETUNE_CASES = [
    ([], {}),
    (["--steps=20"], {"steps": 20}),
    (["--learning_rate=0.001", "--lora_rank=4"], {"learning_rate": 0.001, "lora_rank": 4}),
]


@pytest.mark.parametrize("recipe", [None, "docstring_to_code"])
@pytest.mark.parametrize("flags, given", FINETUNE_CASES)
def test_the_cli_and_python_build_the_same_finetune_config(recipe, flags, given):
    argv = ([f"--recipe={recipe}"] if recipe else []) + ["--output_dir=/tmp/x", *flags]
    from_flags = flags_config(finetune_command, argv)
    from_python = FinetuneConfig.from_recipe(recipe, output_dir="/tmp/x", **given)
    assert from_flags == from_python
    if recipe:
        assert from_python.pairs_corpus == "docstring_to_code"
        assert (from_python.train_minutes is None) == ("steps" in given)


def test_a_classifier_recipe_is_not_a_language_model_finetune():
    with pytest.raises(UsageError, match="recipe: 'classify_stdlib' trains a classifier head"):
        FinetuneConfig.from_recipe("classify_stdlib")


@pytest.mark.parametrize("name", ["learning_rate", "weight_decay", "clipnorm", "train_minutes",
                                  "validation_fraction", "temperature"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinite_settings_are_refused_before_any_work(name, value):
    with pytest.raises(UsageError, match=f"^{name} must be a finite number, got"):
        TrainConfig.from_recipe("tiny", **{name: value}).validate()


def test_learning_rate_nan_is_one_line_and_exit_2(capsys, tmp_path):
    code, _, err = run_in_process(capsys, "train", *TINY, "--learning_rate=nan",
                                  f"--output_dir={tmp_path / 'out'}")
    assert_one_line_usage_error(code, err, "train", "--learning_rate must be a finite number, "
                                                    "got nan")
    assert not (tmp_path / "out").exists()


def test_a_diverging_run_exits_1_naming_its_step_and_leaves_no_nan_model(capsys, tmp_path):
    """A huge learning rate: the loss becomes NaN within a few steps; the run fails with one
    line, and the checkpoint of its first evaluation stays the (finite) model on disk."""
    files = write_corpus(str(tmp_path / "corpus"), num_files=4)
    out = tmp_path / "out"
    code, _, err = run_in_process(
        capsys, "train", *TINY, "--nojit_compile", "--noattention_maps", "--noposition_loss",
        "--noembedding_projector", "--nohparams", "--nosamples", "--steps=40",
        "--eval_interval=2", "--warmup_steps=4", "--learning_rate=1e12",
        f"--train_files={','.join(files)}", f"--output_dir={out}")
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("keras-lm train: error: training diverged: "
                                                   "the loss became nan at step "), err
    step = int(lines[0].split(" at step ")[1].split(";")[0])
    assert 1 <= step <= 40 and "lower learning_rate (it is 1e+12)" in lines[0]
    assert not (out / "model.keras").exists()
    import keras

    import keras_lm  # noqa: F401  (registers the model classes)
    best = out / "checkpoints" / "best.keras"
    assert best.exists() and "the last good checkpoint is" in lines[0]
    weights = keras.saving.load_model(str(best)).get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    assert os.path.isdir(out / "backup")


def test_a_finetune_config_refuses_nan_before_reading_its_base():
    config = FinetuneConfig(base_dir="/no/such/base", data="pairs.jsonl", output_dir="/tmp/y",
                            learning_rate=math.nan)
    with pytest.raises(UsageError, match="^learning_rate must be a finite number, got nan"):
        config.check_settings()
