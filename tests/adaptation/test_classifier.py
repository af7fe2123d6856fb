"""finetune_classifier and what reads its run: eval, classify, export; the bad inputs.

One tiny base (an untrained Transformer saved as a run) and one short
fine-tuning run per module; the commands run in this process.
"""

import csv
import hashlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import assert_one_line_usage_error, run_in_process

from keras_lm.adaptation.classifier import finetune_classifier, labeled_split
from keras_lm.adaptation.classifier_config import ClassifierConfig
from keras_lm.adaptation.classifier_run import classify_texts
from keras_lm.adaptation.labeled_data import read_rows, split_rows
from keras_lm.adaptation.lora import enable_lora
from keras_lm.errors import UsageError
from keras_lm.export.classifier_export import MIN_QUANTIZED_LABEL_AGREEMENT
from keras_lm.models import LSTMLM, TextClassifier, TransformerLM
from keras_lm.tokenizers import ByteTokenizer

WORDS = {"cat": ["meow", "purr", "whiskers"], "dog": ["woof", "bark", "fetch"],
         "cow": ["moo", "grass", "milk"]}


def write_labels(path, count=90, seed=0, labels=("cat", "dog", "cow")):
    """A JSONL label file of `count` rows, each three words of its label."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            label = labels[i % len(labels)]
            text = " ".join(rng.choice(WORDS[label], 3))
            f.write(json.dumps({"text": f"{text} {i}", "label": label}) + "\n")
    return str(path)


def tree_digest(directory):
    """SHA-256 over every file's path and bytes under `directory`."""
    digest = hashlib.sha256()
    for root, _, names in sorted(os.walk(directory)):
        for name in sorted(names):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, directory).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    keras.utils.set_random_seed(0)
    TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=32,
                              pad_id=256).save(str(root / "model.keras"))
    ByteTokenizer().save(str(root / "tokenizer.json"))
    return str(root)


class Interrupted(Exception):
    """A crash in the middle of a run (raised by `InterruptAfter`)."""


class InterruptAfter(keras.callbacks.Callback):
    """Raises `Interrupted` at the end of evaluation interval `epochs` (1-based), before the
    backup of that interval is written (the run's callbacks put the backup last)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise Interrupted


class CountSteps(keras.callbacks.Callback):
    steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


@pytest.fixture(scope="module")
def run(base, tmp_path_factory):
    """A classifier run: 30 steps without XLA on 90 rows of three easy classes."""
    root = tmp_path_factory.mktemp("classifier")
    data = write_labels(root / "labels.jsonl")
    before = tree_digest(base)
    metrics = finetune_classifier(ClassifierConfig(
        base_dir=base, output_dir=str(root / "out"), data=data, steps=30, batch_size=16,
        learning_rate=5e-3, verbose=0, jit_compile=False))
    assert tree_digest(base) == before  # the base is only read
    return str(root / "out"), data, metrics


def test_an_interrupted_run_resumes_from_its_backup_to_the_same_step_count(base, tmp_path,
                                                                           capsys):
    out = tmp_path / "out"
    settings = dict(base_dir=base, output_dir=str(out), steps=8, eval_interval=2,
                    batch_size=8, data=write_labels(tmp_path / "labels.jsonl", count=30),
                    verbose=2, jit_compile=False, hparams=False)
    with pytest.raises(Interrupted):
        finetune_classifier(ClassifierConfig(**settings), callbacks=[InterruptAfter(3)])
    # Interrupted in its third interval of 2 steps: two backed up (Keras records the
    # epochs done), no model written.
    with open(out / "backup" / "training_metadata.json") as f:
        assert json.load(f)["epoch"] == 2
    assert not {"model.keras", "metrics.json"} & set(os.listdir(out))
    capsys.readouterr()
    counted = CountSteps()
    metrics = finetune_classifier(ClassifierConfig(**settings), callbacks=[counted])
    printed = capsys.readouterr().out
    assert f"resuming from the backup in {out / 'backup'}" in printed
    assert counted.steps == 8 - 2 * 2  # on from step 4, not from 0
    assert metrics["steps"] == 8  # the optimizer's step count was restored too
    assert [line.split()[1] for line in printed.splitlines()
            if line.startswith("step ")] == ["6", "8"]
    with open(out / "metrics.json") as f:
        assert json.load(f)["steps"] == 8
    assert (out / "model.keras").is_file()


def test_the_run_directory_records_base_labels_and_validation(run, base):
    out, data, metrics = run
    assert {"model.keras", "tokenizer.json", "config.json", "validation.jsonl", "metrics.json",
            "confusion_matrix.png", "logs"} <= set(os.listdir(out))
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    assert config["head"] == "classifier" and config["labels"] == ["cat", "cow", "dog"]
    assert config["base_model_dir"] == os.path.abspath(base)
    assert config["validation"]["kind"] == "hash_10_percent"
    assert config["data"] == os.path.abspath(data)
    # The settings as resolved: the base's context, the classifier's defaults, the steps given.
    assert (config["max_length"], config["pooling"], config["dropout"]) == (32, "last", 0.1)
    assert (config["steps"], config["eval_interval"], config["warmup_steps"]) == (30, 6, 3)
    assert config["model"] == "transformer" and "prompt_key" not in config
    # The kept validation rows are exactly the hash split's.
    _, expected = split_rows(read_rows(data))
    kept = read_rows(os.path.join(out, "validation.jsonl"))
    assert [(r.text, r.label) for r in kept] == [(r.text, r.label) for r in expected]
    assert metrics["val_examples"] == len(expected) and metrics["steps"] == 30
    # The words give the class away: 30 steps learn it.
    assert metrics["val_accuracy"] >= 0.9, metrics


def test_eval_reports_accuracy_f1_per_class_and_a_confusion_matrix(run, capsys, tmp_path):
    out, _, metrics = run
    os.remove(os.path.join(out, "confusion_matrix.png"))
    code, stdout, err = run_in_process(capsys, "eval", f"--model_dir={out}")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["data"] == "validation"
    assert report["accuracy"] == pytest.approx(metrics["val_accuracy"], abs=1e-9)
    assert set(report["per_class"]) == {"cat", "cow", "dog"}
    assert {"precision", "recall"} <= set(report["per_class"]["cat"])
    assert 0 <= report["macro_f1"] <= 1 and report["examples"] == metrics["val_examples"]
    with open(report["confusion_matrix_png"], "rb") as f:
        assert f.read(4) == b"\x89PNG"
    assert any(name.startswith("events") for name in os.listdir(os.path.join(out, "logs", "eval")))
    # On data given: every row, with its own counts.
    other = write_labels(tmp_path / "other.jsonl", count=12, seed=5)
    code, stdout, err = run_in_process(capsys, "eval", f"--model_dir={out}", f"--data={other}")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["examples"] == 12 and sum(map(sum, report["confusion_matrix"])) == 12


def test_classify_prints_the_label_and_the_probabilities(run, capsys, tmp_path):
    out, _, _ = run
    path = tmp_path / "note.txt"
    path.write_text("woof bark fetch", encoding="utf-8")
    code, stdout, err = run_in_process(capsys, "classify", f"--model_dir={out}",
                                       "--text=meow purr whiskers", f"--files={path}")
    assert code == 0, err
    first, second = (json.loads(line) for line in stdout.strip().splitlines())
    assert first["text"] == "meow purr whiskers" and second["file"] == str(path)
    assert (first["label"], second["label"]) == ("cat", "dog")
    assert sum(first["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert max(first["probabilities"], key=first["probabilities"].get) == "cat"


@pytest.mark.slow  # the stop itself is run_callbacks', tested by default on text runs
def test_a_diverging_run_stops_naming_its_step_and_writes_no_model(base, tmp_path):
    from keras_lm.errors import TrainingDiverged

    out = tmp_path / "out"
    config = ClassifierConfig(base_dir=base, output_dir=str(out), steps=6, eval_interval=6,
                              batch_size=8, learning_rate=1e12, warmup_steps=0,
                              data=write_labels(tmp_path / "labels.jsonl", count=30),
                              verbose=0, jit_compile=False, hparams=False)
    with pytest.raises(TrainingDiverged, match=r"^training diverged: the loss became "
                                               r"(nan|inf) at step \d"):
        finetune_classifier(config)
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()


TEXTS = ["meow purr whiskers", "moo grass milk", "woof", ""]

# Runs in a fresh interpreter: only TensorFlow is imported.
SERVE = """
import json, sys
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
out = served.signatures["serving_default"](texts=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"labels": [t.decode() for t in out["label"].numpy()],
                  "probabilities": out["probabilities"].numpy().tolist(),
                  "keras_lm_imported": any(m.startswith("keras_lm") for m in sys.modules)}))
"""


@pytest.mark.slow  # ~15 s of conversion; the LM exports run by default (test_export_cli)
def test_export_verified_and_the_tflite_file_run_by_litert(run, capsys):
    out, _, _ = run
    # The SavedModel half is the slow test below (it costs as much again).
    code, stdout, err = run_in_process(capsys, "export", f"--model_dir={out}", "--format=tflite",
                                       "--quantize=none,int8", "--verify")
    assert code == 0, err
    assert "model_float32.tflite" in stdout and "model_int8.tflite" in stdout
    with open(os.path.join(out, "tflite", "metadata.json")) as f:
        metadata = json.load(f)
    assert metadata["labels"] == ["cat", "cow", "dog"] and metadata["failures"] == []
    assert metadata["signatures"]["classify"]["outputs"][0]["shape"] == [1, 3]
    assert metadata["files"]["float32"]["parity"]["max_abs_probability_diff"] <= 1e-4
    # int8: calibrated on the training rows, its choice and figures recorded.
    int8 = metadata["files"]["int8"]
    assert int8["parity"]["label_agreement"] >= MIN_QUANTIZED_LABEL_AGREEMENT
    assert int8["calibration"]["source"].startswith("training rows of ")
    assert int8["calibration"]["texts"] == 90 - metadata_validation_rows(out)
    full = int8["int8_label_agreement"]["full"]
    if int8["int8_mode"] == "full":
        assert full >= MIN_QUANTIZED_LABEL_AGREEMENT and int8["int8_fallback_reason"] is None
    else:  # full int8 fell short on the calibration texts; the matmuls-only file agreed more
        assert int8["int8_mode"] == "matmuls" and "full int8" in int8["int8_fallback_reason"]
        assert full < MIN_QUANTIZED_LABEL_AGREEMENT < int8["int8_label_agreement"]["matmuls"]
    assert int8["size_bytes"] < 0.6 * metadata["files"]["float32"]["size_bytes"]
    assert "QUANTIZE" in int8["operators"]  # float activations into int8 operators

    # The .tflite file by the LiteRT interpreter, fed as an app feeds it.
    from ai_edge_litert.interpreter import Interpreter

    from keras_lm.export import JsonTokenizer
    from keras_lm.export.classifier_export import app_input_ids

    classifier = keras.models.load_model(os.path.join(out, "model.keras"))
    expected = classifier.predict_proba(TEXTS, ByteTokenizer())
    interpreter = Interpreter(model_path=os.path.join(out, "tflite", "model_float32.tflite"))
    runner = interpreter.get_signature_runner("classify")
    tokenizer = JsonTokenizer.load(os.path.join(out, "tflite", "tokenizer.json"))
    int8_runner = Interpreter(model_path=os.path.join(out, "tflite", "model_int8.tflite")
                              ).get_signature_runner("classify")
    for text, probabilities in zip(TEXTS, expected):
        ids = app_input_ids(tokenizer, text, metadata["sequence_length"])
        np.testing.assert_allclose(runner(token_ids=ids)["probabilities"][0], probabilities,
                                   atol=1e-4)
        quantized = int8_runner(token_ids=ids)["probabilities"][0]
        assert quantized.argmax() == probabilities.argmax(), (text, quantized, probabilities)
        np.testing.assert_allclose(quantized, probabilities, atol=0.05)


def metadata_validation_rows(out):
    with open(os.path.join(out, "config.json")) as f:
        return json.load(f)["validation"]["rows"]


@pytest.mark.slow
def test_exported_saved_model_verified_and_run_in_a_fresh_process(run, capsys):
    out, _, _ = run
    code, stdout, err = run_in_process(capsys, "export", f"--model_dir={out}",
                                       "--format=saved_model", "--verify")
    assert code == 0, err
    assert "saved_model/" in stdout
    classifier = keras.models.load_model(os.path.join(out, "model.keras"))
    expected = classifier.predict_proba(TEXTS, ByteTokenizer())
    served = subprocess.run(
        [sys.executable, "-c", SERVE, os.path.join(out, "saved_model"), json.dumps(TEXTS)],
        capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-2000:]
    result = json.loads(served.stdout.strip().splitlines()[-1])
    assert not result["keras_lm_imported"]
    np.testing.assert_allclose(result["probabilities"], expected, atol=1e-4)
    assert result["labels"] == [classifier.labels[i] for i in expected.argmax(-1)]


# --- bad input: one line naming the argument, nothing written ---------------------------

def _rows_file(path, lines):
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("one_class", "data: one class ('cat') in 20 rows: a classifier needs at least two labels"),
    ("unseen_val_label", "val_data: line 2: label 'horse' never appears in the training data"),
    ("malformed", "line 3 of '{tmp}/bad.jsonl' is not valid JSON"),
    ("missing_key", "line 2 has no 'label' (the label_key)"),
    ("no_data", "data: a classifier needs labelled texts"),
    ("same_dir", "is the base model's directory; fine-tuning never changes its base"),
    ("lora_alpha_alone", "lora_alpha=8: only used with lora_rank"),
    ("lora_on_lstm", "lora_rank=4: LoRA needs Dense layers"),
    ("csv_missing_column", "line 2 has no 'label' (the label_key); it has 'text', 'tag'"),
])
def test_bad_input_is_one_usage_error_and_nothing_is_written(base, tmp_path, case, message):
    good = write_labels(tmp_path / "good.jsonl", count=30)
    kwargs = {}
    data = good
    if case == "one_class":
        data = write_labels(tmp_path / "one.jsonl", count=20, labels=("cat",))
    elif case == "unseen_val_label":
        kwargs["val_data"] = _rows_file(tmp_path / "val.jsonl", [
            '{"text": "meow", "label": "cat"}\n', '{"text": "neigh", "label": "horse"}\n'])
    elif case == "malformed":
        data = _rows_file(tmp_path / "bad.jsonl", ['{"text": "a", "label": "x"}\n',
                                                   '{"text": "b", "label": "y"}\n', '{"text": \n'])
    elif case == "missing_key":
        data = _rows_file(tmp_path / "bad.jsonl", ['{"text": "a", "label": "x"}\n',
                                                   '{"text": "b", "tag": "y"}\n'])
    elif case == "no_data":
        data = None
    elif case == "lora_alpha_alone":
        kwargs["lora_alpha"] = 8
    elif case == "lora_on_lstm":
        kwargs["lora_rank"] = 4
    elif case == "csv_missing_column":
        path = tmp_path / "bad.csv"
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([["text", "tag"], ["a", "x"]])
        data = str(path)
    out = base if case == "same_dir" else str(tmp_path / "out")
    base_dir = base
    if case == "lora_on_lstm":
        base_dir = str(tmp_path / "lstm")
        os.makedirs(base_dir)
        LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=32,
                           pad_id=256).save(os.path.join(base_dir, "model.keras"))
        ByteTokenizer().save(os.path.join(base_dir, "tokenizer.json"))
    before = tree_digest(base)
    with pytest.raises(UsageError) as error:
        finetune_classifier(ClassifierConfig(base_dir=base_dir, output_dir=out, data=data,
                                             steps=2, verbose=0, **kwargs))
    assert message.format(tmp=tmp_path) in str(error.value)
    assert "\n" not in str(error.value)
    assert not os.path.exists(tmp_path / "out") and tree_digest(base) == before


def test_commands_reject_the_wrong_kind_of_run_in_one_line(run, base, capsys, tmp_path):
    out, _, _ = run
    code, _, err = run_in_process(capsys, "classify", f"--model_dir={base}", "--text=x")
    assert_one_line_usage_error(code, err, "classify", "--model_dir: ")
    assert "language model" in err and "classifier" in err
    code, _, err = run_in_process(capsys, "classify", f"--model_dir={out}")
    assert_one_line_usage_error(code, err, "classify", "--text: give --text")
    unseen = _rows_file(tmp_path / "unseen.jsonl", ['{"text": "neigh", "label": "horse"}\n'])
    code, _, err = run_in_process(capsys, "eval", f"--model_dir={out}", f"--data={unseen}")
    assert_one_line_usage_error(code, err, "eval", "--data: line 1: label 'horse' never appears")
    before = tree_digest(out)
    code, _, err = run_in_process(capsys, "export", f"--model_dir={out}", "--quantize=int8,int4")
    assert_one_line_usage_error(code, err, "export", "--quantize must be some of none, fp16, "
                                "dynamic_int8, int8 for a classifier, got int8, int4")
    assert tree_digest(out) == before


def test_validation_split_is_deterministic_and_every_label_trains(tmp_path):
    rows = [(f"text {i}", "ab"[i % 2]) for i in range(200)] + [("rare", "c"), ("rare 2", "c")]
    train, val, labels, validation = labeled_split(rows)
    again = labeled_split(list(reversed(rows)))
    assert sorted(r.text for r in val) == sorted(r.text for r in again[1])
    assert 10 <= len(val) <= 30 and labels == ["a", "b", "c"]
    assert {r.label for r in val} <= {r.label for r in train}
    assert validation["kind"] == "hash_10_percent"



# --- LoRA: adapters on the backbone, the new head trained fully, merged when saved -------


def lora_sizes(backbone, rank, targets):
    """What LoRA of `rank` on `targets` adds to a TransformerLM: A and B of each target."""
    hidden, inner = backbone.hidden_dim, backbone.intermediate_dim
    shapes = {"qkv": (hidden, 3 * hidden), "output": (hidden, hidden),
              "mlp_in": (hidden, inner), "mlp_out": (inner, hidden)}
    return backbone.num_layers * sum(rank * sum(shapes[t]) for t in targets)


def test_lora_classifier_trains_adapters_and_head_only_and_its_run_classifies(
        base, capsys, tmp_path):
    # Through the command: 8 steps, rank 4 on qkv and mlp_out.
    out, data = str(tmp_path / "out"), write_labels(tmp_path / "labels.jsonl")
    code, stdout, err = run_in_process(
        capsys, "finetune", "--head=classifier", f"--model_dir={base}", f"--output_dir={out}",
        f"--data={data}", "--lora_rank=4", "--lora_alpha=8", "--lora_targets=qkv,mlp_out",
        "--steps=8", "--batch_size=16", "--learning_rate=5e-3", "--nojit_compile")
    assert code == 0, err
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    base_model = keras.models.load_model(os.path.join(base, "model.keras"))
    head = base_model.hidden_dim * 3 + 3  # the new head's kernel and bias, three labels
    expected = lora_sizes(base_model, 4, ("qkv", "mlp_out")) + head
    assert config["trainable_parameters"] == expected
    assert config["lora"]["rank"] == 4 and config["lora"]["targets"] == ["qkv", "mlp_out"]
    assert f"{expected:,} trainable of {config['num_parameters']:,} parameters" in stdout
    # model.keras: adapters merged into the targets' kernels; every other backbone
    # weight exactly the base's (frozen).
    classifier = keras.models.load_model(os.path.join(out, "model.keras"))
    assert not any("lora" in w.path for w in classifier.weights)
    assert config["num_parameters"] == classifier.count_params()
    merged = {"qkv", "mlp_out"}
    changed = set()
    for trained, original in zip(classifier.backbone.weights, base_model.weights):
        if not np.array_equal(trained.numpy(), original.numpy()):
            changed.add(trained.path.split("/")[-2])
    assert changed == merged, changed
    (result,) = classify_texts(classifier, ["moo"], ByteTokenizer())
    assert result["label"] in {"cat", "cow", "dog"}
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-4)


def test_lora_classifier_merged_matches_unmerged(base, tmp_path):
    keras.utils.set_random_seed(0)
    backbone = keras.models.load_model(os.path.join(base, "model.keras"))
    classifier = TextClassifier(backbone, ["cat", "cow", "dog"])
    info = enable_lora(classifier.backbone, rank=2, alpha=4.0)
    # Only the adapters and the head train.
    head = backbone.hidden_dim * 3 + 3
    assert sum(int(np.prod(w.shape)) for w in classifier.trainable_weights) == (
        lora_sizes(backbone, 2, ("qkv", "output", "mlp_in", "mlp_out")) + head)
    assert info["trainable_parameters"] + head == sum(
        int(np.prod(w.shape)) for w in classifier.trainable_weights)
    rng = np.random.default_rng(1)  # as after training: B no longer zero
    for weight in classifier.weights:
        if "lora_kernel" in weight.path:
            weight.assign(rng.normal(0, 0.05, weight.shape).astype("float32"))
    texts = ["meow purr", "moo grass milk", "woof", ""]
    unmerged = classifier.predict_proba(texts, ByteTokenizer())
    path = str(tmp_path / "merged.keras")
    classifier.save(path)
    loaded = keras.models.load_model(path)
    assert not any("lora" in w.path for w in loaded.weights)
    merged = loaded.predict_proba(texts, ByteTokenizer())
    np.testing.assert_allclose(merged, unmerged, atol=1e-5, rtol=0)
    # The adapters act: without them the probabilities differ.
    plain = TextClassifier(keras.models.load_model(os.path.join(base, "model.keras")),
                           ["cat", "cow", "dog"])
    plain.head.set_weights(classifier.head.get_weights())
    assert np.abs(plain.predict_proba(texts, ByteTokenizer()) - unmerged).max() > 1e-3


# --- ClassifierConfig: the recipe, the settings a classifier refuses, config.json -------


def test_classifier_config_from_the_recipe_and_the_settings_given():
    from keras_lm.adaptation.stdlib_labels import CLASSIFY_STDLIB

    config = ClassifierConfig.from_recipe("classify_stdlib", steps=40, max_length=24)
    assert config.recipe == "classify_stdlib" and (config.steps, config.max_length) == (40, 24)
    for name in ("pooling", "learning_rate", "batch_size", "data", "base_dir", "dropout"):
        assert getattr(config, name) == CLASSIFY_STDLIB[name], name
    with pytest.raises(UsageError, match="recipe: 'docstring_to_code' trains a lm head, not a "
                                         "classifier"):
        ClassifierConfig.from_recipe("docstring_to_code")
    # The defaults of its own: 4 passes of the rows (at least 20 steps), 10% warm-up,
    # five evaluations.
    config = ClassifierConfig(data="x.csv", output_dir="out")
    config.resolve_length(train_rows=1000)
    assert (config.steps, config.warmup_steps, config.eval_interval) == (125, 12, 25)
    config = ClassifierConfig(data="x.csv", output_dir="out")
    config.resolve_length(train_rows=10)
    assert (config.steps, config.warmup_steps, config.eval_interval) == (20, 2, 4)


@pytest.mark.parametrize("setting, message", [
    (dict(template="Q: {prompt}"), "template=Q: {prompt}: not used by a classifier"),
    (dict(train_files="notes.txt"), "train_files=notes.txt: not used by a classifier"),
    (dict(attention_maps=True), "attention_maps=True: not used by a classifier"),
    (dict(pooling="max"), "pooling must be one of last, mean, got 'max'"),
    (dict(steps=0), "steps must be a positive integer, got 0"),
    (dict(batch_size=2.5), "batch_size must be a positive integer, got 2.5"),
    (dict(learning_rate=float("nan")), "learning_rate must be > 0, got nan"),
    (dict(tokenizer="char"), "tokenizer=char: fine-tuning uses the base model's tokenizer"),
    (dict(data=[]), "data: a classifier needs labelled texts"),
])
def test_classifier_config_refuses_a_bad_setting_in_one_line(setting, message):
    config = ClassifierConfig(**{"data": "labels.csv", "output_dir": "out", **setting})
    with pytest.raises(UsageError) as error:
        config.check_settings()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_classifier_config_records_rows_given_in_python_as_none_and_no_pair_settings():
    rows = [("purr", "cat"), ("woof", "dog")]
    recorded = ClassifierConfig(data=rows, val_data="classify_stdlib", output_dir="o").to_dict()
    assert recorded["data"] is None and recorded["val_data"] == "builtin:classify_stdlib"
    assert not {"template", "prompt_key", "pairs_corpus", "samples"} & set(recorded)
    json.dumps(recorded)  # config.json takes it as it is
