import keras
import numpy as np
import pytest

from keras_lm.models import LSTMLM, PRESETS, TransformerLM
from keras_lm.tokenizers import ByteTokenizer
from keras_lm import data

VOCABULARY = 259


def tiny_models():
    return {
        "transformer_rotary": TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY),
        "transformer_learned_untied": TransformerLM.from_preset(
            "tiny", vocabulary_size=VOCABULARY, position_embedding="learned",
            tie_embeddings=False, activation="relu",
        ),
        "lstm": LSTMLM.from_preset("tiny", vocabulary_size=VOCABULARY, num_layers=2),
    }


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    return tiny_models()


@pytest.mark.parametrize("name", ["transformer_rotary", "transformer_learned_untied", "lstm"])
def test_causality(models, name):
    model = models[name]
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 256, (1, 24)).astype("int32")
    t = 11
    changed = tokens.copy()
    changed[0, t] = (changed[0, t] + 1) % 256
    before, after = model(tokens), model(changed)
    np.testing.assert_allclose(before[0, :t], after[0, :t], atol=1e-6)
    assert np.abs(np.asarray(before[0, t:]) - np.asarray(after[0, t:])).max() > 1e-4


@pytest.mark.parametrize("name", ["transformer_rotary", "transformer_learned_untied", "lstm"])
def test_keras_save_load_gives_identical_logits(models, name, tmp_path):
    model = models[name]
    tokens = np.random.default_rng(1).integers(0, 256, (2, 20)).astype("int32")
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded(tokens), model(tokens))


def test_config_round_trip(models):
    for model in models.values():
        clone = type(model).from_config(model.get_config())
        assert clone.get_config() == model.get_config()
        assert clone.count_params() == model.count_params()


@pytest.mark.parametrize("family", [TransformerLM, LSTMLM], ids=["transformer", "lstm"])
def test_fit_lowers_the_loss_on_a_tiny_corpus(family, corpus):
    class Counted(family):  # counts the traces of its train step
        traces = 0

        def train_step(self, data):
            Counted.traces += 1
            return super().train_step(data)

    keras.utils.set_random_seed(0)
    tokenizer = ByteTokenizer()
    model = Counted.from_preset("tiny", vocabulary_size=tokenizer.vocabulary_size,
                                sequence_length=32, pad_id=tokenizer.pad_id)
    model.compile("adamw", learning_rate=1e-2, total_steps=60, warmup_steps=5)
    ds = data.text_dataset(corpus, tokenizer, 32, 16, shuffle=True, repeat=True, seed=0)
    history = model.fit(ds, steps_per_epoch=20, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 0.5, losses
    assert "perplexity" in history.history and "accuracy" in history.history
    # Traced once: the optimizer's variables are built before the first trace
    # (`compat.build_optimizer`); created inside it, they made TF trace twice.
    assert Counted.traces == 1


def test_padding_is_ignored_by_the_default_loss():
    model = TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY, pad_id=256)
    model.compile(jit_compile=False)
    x = np.random.default_rng(2).integers(0, 256, (2, 10)).astype("int32")
    y = x.copy()
    padded_y = y.copy()
    padded_y[:, 5:] = 256
    full = model.compute_loss(x=x, y=y, y_pred=model(x))
    part = model.compute_loss(x=x, y=padded_y, y_pred=model(x))
    first_half = model.compute_loss(x=x[:, :5], y=y[:, :5], y_pred=model(x)[:, :5])
    assert float(part) != pytest.approx(float(full))
    np.testing.assert_allclose(float(part), float(first_half), rtol=1e-5)


def test_presets_grow_and_bad_preset_is_named():
    for family in (TransformerLM, LSTMLM):
        sizes = [family.from_preset(p, vocabulary_size=VOCABULARY).count_params()
                 for p in ("tiny", "small", "base")]
        assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert set(PRESETS) == {"transformer", "lstm"}
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        TransformerLM.from_preset("huge", vocabulary_size=VOCABULARY)


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="position_embedding"):
        TransformerLM(VOCABULARY, position_embedding="sinusoid")
    with pytest.raises(ValueError, match="num_heads=3"):
        TransformerLM(VOCABULARY, num_heads=3, hidden_dim=8, num_layers=1)
