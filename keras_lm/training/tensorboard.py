"""TensorBoard views of a language model: attention, loss by position,
embeddings, hyperparameters; and the callback list that writes them all.

Each view is a Keras callback that writes under one log directory, usable in
any `model.fit`; `tensorboard_callbacks` assembles them with Keras' own
`TensorBoard` callback (scalars, weight histograms, the profiler).

Example:
    from keras_lm.training import tensorboard_callbacks
    callbacks = tensorboard_callbacks("logs", tokenizer, validation_data=val_ds,
                                      hparams={"learning_rate": 1e-3})
    model.fit(train_ds, validation_data=val_ds, callbacks=callbacks, ...)
    # then: tensorboard --logdir logs
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector
from tensorboard.plugins.hparams import api as hp

from keras_lm.figures import (
    attention_figure,
    position_loss_figure,
    readable_token,
    token_labels,
)
from keras_lm.scoring import position_losses
from keras_lm.training.extras_budget import BudgetedExtra

# Two copies of one line: from the second copy on, a head that attends to the
# token after the previous occurrence of the current one (an induction head,
# the mechanism behind in-context copying) draws an off-diagonal stripe.
DEFAULT_PROBE_TEXT = "x = fib(10)\nx = fib(10)\n"


class _View(keras.callbacks.Callback):
    """Shared by the views: one summary writer for `log_dir`, a period in epochs."""

    def __init__(self, log_dir, every=1):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.log_dir = log_dir
        self.every = every
        self._writer = None

    def _summaries(self):
        """The writer as default, made on first use (one event file per view)."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer.as_default()

    def _due(self, epoch):
        return (epoch + 1) % self.every == 0


class _ImageView(BudgetedExtra, _View):
    """An image view: `write(step)` every `every` epochs (in a timed run, while its
    `budget`, an `ExtrasBudget`, allows, and at the end; see `extras_budget`)."""

    def on_epoch_end(self, epoch, logs=None):
        self.extra_due(self._due(epoch))

    def on_train_end(self, logs=None):
        self.extra_at_end()

    def run_extra(self, step):
        self.write(step)

    def _image(self, tag, png, step):
        with self._summaries():
            tf.summary.image(tag, tf.image.decode_png(png)[tf.newaxis], step=step)
        self._writer.flush()


class AttentionMaps(_ImageView):
    """Draws every layer's attention over a fixed probe text, every `every` epochs.

    One image per layer (tag `attention/layer_<i>`), one heatmap per head,
    the probe's tokens on both axes (rows: the token attending; columns: the
    tokens it reads). Reads the probabilities with `call(...,
    return_attention=True)` in inference mode: training is untouched.

    Args:
        tokenizer: the model's tokenizer (encodes the probe, labels the axes).
        log_dir: where the image summaries go (e.g. `logs/attention`).
        probe_text: the text to look at; cut to the model's context.
        every: period in epochs.

    Example:
    >>> import tempfile
    >>> from keras_lm.models import TransformerLM
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> view = AttentionMaps(ByteTokenizer(), tempfile.mkdtemp())
    >>> view.set_model(TransformerLM.from_preset("tiny", vocabulary_size=259))
    >>> view.attention().shape  # (layers, heads, probe tokens, probe tokens)
    (2, 2, 24, 24)
    """

    extra_name = "attention_maps"

    def __init__(self, tokenizer, log_dir, probe_text=DEFAULT_PROBE_TEXT, every=1):
        super().__init__(log_dir, every)
        ids = tokenizer.encode(probe_text).numpy()
        if len(ids) < 2:
            raise ValueError(f"probe_text must encode to >= 2 tokens, got {probe_text!r}")
        self.probe_ids = ids
        labels = token_labels(tokenizer)
        self.labels = [labels[i] for i in ids]

    def set_model(self, model):
        if not hasattr(model, "blocks"):
            raise ValueError(
                f"AttentionMaps needs a Transformer (a model whose call takes "
                f"return_attention), got {type(model).__name__}"
            )
        super().set_model(model)

    def attention(self):
        """`(layers, heads, time, time)` probabilities of the probe, as numpy."""
        return np.stack(self.layer_attention())

    def layer_attention(self):
        """Per layer, `(heads, time, time)`: a pruned model's layers differ in heads."""
        ids = self.probe_ids[-self.model.sequence_length:]
        _, weights = self.model(ids[None], training=False, return_attention=True)
        return [keras.ops.convert_to_numpy(w)[0] for w in weights]

    def write(self, step):
        weights = self.layer_attention()
        labels = self.labels[-weights[0].shape[-1]:]
        for layer, layer_weights in enumerate(weights):
            png = attention_figure(layer_weights, labels, f"layer {layer}, step {step}")
            self._image(f"attention/layer_{layer}", png, step)


class PositionLoss(_ImageView):
    """Plots the mean validation loss at each position of the context window.

    Tag `position_loss`, every `every` epochs: the picture of in-context
    learning (loss falls as the model reads further). Works for any model
    that maps `(batch, time)` ids to logits, the LSTM included.

    Args:
        validation_data: a dataset of `(inputs, targets)` batches, read
            whole at each drawing (give a finite one, e.g. `.take(n).cache()`).
        log_dir: where the image summaries go.
        pad_id: target id to leave out (padding).
        every: period in epochs.
    """

    extra_name = "position_loss"

    def __init__(self, validation_data, log_dir, pad_id=None, every=1):
        super().__init__(log_dir, every)
        self.validation_data = validation_data
        self.pad_id = pad_id

    def losses(self):
        """Mean loss (nats) at each position, as a numpy vector."""
        return position_losses(self.model, self.validation_data, self.pad_id)

    def write(self, step):
        losses = self.losses()
        png = position_loss_figure(
            losses, f"validation loss by position, step {step} "
                    f"(first {losses[0]:.2f}, last {losses[-1]:.2f} nats)")
        self._image("position_loss", png, step)


class EmbeddingProjector(BudgetedExtra, _View):
    """Saves the token embedding for TensorBoard's Projector tab.

    Writes into `log_dir`: a checkpoint of the matrix (the latest only),
    `metadata.tsv` (one readable token per row, special ids by name) and
    `projector_config.pbtxt` tying them together, at the end of every
    `every` epochs and of training. Keras' own `embeddings_freq` cannot
    serve: Keras 3 saves `.weights.h5` files, which the projector cannot
    read, so this writes a TensorFlow checkpoint.

    Args:
        tokenizer: labels the rows.
        log_dir: e.g. `logs/embeddings`.
        layer_name: attribute of the model holding the `Embedding` layer.
        every: period in epochs.
    """

    TENSOR_NAME = "token_embedding/.ATTRIBUTES/VARIABLE_VALUE"
    extra_name = "embedding_projector"

    def __init__(self, tokenizer, log_dir, layer_name="token_embedding", every=1):
        super().__init__(log_dir, every)
        self.labels = token_labels(tokenizer)
        self.layer_name = layer_name

    def on_train_begin(self, logs=None):
        layer = getattr(self.model, self.layer_name, None)
        if not isinstance(layer, keras.layers.Embedding):
            raise ValueError(
                f"layer_name: the model has no Embedding layer at "
                f".{self.layer_name}, got {type(layer).__name__}"
            )
        if layer.input_dim != len(self.labels):
            raise ValueError(
                f"the embedding has {layer.input_dim} rows, the tokenizer "
                f"{len(self.labels)} ids"
            )
        os.makedirs(self.log_dir, exist_ok=True)
        with open(os.path.join(self.log_dir, "metadata.tsv"), "w", encoding="utf-8") as f:
            # One column: no header row (the projector's rule for metadata).
            f.writelines(label + "\n" for label in self.labels)
        config = projector.ProjectorConfig()
        embedding = config.embeddings.add()
        embedding.tensor_name = self.TENSOR_NAME
        embedding.metadata_path = "metadata.tsv"  # relative to the config
        projector.visualize_embeddings(self.log_dir, config)
        self._variable = tf.Variable(keras.ops.convert_to_numpy(layer.embeddings))
        self._manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(token_embedding=self._variable), self.log_dir,
            max_to_keep=1, checkpoint_name="embedding")

    def on_epoch_end(self, epoch, logs=None):
        self.extra_due(self._due(epoch))

    def on_train_end(self, logs=None):
        if self.budget is None:
            self.save()
        else:
            self.extra_at_end()

    def run_extra(self, step):
        self.save()

    def save(self):
        """Writes the embedding as it is now; returns the checkpoint path."""
        layer = getattr(self.model, self.layer_name)
        self._variable.assign(keras.ops.convert_to_numpy(layer.embeddings))
        step = int(self.model.optimizer.iterations.numpy())
        path = self._manager.save(checkpoint_number=step)
        # The projector lists only directories that hold an event file (runs);
        # a one-line note in the text tab makes this one a run.
        rows, width = self._variable.shape
        with self._summaries():
            tf.summary.text("embedding", f"`{self.layer_name}`: {rows} tokens x {width} "
                            f"dimensions at step {step}; see the Projector tab.", step=step)
        self._writer.flush()
        return path


class HParamsLogger(_View):
    """Records a run's settings and final metrics for the HParams dashboard.

    At the start of training it writes the settings (`hparams`, flattened:
    nested dicts to dotted names, lists to JSON, None left out) as an hparams
    session in `log_dir`; runs under one parent directory then compare in
    the HParams tab, whose metric columns are the scalars of each session's
    runs (`epoch_loss` of `train` and `validation`, ...) and the
    `final/<name>` scalars written here: the last epoch's logs at the end of
    training, or what the caller passes to `write_metrics`.

    Args:
        log_dir: the run's log root (e.g. `output_dir/logs`).
        hparams: a dict of settings.
        final_metrics_from_logs: write the last epoch's logs as `final/...`
            at the end of training (off when the caller measures its own).
    """

    def __init__(self, log_dir, hparams, final_metrics_from_logs=True):
        super().__init__(log_dir)
        self.hparams = flatten_hparams(hparams)
        self.final_metrics_from_logs = final_metrics_from_logs
        self._last_logs = {}

    def on_train_begin(self, logs=None):
        with self._summaries():
            hp.hparams(self.hparams, start_time_secs=int(time.time()))
        self._writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        self._last_logs = dict(logs or {})

    def on_train_end(self, logs=None):
        if self.final_metrics_from_logs and self._last_logs:
            self.write_metrics(self._last_logs, int(self.model.optimizer.iterations.numpy()))

    def write_metrics(self, metrics, step):
        """Writes the numbers of `metrics` as `final/<name>` scalars at `step`."""
        with self._summaries():
            for name, value in sorted(metrics.items()):
                if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                    tf.summary.scalar(f"final/{name}", float(value), step=step)
        self._writer.flush()


def flatten_hparams(settings, prefix=""):
    """Settings as hparams values: bool, int, float or str only.

    Example:
    >>> flatten_hparams({"lr": 0.1, "model": {"layers": 2}, "prompts": ["a"], "x": None})
    {'lr': 0.1, 'model.layers': 2, 'prompts': '["a"]'}
    """
    flat = {}
    for name, value in settings.items():
        if value is None:
            continue
        if isinstance(value, dict):
            flat.update(flatten_hparams(value, f"{prefix}{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix + name] = value
        elif isinstance(value, np.generic):
            flat[prefix + name] = value.item()
        else:
            flat[prefix + name] = json.dumps(value, default=str)
    return flat


def tensorboard_callbacks(log_dir, tokenizer, validation_data=None, hparams=None, *,
                          attention_maps=True, position_loss=True,
                          embedding_projector=True, histograms=False,
                          profile_steps=None, probe_text=DEFAULT_PROBE_TEXT, every=1,
                          budget=None):
    """Keras' `TensorBoard` callback and keras_lm's views, under one log root.

    Layout of `log_dir`: `train/` and `validation/` (Keras: scalars such as
    `epoch_loss`, `epoch_gradient_norm`, `epoch_learning_rate`; weight
    histograms if `histograms`; the profile of training steps
    `profile_steps=(first, last)`), `attention/` (images), `position_loss/`
    (image), `embeddings/` (projector) and, at the root, the hparams session.
    Put `LanguageModelLogs` before these in the callback list so its
    scalars (bits per byte, tokens per second) reach TensorBoard.

    Args:
        validation_data: finite `(inputs, targets)` batches for the
            position-loss curve (the curve is skipped without them).
        hparams: the run's settings for the HParams tab (skipped if None).
        attention_maps: draw attention (needs a Transformer).
        every: period of the images and the embedding, in epochs.
        budget: an `ExtrasBudget` (a timed run's): the images and the
            embedding then run while it allows, and at the end.
    """
    views = [
        keras.callbacks.TensorBoard(
            log_dir=log_dir,
            histogram_freq=every if histograms else 0,
            profile_batch=tuple(profile_steps) if profile_steps else 0,
        )
    ]
    if attention_maps:
        views.append(AttentionMaps(tokenizer, os.path.join(log_dir, "attention"),
                                   probe_text, every))
    if position_loss and validation_data is not None:
        views.append(PositionLoss(validation_data, os.path.join(log_dir, "position_loss"),
                                  tokenizer.pad_id, every))
    if embedding_projector:
        views.append(EmbeddingProjector(tokenizer, os.path.join(log_dir, "embeddings"),
                                        every=every))
    for view in views:
        if isinstance(view, BudgetedExtra):
            view.budget = budget
    if hparams is not None:
        views.append(HParamsLogger(log_dir, hparams))
    return views


__all__ = [
    "AttentionMaps",
    "DEFAULT_PROBE_TEXT",
    "EmbeddingProjector",
    "HParamsLogger",
    "PositionLoss",
    "flatten_hparams",
    "readable_token",
    "tensorboard_callbacks",
]
