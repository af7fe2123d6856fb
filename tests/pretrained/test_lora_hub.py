"""LoRA on imported keras-hub models: each family's attention and MLP projections, merged
saves, adapter files, and a LoRA fine-tune on pairs that lowers the response loss and leaves
the base untouched."""

import hashlib
import json
import os

import numpy as np
import pytest
from conftest import run_captured

import keras_lm
from keras_lm.adaptation import enable_lora, load_adapters, read_adapters, save_adapters
from keras_lm.adaptation.lora import base_weights_digest, target_layers

# Projections per transformer layer: q, k, v, the attention output, the MLP's input(s)
# (Gemma 3 and Llama 3 gate theirs: two) and its output.
PROJECTIONS = {"gpt2": 6, "gemma3": 7, "llama3": 7}
IDS = np.random.RandomState(0).randint(4, 250, (2, 12)).astype("int32")


def outputs(model):
    return np.asarray(model(IDS))


@pytest.mark.parametrize("family", ["gpt2", pytest.param("gemma3", marks=pytest.mark.slow),
                                    pytest.param("llama3", marks=pytest.mark.slow)])
def test_lora_on_every_projection_merges_on_save_and_round_trips_as_adapters(
        pretrained_runs, family, tmp_path):
    import keras

    model = keras_lm.load(pretrained_runs[family])  # a fresh copy: LoRA changes it
    base, digest = outputs(model), base_weights_digest(model)
    info = enable_lora(model, rank=2, alpha=4.0)
    layers = target_layers(model)
    assert len(layers) == PROJECTIONS[family] * model.num_layers
    assert all(layer.lora_enabled and layer.lora_alpha == 4.0 for layer in layers.values())
    assert {w.path.rsplit("/", 1)[1] for w in model.trainable_weights} == {
        "lora_kernel_a", "lora_kernel_b"}
    assert info["trainable_parameters"] == sum(
        int(np.prod(layer.lora_kernel_a.shape)) + int(np.prod(layer.lora_kernel_b.shape))
        for layer in layers.values())
    np.testing.assert_allclose(outputs(model), base, atol=1e-6)  # B starts at zero
    rng = np.random.default_rng(1)
    for weight in model.weights:
        if "lora_kernel" in weight.path:
            weight.assign(rng.normal(0, 0.1, weight.shape).astype("float32"))
    adapted = outputs(model)
    assert np.abs(adapted - base).max() > 1e-2  # the adapters act
    # Saved, the updates are merged into the kernels: a plain model with the same outputs.
    model.save(tmp_path / "merged.keras")
    merged = keras.saving.load_model(tmp_path / "merged.keras")
    assert not any("lora" in w.path for w in merged.weights)
    np.testing.assert_allclose(outputs(merged), adapted, atol=1e-4)
    # The adapters alone, put back onto a fresh base, give the same model.
    save_adapters(model, tmp_path / "adapters.npz", digest)
    header, arrays = read_adapters(tmp_path / "adapters.npz")
    assert header["targets"] == ["qkv", "output", "mlp_in", "mlp_out"]
    assert header["model_config"]["architecture"] == family
    assert len(arrays) == 2 * len(layers)
    fresh = keras_lm.load(pretrained_runs[family])
    load_adapters(fresh, tmp_path / "adapters.npz")
    np.testing.assert_allclose(outputs(fresh), adapted, atol=1e-5)


def test_lora_targets_pick_projections_by_name(pretrained_runs):
    model = keras_lm.load(pretrained_runs["llama3"])
    names = sorted(name.split("/", 1)[1] for name in target_layers(model, ("mlp_in",)))
    assert names == ["mlp_in/feedforward_gate_dense"] * 2 + [
        "mlp_in/feedforward_intermediate_dense"] * 2


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_pairs(path, count=48):
    """Prompts whose answer is a fixed short suffix: learnable in a few steps."""
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({"prompt": f"def f{i}(x):", "response": " return x"}) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def lora_finetuned(pretrained_runs, tmp_path_factory):
    """`keras-lm finetune --lora_rank=4 --save_adapters` on the imported GPT-2 run."""
    root = tmp_path_factory.mktemp("lora_hub")
    base = pretrained_runs["gpt2"]
    before = file_digest(os.path.join(base, "model.keras"))
    output = str(root / "lora")
    result = run_captured("finetune", f"--model_dir={base}",
                          f"--data={write_pairs(root / 'pairs.jsonl')}", f"--output_dir={output}",
                          "--lora_rank=4", "--lora_alpha=8", "--save_adapters", "--steps=8",
                          "--eval_interval=8", "--batch_size=8", "--learning_rate=0.02")
    assert result.returncode == 0, result.stderr
    return {"base": base, "output": output, "base_file_digest": before, "stdout": result.stdout}


def test_lora_finetune_lowers_the_response_loss_and_leaves_the_base(lora_finetuned):
    with open(os.path.join(lora_finetuned["output"], "metrics.json")) as f:
        metrics = json.load(f)
    # Every response is " return x" (+ <eos>). The random tiny GPT-2's frozen, tied
    # embedding is small (logits within about +-0.3 after the final norm), so LoRA on the
    # layers can move the loss only a little: 5.68 -> 5.46 when this was written.
    assert metrics["val_loss"] < metrics["val_loss_before"] - 0.1, metrics
    assert "LoRA rank 4 (alpha 8) on qkv,output,mlp_in,mlp_out" in lora_finetuned["stdout"]
    # The base's file is byte for byte as it was.
    base_file = os.path.join(lora_finetuned["base"], "model.keras")
    assert file_digest(base_file) == lora_finetuned["base_file_digest"]
    with open(os.path.join(lora_finetuned["output"], "config.json")) as f:
        config = json.load(f)
    assert config["lora"]["trainable_parameters"] < config["lora"]["parameters"] / 4
    base = keras_lm.load(lora_finetuned["base"])
    assert config["base"]["weights_digest"] == base_weights_digest(base)
    # The merged model.keras and the base plus adapters.npz are the same model.
    tuned = keras_lm.load(lora_finetuned["output"])
    assert not any("lora" in w.path for w in tuned.weights)
    load_adapters(base, os.path.join(lora_finetuned["output"], "adapters.npz"))
    np.testing.assert_allclose(outputs(base), outputs(tuned), atol=1e-4)
