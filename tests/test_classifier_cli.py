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
        "--label_key=label", "--steps=4", "--batch_size=8")
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
    (["--data={labels}", "--lora_rank=4"], "LoRA is not supported for the classifier head"),
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
