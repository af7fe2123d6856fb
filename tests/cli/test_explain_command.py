"""`keras-lm explain`: the command over keras_lm.interpret (in-process, tiny saved runs)."""

import json
import os

import keras
import pytest
from conftest import assert_one_line_usage_error, run_in_process

from keras_lm.models import LSTMLM, TextClassifier, TransformerLM
from keras_lm.tokenizers import ByteTokenizer, CharTokenizer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three saved runs: a byte-level Transformer, a classifier on an LSTM, a char-level LM."""
    root = tmp_path_factory.mktemp("explain_cli")
    keras.utils.set_random_seed(0)
    byte = ByteTokenizer()
    chars = CharTokenizer(vocabulary=list("abcdefgh "))
    models = {
        "lm": (TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16,
                                         pad_id=256), byte),
        "classifier": (TextClassifier(LSTMLM.from_preset("tiny", vocabulary_size=259,
                                                         sequence_length=16, pad_id=256),
                                      labels=["cat", "dog"]), byte),
        "chars": (TransformerLM.from_preset("tiny", vocabulary_size=chars.vocabulary_size,
                                            sequence_length=16, pad_id=0), chars),
    }
    for name, (model, tokenizer) in models.items():
        (root / name).mkdir()
        model.save(str(root / name / "model.keras"))
        tokenizer.save(str(root / name / "tokenizer.json"))
    return root


def test_explain_prints_the_tokens_and_writes_the_page_png_and_logs(runs, capsys):
    code, out, err = run_in_process(capsys, "explain", f"--model_dir={runs / 'lm'}",
                                    "--prompt=the dog", "--target= ran", "--steps=8")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("target: ' ran'  log-probability -")
    assert "method: integrated_gradients" in lines[0]
    assert [line.split()[0] for line in lines[4:11]] == [repr(c) for c in "the"] + ["'", "'d'",
                                                                                     "'o'", "'g'"]
    assert sum("Spearman" in line for line in lines) == 3
    explanations = runs / "lm" / "explanations"  # the default --output_dir
    for name in ("explanation.html", "explanation.png", "explanation.json", "logs"):
        assert os.path.exists(explanations / name), name


def test_explain_json_and_a_classifier_label(runs, capsys, tmp_path):
    code, out, err = run_in_process(
        capsys, "explain", f"--model_dir={runs / 'classifier'}", "--prompt=woof woof",
        "--label=dog", "--method=occlusion", "--span=2", "--json", "--nocompare",
        f"--output_dir={tmp_path / 'out'}")
    assert code == 0, err
    result = json.loads(out)  # one JSON object
    assert result["kind"] == "label" and result["target"] == "dog"
    assert result["method"] == "occlusion" and result["details"] == {"span": 2}
    assert [t["token"] for t in result["tokens"]] == list("woof woof")
    assert result["agreement"] == {} and result["target_logp"] < 0
    assert result["files"]["html"] == str(tmp_path / "out" / "explanation.html")
    with open(result["files"]["json"]) as f:
        assert json.load(f)["tokens"] == result["tokens"]


@pytest.mark.parametrize("run, args, message", [
    ("lm", ["--prompt="], "--prompt: give the text to explain, got ''"),
    ("lm", [], "--prompt: give the text to explain, got none"),
    ("chars", ["--prompt=abc", "--target=xyz"], "--target: the tokenizer cannot encode 'xyz'"),
    ("lm", ["--prompt=the lazy dog", "--target=  jumps"], "exceed the model's context of 16"),
    ("lm", ["--prompt=abc", "--label=cat"], "--label: 'cat' needs a classifier"),
    ("classifier", ["--prompt=abc", "--label=eel"],
     "--label: 'eel' is not one of the classifier's labels (cat, dog)"),
    ("lm", ["--prompt=abc", "--method=shap"], "--method must be one of integrated_gradients"),
    ("lm", ["--prompt=abc", "--steps=0"], "--steps must be an integer in [1, 4096], got 0"),
    ("lm", ["--prompt=abc", "--steps=many"], "--steps"),
    ("lm", ["--prompt=abc", "--method=occlusion", "--span=4"],
     "--span must be an integer in [1, 3]"),
])
def test_bad_input_is_one_line_and_writes_nothing(runs, capsys, tmp_path, run, args, message):
    output = tmp_path / "out"
    code, out, err = run_in_process(capsys, "explain", f"--model_dir={runs / run}", *args,
                                    f"--output_dir={output}")
    assert_one_line_usage_error(code, err, "explain", message)
    assert not os.path.exists(output) and out == ""
