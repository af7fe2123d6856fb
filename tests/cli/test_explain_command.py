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
                                    "--prompt=the dog", "--target= ran", "--steps=8",
                                    "--method=integrated_gradients")
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
    ("lm", ["--prompt=abc", "--method=anchors"], "--method must be one of integrated_gradients"),
    ("lm", ["--prompt=abc", "--compare=some"], "--compare=some: must be true, false or all"),
    ("lm", ["--prompt=abc", "--method=lime", "--samples=0"],
     "--samples must be an integer in [1, 1000000], got 0"),
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


@pytest.mark.parametrize("run, args", [("lm", ["--target= ran"]), ("classifier", ["--label=dog"])])
def test_shap_and_lime_with_compare_all_write_json_and_the_page(runs, capsys, tmp_path, run,
                                                                 args):
    code, out, err = run_in_process(
        capsys, "explain", f"--model_dir={runs / run}", "--prompt=the dog", *args,
        "--method=shap", "--compare=all", "--samples=45", "--seed=3", "--json",
        f"--output_dir={tmp_path}")
    assert code == 0, err
    result = json.loads(out)
    assert result["method"] == "shap" and len(result["agreement"]) == 10
    assert result["details"]["seed"] == 3 and result["details"]["samples"] == 45  # 3 permutations
    assert set(result["all_scores"]) == {"integrated_gradients", "gradient_x_input", "occlusion",
                                         "shap", "lime"}
    with open(result["files"]["html"], encoding="utf-8") as f:
        assert f.read().count('class="method-text"') == 5
    code, out, err = run_in_process(capsys, "explain", f"--model_dir={runs / run}",
                                    "--prompt=the dog", *args, "--method=lime", "--nocompare",
                                    f"--output_dir={tmp_path}")
    assert code == 0, err
    assert "method: lime" in out and "  seed: 0" in out and "  samples: 150" in out  # 10 * 15


def test_a_missing_package_is_one_line_exit_2(runs, capsys, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lime", None)  # `import lime` raises ImportError
    output = tmp_path / "out"
    code, out, err = run_in_process(capsys, "explain", f"--model_dir={runs / 'lm'}",
                                    "--prompt=abc", "--method=lime", f"--output_dir={output}")
    assert_one_line_usage_error(code, err, "explain", "--method: lime needs the 'lime' package, "
                                "which is not installed; install it with: pip install "
                                "'keras-lm[explain]'")
    assert not os.path.exists(output) and out == ""


def test_the_default_method_is_lime_or_integrated_gradients_without_it(runs, capsys, tmp_path,
                                                                     monkeypatch):
    import sys

    args = ("explain", f"--model_dir={runs / 'lm'}", "--prompt=ab", "--nocompare", "--json",
            f"--output_dir={tmp_path}")
    code, out, err = run_in_process(capsys, *args)
    assert code == 0 and json.loads(out)["method"] == "lime" and "note:" not in err
    monkeypatch.setitem(sys.modules, "lime", None)  # the explain extra not installed
    code, out, err = run_in_process(capsys, *args)
    assert code == 0 and json.loads(out)["method"] == "integrated_gradients"
    assert "note: the default method lime needs pip install 'keras-lm[explain]'" in err
