"""TensorBoard views, read back from the event files with TensorBoard's reader."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.projector import ProjectorConfig

from keras_lm import data
from keras_lm.models import LSTMLM, TransformerLM
from keras_lm.tokenizers import ByteTokenizer
from keras_lm.training import AttentionMaps, EmbeddingProjector, PositionLoss
from keras_lm.figures import readable_token, token_labels
from keras_lm.training.tensorboard import flatten_hparams


def events(path):
    """Every event under one run directory, nothing sampled away."""
    return EventAccumulator(str(path), size_guidance={"tensors": 0}).Reload()


def scalar_values(accumulator, tag):
    """(step, value) pairs of a scalar written with tf.summary (v2)."""
    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)]


def png_size(encoded):
    image = tf.image.decode_png(encoded)
    return tuple(image.shape)  # (height, width, channels)


def test_scalars_train_and_validation(tensorboard_run):
    logs = tensorboard_run / "logs"
    train = events(logs / "train")
    for tag in ("epoch_loss", "epoch_perplexity", "epoch_bits_per_byte", "epoch_learning_rate",
                "epoch_tokens_per_second", "epoch_gradient_norm", "epoch_accuracy"):
        values = scalar_values(train, tag)
        assert [step for step, _ in values] == [0, 1], tag  # one point per interval
        assert all(np.isfinite(v) for _, v in values), tag
        assert all(e.tensor_proto.tensor_shape.dim == [] for e in train.Tensors(tag))
    loss = dict(scalar_values(train, "epoch_loss"))
    perplexity = dict(scalar_values(train, "epoch_perplexity"))
    assert perplexity[1] == pytest.approx(math.exp(loss[1]), rel=1e-4)
    assert 0 < dict(scalar_values(train, "epoch_gradient_norm"))[1] < 100
    assert 5.0 < loss[0] < 6.0  # ~ln(259) untrained
    validation = events(logs / "validation")
    tags = set(validation.Tags()["tensors"])
    assert {"epoch_loss", "epoch_perplexity", "epoch_bits_per_byte"} <= tags
    assert "epoch_gradient_norm" not in tags  # a training-only figure


def test_histograms_per_layer(tensorboard_run):
    train = events(tensorboard_run / "logs" / "train")
    tags = [t for t in train.Tags()["tensors"] if t.endswith("/histogram")]
    # Tags are weight paths under the model's name (`transformer_lm`, or
    # `transformer_lm_<n>` in a process that built models before).
    paths = {t.split("/", 1)[1] for t in tags}
    assert {"token_embedding/embeddings/histogram", "block_1/attention/qkv/kernel/histogram",
            "final_norm/gamma/histogram"} <= paths
    assert len(paths) == len(tags) == 27  # one per weight, no collisions
    histogram = tf.make_ndarray(train.Tensors(tags[0])[-1].tensor_proto)
    assert histogram.ndim == 2 and histogram.shape[1] == 3  # (buckets, [left, right, count])


def test_samples_name_the_sampler(tensorboard_run):
    samples = events(tensorboard_run / "logs" / "samples").Tensors("samples")
    assert [e.step for e in samples] == [2, 4]
    text = samples[-1].tensor_proto.string_val[0].decode()
    assert "sampler=temperature" in text and "temperature=0.8" in text and "seed=0" in text


def test_attention_and_position_loss_images(tensorboard_run):
    logs = tensorboard_run / "logs"
    attention = events(logs / "attention")
    assert sorted(attention.Tags()["tensors"]) == ["attention/layer_0", "attention/layer_1"]
    for tag in ("attention/layer_0", "attention/layer_1"):
        images = attention.Tensors(tag)
        assert [e.step for e in images] == [2, 4]
        width, height, encoded = images[-1].tensor_proto.string_val  # tf.summary.image layout
        h, w, channels = png_size(encoded)
        assert (int(width), int(height)) == (w, h) and channels in (3, 4)
        # Two heads stacked, each as wide as TensorBoard's image card.
        assert 330 <= w <= 400 and 2 * 330 <= h <= 2 * 400, (w, h)
    curve = events(logs / "position_loss").Tensors("position_loss")
    assert [e.step for e in curve] == [2, 4]
    h, w, _ = png_size(curve[-1].tensor_proto.string_val[2])
    assert (h, w) == (400, 640)


def test_projector_config_points_at_files_that_exist(tensorboard_run):
    directory = tensorboard_run / "logs" / "embeddings"
    config = text_format.Parse((directory / "projector_config.pbtxt").read_text(), ProjectorConfig())
    (embedding,) = config.embeddings
    metadata = directory / embedding.metadata_path
    rows = metadata.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(rows) == 259 and len(set(rows)) == 259  # one distinct label per id
    assert all(row and "\t" not in row for row in rows)
    assert rows[ord("a")] == "a" and rows[ord("\n")] == "\\n" and rows[256] == "<pad>"
    checkpoint = tf.train.latest_checkpoint(str(directory))
    assert checkpoint and checkpoint.endswith("embedding-4")  # the last step
    matrix = tf.train.load_checkpoint(checkpoint).get_tensor(embedding.tensor_name)
    assert matrix.shape == (259, 32)
    model = keras.models.load_model(str(tensorboard_run / "model.keras"))
    np.testing.assert_allclose(matrix, model.token_embedding.embeddings.numpy())


def test_hparams_session_and_final_metrics(tensorboard_run):
    root = events(tensorboard_run / "logs")
    (event,) = root.Tensors(hparams_metadata.SESSION_START_INFO_TAG)
    plugin_data = root.summary_metadata[hparams_metadata.SESSION_START_INFO_TAG].plugin_data
    start = hparams_metadata.parse_session_start_info_plugin_data(plugin_data.content)
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
               for k, v in start.hparams.items()}
    assert hparams["learning_rate"] == pytest.approx(3e-3)
    assert hparams["model"] == "transformer" and hparams["histograms"] is True
    assert hparams["model_config.hidden_dim"] == 32 and hparams["profile_steps"] == "[2, 3]"
    metrics = json.loads((tensorboard_run / "metrics.json").read_text())
    final = dict(scalar_values(root, "final/val_bits_per_byte"))
    assert final == {4: pytest.approx(metrics["val_bits_per_byte"])}


def test_profile_trace_written(tensorboard_run):
    traces = list((tensorboard_run / "logs" / "train" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000


def test_readable_tokens():
    assert readable_token(b"\t") == "\\t" and readable_token(b"\x00") == "\\x00"
    assert readable_token(b"\xe2\x82\xac") == "€" and readable_token(b"\xe2") == "\\xe2"
    labels = token_labels(ByteTokenizer())
    assert len(labels) == 259 and all(label.isprintable() for label in labels)


def test_flatten_hparams_keeps_only_tensorboard_types():
    flat = flatten_hparams({"a": 1, "b": {"c": [1, 2], "d": None}, "e": True, "f": np.float32(2)})
    assert flat == {"a": 1, "b.c": "[1, 2]", "e": True, "f": 2.0}


def test_gradient_norm_matches_tape_and_leaves_training_unchanged():
    x = np.random.RandomState(0).randint(0, 259, (4, 17)).astype("int32")
    inputs, targets = x[:, :-1], x[:, 1:]
    results = {}
    for name in ("keras_lm", "keras"):
        keras.utils.set_random_seed(0)
        model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
        # Eagerly: the same step without ~8 s of tracing per model (the traced
        # step runs in every training test).
        model.compile("adamw", learning_rate=1e-2, jit_compile=False, run_eagerly=True)
        if name == "keras_lm":
            with tf.GradientTape() as tape:
                loss = model.compute_loss(inputs, targets, model(inputs, training=True))
            expected = float(tf.linalg.global_norm(tape.gradient(loss, model.trainable_weights)))
        else:  # Keras' own training step, for comparison
            model.train_step = lambda batch, model=model: keras.Model.train_step(model, batch)
        history = model.fit(inputs, targets, batch_size=4, epochs=2, verbose=0)
        results[name] = history.history, [w.numpy() for w in model.weights]
    ours, theirs = results["keras_lm"], results["keras"]
    assert ours[0]["gradient_norm"][0] == pytest.approx(expected, rel=1e-5)
    assert ours[0]["gradient_norm"][0] > 1.0  # before clipping (clipnorm=1)
    assert ours[0]["loss"] == theirs[0]["loss"]
    for a, b in zip(ours[1], theirs[1]):
        np.testing.assert_array_equal(a, b)


def test_views_in_a_users_fit_lstm(corpus, tmp_path):
    """The views as a Python user adds them; the LSTM gets a loss curve, not attention."""
    keras.utils.set_random_seed(0)
    tokenizer = ByteTokenizer()
    model = LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=16,
                               pad_id=tokenizer.pad_id)
    model.compile("adamw", learning_rate=1e-2)
    train = data.text_dataset(corpus, tokenizer, 16, 4, shuffle=True, repeat=True, seed=0)
    val = data.text_dataset(corpus[:1], tokenizer, 16, 4).take(3).cache()
    curve = PositionLoss(val, str(tmp_path / "position_loss"), tokenizer.pad_id)
    projector = EmbeddingProjector(tokenizer, str(tmp_path / "embeddings"))
    model.fit(train, steps_per_epoch=2, epochs=1, callbacks=[curve, projector], verbose=0)
    losses = curve.losses()
    assert losses.shape == (16,) and np.all((losses > 3) & (losses < 7))
    assert [e.step for e in events(tmp_path / "position_loss").Tensors("position_loss")] == [2]
    assert tf.train.latest_checkpoint(str(tmp_path / "embeddings")).endswith("embedding-2")
    with pytest.raises(ValueError, match="needs a Transformer"):
        model.fit(train, steps_per_epoch=1, epochs=1, verbose=0,
                  callbacks=[AttentionMaps(tokenizer, str(tmp_path / "attention"))])


def test_attention_maps_are_causal_probabilities():
    keras.utils.set_random_seed(0)
    view = AttentionMaps(ByteTokenizer(), "/nonexistent", probe_text="abcabcabc")
    view.set_model(TransformerLM.from_preset("tiny", vocabulary_size=259))
    weights = view.attention()
    assert weights.shape == (2, 2, 9, 9)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(weights, k=1) < 1e-6)  # no position reads the future
    assert view.labels == list("abcabcabc")


BAD_FLAGS = [
    (["--profile_steps=5"], "--profile_steps: expected two step numbers 'first,last', got '5'"),
    (["--profile_steps=a,b"], "--profile_steps: expected two step numbers 'first,last', got 'a,b'"),
    (["--profile_steps=1,2,3"], "--profile_steps: expected two step numbers"),
    (["--profile_steps=3,2"], "--profile_steps: expected 1 <= first <= last, got 3,2"),
    (["--profile_steps=0,2"], "--profile_steps: expected 1 <= first <= last, got 0,2"),
    (["--profile_steps=10,30"], "--profile_steps: last step 30 is past steps=20"),
    (["--histograms=maybe"], "flag --histograms=maybe"),
]


@pytest.mark.parametrize("flags,message", BAD_FLAGS, ids=[f[0][0] for f in BAD_FLAGS])
def test_bad_tensorboard_flags_get_one_line_and_exit_2(capsys, tmp_path, flags, message):
    from conftest import TINY, assert_one_line_usage_error, run_in_process

    output = tmp_path / "never_created"
    code, _, err = run_in_process(capsys, "train", *TINY, f"--output_dir={output}", *flags)
    assert_one_line_usage_error(code, err, "train", message)
    assert not output.exists()


def test_view_flags_reach_the_config():
    from keras_lm.cli import train_command

    flags = train_command.FLAGS
    flags.unparse_flags()
    flags(["keras-lm train"])
    config = train_command.config_from_flags()
    assert (config.samples, config.attention_maps, config.position_loss,
            config.embedding_projector, config.hparams) == (True,) * 5
    assert (config.histograms, config.profile_steps) == (False, None)
    flags.unparse_flags()
    flags(["keras-lm train", "--noattention_maps", "--noembedding_projector", "--nohparams",
           "--noposition_loss", "--nosamples", "--histograms", "--profile_steps= 3, 4"])
    config = train_command.config_from_flags()
    assert not (config.samples or config.attention_maps or config.position_loss
                or config.embedding_projector or config.hparams)
    assert (config.histograms, config.profile_steps) == (True, (3, 4))
    flags.unparse_flags()
