"""LoRA on our Dense layers: merged == unmerged, adapter files bound to their base."""

import os

import numpy as np
import pytest

from keras_lm.adaptation import (
    base_weights_digest,
    enable_lora,
    load_adapters,
    read_adapters,
    save_adapters,
)
from keras_lm.errors import UsageError
from keras_lm.models import LSTMLM, TransformerLM
from keras_lm.training.distribute import weights_digest

IDS = np.arange(2 * 16, dtype="int32").reshape(2, 16) % 259


def tiny(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)


def with_trained_adapters(model, rank=2, alpha=4.0, targets=("qkv", "output", "mlp_in",
                                                               "mlp_out")):
    """LoRA on `model`, with non-zero A and B (as after training)."""
    info = enable_lora(model, rank, alpha, targets)
    rng = np.random.default_rng(1)
    for weight in model.weights:
        if "lora_kernel" in weight.path:
            weight.assign(rng.normal(0, 0.05, weight.shape).astype("float32"))
    return info


def test_lora_trains_only_the_adapters_and_counts_them():
    model = tiny()
    digest = weights_digest(model)
    info = enable_lora(model, rank=4, targets="qkv,mlp_out")
    hidden, layers = model.hidden_dim, model.num_layers
    expected = layers * (4 * (hidden + 3 * hidden) + 4 * (model.intermediate_dim + hidden))
    assert info["trainable_parameters"] == expected
    assert {w.path.rsplit("/", 1)[1] for w in model.trainable_weights} == {
        "lora_kernel_a", "lora_kernel_b"}
    # B starts at zero: the model is still the base, and its digest is the base's.
    assert info["base_weights_digest"] == digest == base_weights_digest(model)
    np.testing.assert_allclose(np.asarray(model(IDS)), np.asarray(tiny()(IDS)), atol=1e-6)


def test_merged_model_keras_matches_the_unmerged_model(tmp_path):
    import keras

    model = tiny()
    with_trained_adapters(model)
    unmerged = np.asarray(model(IDS))
    assert not np.allclose(unmerged, np.asarray(tiny()(IDS)), atol=1e-3)  # the adapters act
    path = str(tmp_path / "merged.keras")
    model.save(path)
    merged = keras.models.load_model(path)
    assert not any("lora" in w.path for w in merged.weights)
    np.testing.assert_allclose(np.asarray(merged(IDS)), unmerged, atol=1e-5, rtol=0)


def test_adapters_load_onto_their_base_only(tmp_path):
    model = tiny()
    info = with_trained_adapters(model, targets=("qkv", "mlp_in"))
    path = str(tmp_path / "adapters.npz")
    save_adapters(model, path, info["base_weights_digest"])
    header, arrays = read_adapters(path)
    assert header["rank"] == 2 and header["alpha"] == 4.0 and header["targets"] == ["qkv",
                                                                                     "mlp_in"]
    assert len(arrays) == 2 * 2 * model.num_layers
    # Small: the adapters alone, not the model.
    assert os.path.getsize(path) < 0.2 * sum(w.numpy().nbytes for w in model.weights)
    base = tiny()
    load_adapters(base, path)
    np.testing.assert_allclose(np.asarray(base(IDS)), np.asarray(model(IDS)), atol=1e-6)
    with pytest.raises(UsageError, match="^adapters: .* was trained on another base"):
        load_adapters(tiny(seed=5), path)


def test_an_adapter_file_must_be_ours(tmp_path):
    path = tmp_path / "adapters.npz"
    np.savez(path, x=np.zeros(2))
    with pytest.raises(UsageError, match="not a keras_lm adapter file"):
        read_adapters(str(path))
    with pytest.raises(UsageError, match="does not exist"):
        read_adapters(str(tmp_path / "none.npz"))


@pytest.mark.parametrize("rank, alpha, targets, message", [
    (0, None, "qkv", "lora_rank must be an integer > 0, got 0"),
    (-2, None, "qkv", "lora_rank must be an integer > 0"),
    (2, 0, "qkv", "lora_alpha must be > 0"),
    (2, None, "qkv,query", "lora_targets must be some of qkv, output, mlp_in, mlp_out"),
])
def test_bad_lora_settings(rank, alpha, targets, message):
    with pytest.raises(UsageError, match=message):
        enable_lora(tiny(), rank, alpha, targets)


def test_lora_on_the_lstm_is_one_clear_error():
    model = LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
    with pytest.raises(UsageError, match="^lora_rank=4: LoRA needs Dense layers.*LSTM"):
        enable_lora(model, 4)


@pytest.mark.slow  # traces scoring three times (~15 s on 2 cores)
def test_scores_and_generation_compiled_before_lora_see_the_adapters():
    """The compiled scoring and generation functions are cached per model; a
    trace made before `enable_lora` must not keep serving the base."""
    from keras_lm.data import Pair, encode_pairs
    from keras_lm.generation import decoding
    from keras_lm.scoring import evaluate_pairs
    from keras_lm.tokenizers import ByteTokenizer

    examples = encode_pairs([Pair("2+2=", "4", "x:1")], ByteTokenizer(), None, 16)
    model = tiny()
    base_loss = evaluate_pairs(model, examples, pad_id=256)["response_loss"]
    prefill = decoding._program(model, "prefill", None, (1, 8, 16))  # made, not traced: cheap
    with_trained_adapters(model)
    fresh = tiny()  # the same adapted model, never compiled before LoRA
    with_trained_adapters(fresh)
    loss = evaluate_pairs(model, examples, pad_id=256)["response_loss"]
    assert abs(loss - base_loss) > 1e-4
    np.testing.assert_allclose(loss, evaluate_pairs(fresh, examples, pad_id=256)["response_loss"],
                               rtol=1e-6)
    # Generation's programs are made anew too (tracing them costs seconds each).
    assert decoding._program(model, "prefill", None, (1, 8, 16)) is not prefill
    assert decoding._program(model, "prefill", None, (1, 8, 16)) is decoding._program(
        model, "prefill", None, (1, 8, 16))
