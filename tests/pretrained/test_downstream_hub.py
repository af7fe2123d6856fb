"""Commands downstream of `keras-lm import` on imported runs: a classifier head, explain,
serve (completions), probe; prune, which cannot apply, as one line. GPT-2 runs by default;
the other families are slow (the same code path, each costs a compile)."""

import json
import math
import os
import shutil

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
def test_probe_an_imported_run(pretrained_runs, probe, tmp_path, capsys):
    run = shutil.copytree(pretrained_runs["gpt2"], tmp_path / "gpt2")  # probe writes into it
    code, out, err = run_in_process(capsys, "probe", f"--model_dir={run}", f"--probe={probe}")
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


def test_qwen3_imports_with_endoftext_as_its_start_and_matches_keras_hub(tmp_path):
    """Qwen 3 end to end at the model level: no start token of its own (its <|endoftext|>
    takes <bos>'s place), keras-hub's logits through the per-layer steps, LoRA, chat format."""
    import keras_hub
    import numpy as np

    from keras_lm.adaptation.lora import enable_lora, target_layers
    from keras_lm.pretrained import import_preset
    from keras_lm.pretrained.chat_templates import FORMATS
    from keras_lm.pretrained.tiny_presets import write_tiny_preset

    preset = write_tiny_preset("qwen3", str(tmp_path))
    run = import_preset(preset, str(tmp_path / "run"))
    model, hub = keras_lm.load(run), keras_hub.models.CausalLM.from_preset(preset)
    tokenizer, hub_tokenizer = model.tokenizer, hub.preprocessor.tokenizer
    assert hub_tokenizer.start_token_id is None
    assert hub_tokenizer.id_to_token(tokenizer.bos_id) == "<|endoftext|>" == \
        hub_tokenizer.id_to_token(tokenizer.pad_id)
    assert hub_tokenizer.id_to_token(tokenizer.eos_id) == "<|im_end|>"  # scored: not the pad
    assert model.run_config["prompt_template"] == FORMATS["chatml"][0]
    ids = np.random.RandomState(0).randint(4, 280, (2, 12)).astype("int32")
    reference = np.asarray(hub.backbone.token_embedding(
        hub.backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)}), reverse=True))
    np.testing.assert_allclose(np.asarray(model(ids)), reference, atol=1e-5)
    state = model.initial_state(2, 16)
    logits, state = model.prefill(ids[:, :8], state)
    steps = [np.asarray(logits)]
    for position in range(8, 12):
        logits, state = model.decode(ids[:, position], state, position)
        steps.append(np.asarray(logits)[:, None])
    np.testing.assert_allclose(np.concatenate(steps, 1), reference, atol=1e-4)
    assert isinstance(model.generate("def the", 4), str)
    enable_lora(model, rank=2)
    assert len(target_layers(model)) == 7 * model.num_layers


@pytest.mark.parametrize("family,eos_scored", [("llama3", True), ("gemma3", True),
                                                ("gpt2", False)])
def test_the_pad_id_leaves_eos_scored_where_the_vocabulary_allows(hub_models, family,
                                                                  eos_scored):
    """The loss ignores the pad id: a pad distinct from <eos> (Gemma's <pad>, Llama 3's start
    token) lets a fine-tune learn to stop; GPT-2's one special token is all three."""
    model = hub_models[family][1]
    tokenizer = model.tokenizer
    assert model.pad_id == tokenizer.pad_id
    assert (tokenizer.pad_id != tokenizer.eos_id) == eos_scored
