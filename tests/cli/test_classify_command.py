"""`keras-lm finetune --head=classifier`: the command over `finetune_classifier`."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import assert_one_line_usage_error, run_in_process

from keras_lm.models import TransformerLM
from keras_lm.tokenizers import ByteTokenizer


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier_cli")
    keras.utils.set_random_seed(0)
    (root / "base").mkdir()
    TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=32,
                              pad_id=256).save(str(root / "base" / "model.keras"))
    ByteTokenizer().save(str(root / "base" / "tokenizer.json"))
    rng = np.random.default_rng(0)
    words = {"cat": ["meow", "purr"], "dog": ["woof", "bark"]}
    with open(root / "labels.csv", "w") as f:
        f.write("text,label\n")
        for i in range(40):
            label = "cat" if i % 2 else "dog"
            f.write(f"{' '.join(rng.choice(words[label], 3))} {i},{label}\n")
    return root


def test_finetune_head_classifier_writes_a_classifier_run(base, capsys):
    out = base / "out"
    code, stdout, err = run_in_process(
        capsys, "finetune", "--head=classifier", f"--model_dir={base / 'base'}",
        f"--output_dir={out}", f"--data={base / 'labels.csv'}", "--text_key=text",
        "--label_key=label", "--steps=4", "--batch_size=8",
        "--nojit_compile")  # XLA's compile costs more than 4 steps
    assert code == 0, err
    with open(out / "config.json") as f:
        config = json.load(f)
    assert config["head"] == "classifier" and config["labels"] == ["cat", "dog"]
    assert config["validation"]["kind"] == "hash_10_percent"
    assert os.path.isfile(out / "validation.jsonl")
    code, stdout, err = run_in_process(capsys, "eval", f"--model_dir={out}")
    assert code == 0, err
    assert set(json.loads(stdout)) >= {"accuracy", "macro_f1", "per_class"}


@pytest.mark.parametrize("args, message", [
    ([], "--data: --head=classifier needs a labelled file"),
    (["--data={labels}", "--lora_rank=4", "--save_adapters"],
     "--save_adapters=True: adapter files are for language models (--head=lm) only"),
    (["--data={one}"], "one class ('cat')"),
    (["--data={labels}", "--val_data={unseen}"], "label 'horse' never appears"),
])
def test_finetune_head_classifier_bad_input_is_one_line(base, capsys, args, message):
    (base / "one.csv").write_text("text,label\na,cat\nb,cat\n")
    (base / "unseen.jsonl").write_text('{"text": "neigh", "label": "horse"}\n')
    paths = {"labels": base / "labels.csv", "one": base / "one.csv",
             "unseen": base / "unseen.jsonl"}
    out = base / "bad_out"
    code, _, err = run_in_process(
        capsys, "finetune", "--head=classifier", f"--model_dir={base / 'base'}",
        f"--output_dir={out}", *[a.format(**paths) for a in args])
    assert_one_line_usage_error(code, err, "finetune", message)
    assert not out.exists()


# --- the recipe: --recipe=classify_stdlib is a classifier run with its settings ---------


@pytest.fixture(scope="module")
def base64(base):
    """A tiny base with a 64-token context: the recipe's inputs are up to 48 tokens."""
    keras.utils.set_random_seed(0)
    (base / "base64").mkdir()
    TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=64,
                              pad_id=256).save(str(base / "base64" / "model.keras"))
    ByteTokenizer().save(str(base / "base64" / "tokenizer.json"))
    return base / "base64"


def test_the_classify_stdlib_recipe_reaches_finetune_classifier(base64, capsys):
    from keras_lm.adaptation.stdlib_labels import CLASSES, CLASSIFY_STDLIB

    out = base64.parent / "recipe_out"
    code, _, err = run_in_process(
        capsys, "finetune", "--recipe=classify_stdlib", f"--model_dir={base64}",
        f"--output_dir={out}", "--steps=1", "--batch_size=8", "--verbose=0",
        "--nojit_compile")  # XLA's compile costs more than the step
    assert code == 0, err
    with open(out / "config.json") as f:
        config = json.load(f)
    # The recipe's settings...
    assert config["head"] == "classifier" and config["recipe"] == "classify_stdlib"
    assert config["data"] == "builtin:classify_stdlib" and config["labels"] == sorted(CLASSES)
    for name in ("pooling", "max_length", "dropout", "learning_rate", "text_key", "label_key"):
        assert config[name] == CLASSIFY_STDLIB[name], name
    assert config["validation"]["kind"] == "hash_10_percent"
    # ... and the flags given over them.
    assert config["steps"] == 1 and config["batch_size"] == 8
    with open(out / "metrics.json") as f:
        assert json.load(f)["steps"] == 1


@pytest.mark.parametrize("args, message", [
    (["--recipe=docstring_to_code", "--head=classifier"],
     "--head=classifier: --recipe=docstring_to_code trains a lm head"),
    (["--recipe=classify_stdlib", "--head=lm"],
     "--head=lm: --recipe=classify_stdlib trains a classifier head"),
    (["--recipe=classify_stdlib", "--template=Q {prompt}"],
     "--template=Q {prompt}: not used with --head=classifier"),
    (["--recipe=classify_stdlib", "--train_minutes=1"],
     "--train_minutes=1.0: not used with --head=classifier"),
    (["--recipe=classify_stdlib", "--max_length=100"],
     "--max_length must be at most the base's context (64 tokens), got 100"),
    (["--recipe=classify_stdlib", "--max_length=1"], "--max_length must be at least 2, got 1"),
    (["--recipe=docstring_to_code", "--max_length=32"],
     "--max_length=32: only used with --head=classifier"),
    (["--recipe=classify_stdlib", "--tokenizer=char"],
     "--tokenizer=char: fine-tuning uses the base model's tokenizer"),
])
def test_recipe_bad_input_is_one_line(base64, capsys, args, message):
    out = base64.parent / "bad_recipe_out"
    code, _, err = run_in_process(capsys, "finetune", f"--model_dir={base64}",
                                  f"--output_dir={out}", *args)
    assert_one_line_usage_error(code, err, "finetune", message)
    assert not out.exists()


@pytest.mark.slow
def test_the_classify_stdlib_recipe_as_written_learns_the_labels(tmp_path, capsys):
    """The whole recipe (300 steps of 32, its data and settings) on a briefly trained base."""
    base = tmp_path / "base"
    code, _, err = run_in_process(capsys, "train", "--recipe=tiny", "--sequence_length=64",
                                  "--steps=4", "--eval_interval=2", "--val_steps=1",
                                  "--verbose=0", "--nosamples", f"--output_dir={base}")
    assert code == 0, err
    out = tmp_path / "classify_stdlib"
    code, stdout, err = run_in_process(capsys, "finetune", "--recipe=classify_stdlib",
                                       f"--model_dir={base}", f"--output_dir={out}")
    assert code == 0, err
    with open(out / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["steps"] == 300 and metrics["val_examples"] > 100
    # Five balanced classes: chance is 0.2; the names carry their package.
    assert metrics["val_accuracy"] > 0.3, metrics
    assert "validation accuracy" in stdout
