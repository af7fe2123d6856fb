"""`keras_lm.Run`: a run directory's kind, and the same checks from Python as from the CLI."""

import json

import pytest

import keras_lm
from conftest import assert_one_line_usage_error, make_base, run_in_process
from keras_lm.errors import UsageError
from keras_lm.run import Run

KIND_CONFIGS = {
    "text": {},
    "pairs": {"finetune_kind": "pairs", "prompt_template": "Q: {prompt}\nA: "},
    "classifier": {"head": "classifier", "labels": ["a", "b"]},
    "task": {"task": "mqar"},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny untrained run directory per kind (only config.json differs)."""
    root = tmp_path_factory.mktemp("kinds")
    return {kind: make_base(root / kind, config) for kind, config in KIND_CONFIGS.items()}


def test_keras_lm_run_is_the_library_class_and_knows_each_kind(runs):
    assert keras_lm.Run is Run
    assert {kind: Run(path).kind for kind, path in runs.items()} == {k: k for k in KIND_CONFIGS}
    assert Run(runs["text"]).source is None


@pytest.mark.parametrize("kind, call, message", [
    ("text", lambda run: run.classify(["x"]), "classify needs a classifier run"),
    ("task", lambda run: run.export(), "export (a synthetic-task run"),
    ("classifier", lambda run: run.generate("x"), "generate needs a language model"),
    ("classifier", lambda run: run.export(formats=["litertlm"]),
     "formats: litertlm is for language models"),
    ("classifier", lambda run: run.export(data_files="x.txt"), "data_files: not used for a "
                                                                  "classifier run"),
    ("pairs", lambda run: run.prune("/tmp/never", 0.5), "prune (it measures importance"),
    ("text", lambda run: run.evaluate(data="rows.csv"), "data=rows.csv: labelled rows are for"),
    ("pairs", lambda run: run.evaluate(text_key="t"), "text_key=t: only used with data on "
                                                       "classifier runs"),
])
def test_a_kind_refuses_what_it_cannot_do_before_any_work(runs, kind, call, message):
    with pytest.raises(UsageError, match=None) as error:
        call(Run(runs[kind]))
    assert message in str(error.value)


@pytest.mark.parametrize("command, flags, message", [
    ("classify", ["--text=x"], "--model_dir: '{}' is a language model trained on text; "
                               "classify needs a classifier run"),
    ("export", [], "--model_dir: '{}' is a model trained on a synthetic task; export"),
    ("export", ["--format=litertlm"], "--format: litertlm is for language models"),
])
def test_the_cli_shows_the_same_checks_with_flags(capsys, runs, command, flags, message):
    kind = {"classify": "text", "export": "task"}[command]
    if "--format=litertlm" in flags:
        kind = "classifier"
    code, _, err = run_in_process(capsys, command, f"--model_dir={runs[kind]}", *flags)
    assert_one_line_usage_error(code, err, command, message.format(runs[kind]))


def test_a_missing_directory_or_model_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="^model_dir: .* is not a run directory"):
        Run(tmp_path / "nothing")
    with pytest.raises(UsageError, match="^model_dir: no model.keras in"):
        Run(tmp_path)


def test_evaluate_from_python_is_what_keras_lm_eval_prints(capsys, trained):
    output, _, _ = trained
    code, out, _ = run_in_process(capsys, "eval", f"--model_dir={output}")
    assert code == 0
    assert Run(output).evaluate() == pytest.approx(json.loads(out), rel=1e-6)


def test_serve_refuses_a_classifier_before_loading_it(capsys, runs):
    code, _, err = run_in_process(capsys, "serve", f"--model_dir={runs['classifier']}")
    assert_one_line_usage_error(code, err, "serve", "is a classifier; serve needs a language "
                                                    "model trained on text")
