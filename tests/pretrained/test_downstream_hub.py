"""Commands downstream of `keras-lm import` on imported runs: a classifier head, explain,
serve (completions), probe; prune, which cannot apply, as one line. GPT-2 runs by default;
the other families are slow (the same code path, each costs a compile)."""

import json
import math
import os

import httpx
import pytest
from conftest import assert_one_line_usage_error, run_captured, run_in_process

import keras_lm
from keras_lm.serve import ServerThread

FAMILIES = ["gpt2", pytest.param("gemma3", marks=pytest.mark.slow),
            pytest.param("llama3", marks=pytest.mark.slow)]


def write_labels(path, count=40):
    with open(path, "w") as f:
        for i in range(count):
            text, label = ((f"def f{i}(x): return x", "code") if i % 2 else
                           (f"the cat sat on mat {i}", "prose"))
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    return str(path)


@pytest.mark.parametrize("family", FAMILIES)
def test_classifier_head_on_an_imported_run(pretrained_runs, family, tmp_path):
    output = str(tmp_path / "classifier")
    result = run_captured("finetune", "--head=classifier", f"--model_dir={pretrained_runs[family]}",
                          f"--data={write_labels(tmp_path / 'labels.jsonl')}",
                          f"--output_dir={output}", "--steps=4", "--batch_size=8")
    assert result.returncode == 0, result.stderr
    with open(os.path.join(output, "metrics.json")) as f:
        metrics = json.load(f)
    assert 0.0 <= metrics["val_accuracy"] <= 1.0
    labels = keras_lm.Run(output).classify(["def g(y): return y", "the dog sat"])
    assert len(labels) == 2 and all(row["label"] in ("code", "prose") for row in labels)


@pytest.mark.parametrize("family", FAMILIES)
def test_explain_an_imported_run(pretrained_runs, family, tmp_path, capsys):
    output = tmp_path / "explanation"
    code, out, err = run_in_process(capsys, "explain", f"--model_dir={pretrained_runs[family]}",
                                    "--prompt=def the", "--method=gradient_x_input",
                                    f"--output_dir={output}")
    assert code == 0, err
    with open(output / "explanation.json") as f:
        explanation = json.load(f)
    scores = [token["score"] for token in explanation["tokens"]]
    assert scores and all(math.isfinite(s) for s in scores) and any(s != 0 for s in scores)
    assert explanation["target_ids"] and math.isfinite(explanation["target_logp"])


@pytest.mark.parametrize("probe", ["per_position_loss", "icl_score"])
def test_probe_an_imported_run(pretrained_runs, probe, capsys):
    code, out, err = run_in_process(capsys, "probe", f"--model_dir={pretrained_runs['gpt2']}",
                                    f"--probe={probe}")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["probe"] == probe
    values = result["losses"] if probe == "per_position_loss" else [result["icl_score"]]
    assert values and all(math.isfinite(v) for v in values)


def test_serve_completions_from_an_imported_run(pretrained_runs):
    model = keras_lm.load(pretrained_runs["gpt2"])
    with ServerThread(model, model.tokenizer, max_batch_size=1, model_name="gpt2",
                      warm_up=False) as server:
        reply = httpx.post(server.url + "/v1/completions", timeout=120,
                           json={"prompt": "def the", "max_tokens": 6, "temperature": 0})
    assert reply.status_code == 200, reply.text
    # The run's template (GPT-2's plain "{prompt}\n") applied, as `generate` does.
    assert reply.json()["choices"][0]["text"] == model.generate("def the", 6)


def test_prune_of_an_imported_run_is_one_line(pretrained_runs, tmp_path, capsys):
    code, _, err = run_in_process(capsys, "prune", f"--model_dir={pretrained_runs['gpt2']}",
                                  f"--output_dir={tmp_path / 'pruned'}", "--sparsity=0.5")
    assert_one_line_usage_error(code, err, "prune", "HubCausalLM")
    assert not os.path.exists(tmp_path / "pruned")
