"""HubCausalLM: keras-hub's forward pass, the per-layer step API, generation and scoring."""

import math

import numpy as np
import pytest


FAMILIES = ("gpt2", "gemma3", "llama3")
PROMPTS = ["def the", "import json\nclass Foo:\n    "]


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_and_cached_steps_equal_keras_hub_logits(hub_models, family):
    hub, model = hub_models[family]
    ids = np.random.RandomState(0).randint(4, model.vocabulary_size, (2, 20)).astype("int32")
    reference = hub.backbone.token_embedding(
        hub.backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)}), reverse=True)
    np.testing.assert_allclose(model(ids), reference, atol=1e-5)
    # Prefill 12 tokens, then decode 8 one by one: 20 positions, past Gemma 3's window of 8.
    state = model.initial_state(2, 32)
    assert len(state) == 2 * model.num_layers  # one key and one value per layer
    logits, state = model.prefill(ids[:, :12], state)
    steps = [logits]
    for position in range(12, 20):
        logits, state = model.decode(ids[:, position], state, position)
        steps.append(logits[:, None])
    np.testing.assert_allclose(np.concatenate(steps, 1), reference, atol=1e-4)


# Llama 3 is slow only for time: its layers are GPT-2's way of taking a cache.
@pytest.mark.parametrize("family", ["gpt2", "gemma3", pytest.param("llama3", marks=pytest.mark.slow)])
def test_greedy_text_equals_keras_hub_generate(hub_models, family, request):
    hub, model = hub_models[family]
    tokenizer = model.tokenizer
    new_tokens = 12
    ours = model.generate(PROMPTS, new_tokens, apply_template=False)  # a ragged batch
    hub.compile(sampler="greedy")
    # keras-hub compiles one program per prompt length: the second (longer) prompt by
    # default, both under -m slow.
    rows = [0, 1] if request.config.getoption("-m") == "slow" else [1]
    for prompt, text in ((PROMPTS[row], ours[row]) for row in rows):
        length = 1 + len(tokenizer.encode(prompt))  # with <bos>, as keras-hub adds it
        hub_text = hub.generate(prompt, max_length=length + new_tokens,
                                stop_token_ids=[tokenizer.eos_id])
        assert hub_text == prompt + text


def test_bits_per_byte_equals_a_direct_computation_from_keras_hub_logits(hub_models, tmp_path):
    from keras_lm.scoring import evaluate_files

    hub, model = hub_models["gemma3"]  # <pad> is its own id: every target is scored
    tokenizer = model.tokenizer
    text = "def encode(self, o):\n    return 'é' + str(o)\n"
    path = tmp_path / "a.py"
    path.write_text(text, encoding="utf-8")
    ids = [tokenizer.bos_id] + tokenizer.encode(text).numpy().tolist() + [tokenizer.eos_id]
    result = evaluate_files(model, tokenizer, [str(path)], batch_size=1,
                            sequence_length=len(ids) - 1)
    x = np.array([ids[:-1]], "int32")
    logits = np.asarray(hub.backbone.token_embedding(
        hub.backbone({"token_ids": x, "padding_mask": np.ones_like(x)}), reverse=True), "float64")
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                keepdims=True)) - logits.max(-1, keepdims=True)
    nats = -log_probs[0, np.arange(len(ids) - 1), ids[1:]].sum()
    assert result["tokens"] == len(ids) - 1
    assert math.isclose(result["bits_per_byte"],
                        nats / len(text.encode("utf-8")) / math.log(2), rel_tol=1e-4)


def test_samplers_stop_strings_streaming_and_ragged_batches(hub_models):
    from keras_lm.generation import stream

    _, model = hub_models["gpt2"]
    tokenizer = model.tokenizer
    first = model.generate(PROMPTS, 10, sampler="top_p", top_p=0.9, seed=3)
    assert first == model.generate(PROMPTS, 10, sampler="top_p", top_p=0.9, seed=3)
    greedy = model.generate(PROMPTS[0], 10, apply_template=False)  # as `stream` reads it
    assert "".join(stream(model, tokenizer, PROMPTS[0], 10)) == greedy
    stop = greedy[2:4]
    assert model.generate(PROMPTS[0], 10, stop=[stop], apply_template=False) == greedy[
        :greedy.find(stop)]


@pytest.mark.slow
def test_every_sampler_runs_on_each_family(hub_models):
    for family in FAMILIES:
        _, model = hub_models[family]
        for options in (dict(sampler="top_k", top_k=5), dict(sampler="temperature",
                        temperature=0.7), dict(sampler="beam", beam_width=3)):
            texts = model.generate(PROMPTS, 6, seed=0, **options)
            assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_keras_file_round_trip_keeps_the_logits(hub_models, tmp_path):
    import keras

    _, model = hub_models["gemma3"]
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    ids = np.arange(4, 14, dtype="int32")[None]
    assert loaded.architecture == "gemma3"
    np.testing.assert_allclose(loaded(ids), model(ids), atol=1e-6)
