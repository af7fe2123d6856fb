"""Workarounds for Keras and TensorFlow behaviour, all in one place.

Each one names the behaviour it works around, where it is used, the upstream
issue if there is one, and the versions it was tested on. `tests/test_compat.py`
holds a canary per workaround: it fails when upstream changes what the
workaround relies on (a private name disappears, the behaviour is fixed), so
we notice when a patch must change or can go. Tested on Keras 3.15.1 and
TensorFlow 2.21 (`setup.cfg` pins these ranges).

Nothing else in keras_lm touches a private Keras or TensorFlow name.
"""

import contextlib
import warnings

import keras
import tensorflow as tf

TESTED_KERAS = "3.15"
TESTED_TENSORFLOW = "2.21"


def symbolic_build_inputs(model, iterator, data_batch):
    """The `(iterator, data_batch)` a model should build its optimizer from.

    Behaviour (Keras 3.15, private `Model._maybe_symbolic_build`): under a
    tf.distribute strategy Keras builds the optimizer and metrics from a
    batch it draws from a *new* iterator over the training data: a
    reshuffling dataset then trains on its second permutation, not the one a
    single device sees, and under MultiWorkerMirroredStrategy reducing that
    batch fails (PerReplica to Tensor). Whether the model runs under a
    strategy is private too (`Model._distribute_strategy`). Our inputs are known, token ids
    `(batch, time)`: build from a dummy batch instead. Used by
    `LanguageModel._maybe_symbolic_build`; the distribute tests check the
    result (same weights as one device).
    """
    if iterator is not None and model._distribute_strategy is not None:
        ids = tf.zeros((1, 2), tf.int32)
        return None, (ids, ids, None)
    return iterator, data_batch


def build_optimizer(model):
    """Builds `model.optimizer`'s variables now, eagerly, if it is not built yet.

    Behaviour (Keras 3.15, `TensorFlowTrainer._maybe_symbolic_build`): with
    no tf.distribute strategy, Keras leaves the optimizer unbuilt until the
    first trace of the train step, which then creates its slot variables.
    TensorFlow traces a function that creates variables twice (once to lift
    them out), so every `fit` traced the whole step twice: 4-5 s more at the
    start of a tiny model's run on 2 cores. Keras itself builds the optimizer
    this way under a strategy. Used by the `make_train_function` of
    `LanguageModel` and `TextClassifier`; `tests/models/test_models.py` checks that
    `fit` traces the step once.
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def track_loss(model, loss, batch_size):
    """Records `loss` in Keras' own loss tracker (the `loss` of the logs).

    Behaviour (Keras 3.15): the tracker is private (`Model._loss_tracker`);
    a custom `train_step` that wants Keras' `loss` log must update it. Used
    by `LanguageModel.train_step` to record the loss before Keras scales it
    down by the replica count.
    """
    model._loss_tracker.update_state(loss, sample_weight=batch_size)


def summed_and_clipped(gradients, optimizer, replicas):
    """Gradients of the global batch, clipped; returns `(shares, norm)`.

    Behaviour (Keras 3.15, TensorFlow backend): the optimizer clips
    (`global_clipnorm` and the rest) *before* it all-reduces the replicas'
    gradients, so under a strategy it would clip each replica's partial
    gradient (about 1/replicas of the whole) and the clip would bite far
    later than on one device. Here the gradients are summed first (one
    all-reduce), measured and clipped like the optimizer would on one
    device; each replica then hands the optimizer an equal share (sum /
    replicas), whose norm is below the clip threshold, so the optimizer's
    own clip does nothing and its all-reduce rebuilds the clipped sum. The
    cost: a second all-reduce per step. Used by `LanguageModel.train_step`.
    """
    ctx = tf.distribute.get_replica_context()
    present = [i for i, g in enumerate(gradients) if g is not None]
    # Dense: an embedding's IndexedSlices gradient cannot be divided below.
    summed = ctx.all_reduce(
        tf.distribute.ReduceOp.SUM, [tf.convert_to_tensor(gradients[i]) for i in present]
    )
    norm = tf.linalg.global_norm(summed)
    if optimizer.global_clipnorm:
        summed, _ = tf.clip_by_global_norm(summed, optimizer.global_clipnorm, use_norm=norm)
    elif optimizer.clipnorm:
        summed = [tf.clip_by_norm(g, optimizer.clipnorm) for g in summed]
    elif optimizer.clipvalue:
        summed = [tf.clip_by_value(g, -optimizer.clipvalue, optimizer.clipvalue) for g in summed]
    shares = list(gradients)
    for i, g in zip(present, summed):
        shares[i] = g / replicas
    return shares, norm


def reducible_logs(logs):
    """Step logs that Keras can reduce across workers.

    Behaviour (Keras 3.15): under MultiWorkerMirroredStrategy Keras reduces
    each replica's logs with `strategy.reduce("MEAN", value, axis=0)`, which
    fails on a scalar; as 1-vectors they reduce to the scalar mean. Whether
    the strategy really spans workers is private TensorFlow API
    (`extended._in_multi_worker_mode`), the same check Keras makes.
    Elsewhere the logs are returned as they are. Used by
    `LanguageModel.train_step` and `test_step`.
    """
    strategy = tf.distribute.get_strategy()
    if not (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode()):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


class RestoreFromChief(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that reads the chief's backup and writes its own.

    Behaviour (Keras 3.15): `BackupAndRestore` reads and writes one
    directory; its file paths (`_weights_path`, `_training_metadata_path`)
    and loader (`_load_model`) are private. A multi-worker run's other
    workers must resume from the chief's backup but write their own where
    it harms nothing. Used by `keras_lm.training.distribute.backup_callback`.
    """

    def __init__(self, backup_dir, restore_dir):
        super().__init__(backup_dir, double_checkpoint=True)
        self.restore_dir = restore_dir

    def on_train_begin(self, logs=None):
        own = (self._weights_path, self._training_metadata_path)
        chief = keras.callbacks.BackupAndRestore(self.restore_dir, double_checkpoint=True)
        try:
            # Read-only: if the chief's latest copy is unreadable, read its
            # previous one (the chief itself repairs its directory).
            for suffix in ("", ".bkp"):
                self._weights_path = chief._weights_path + suffix
                self._training_metadata_path = chief._training_metadata_path + suffix
                try:
                    self._load_model()
                    break
                except OSError:
                    if suffix:
                        raise
        finally:
            self._weights_path, self._training_metadata_path = own


# Keras' advice when a validation set ends before `validation_steps` (which
# we never pass: our cached validation set is finite on purpose), and when
# `shuffle=True` reaches a tf.data dataset (we pass False; Keras 3.15 still
# warns from `fit` on some paths). Neither is about the user's input.
_KERAS_DATA_WARNINGS = (
    r"Your input ran out of data",
    r".*`shuffle=True` was passed",
)


@contextlib.contextmanager
def quiet_keras_data_warnings():
    """Silences Keras' data warnings that are not about the user's input.

    Behaviour (Keras 3.15, `TFEpochIterator`): every validation over a
    finite, cached dataset warns "Your input ran out of data; interrupting
    training. Make sure that your dataset or generator can generate at
    least `steps_per_epoch * epochs` batches. You may need to use the
    .repeat() function" — wrong advice for a validation set read whole on
    purpose. Used around `model.fit` by the trainer.
    """
    with warnings.catch_warnings():
        for pattern in _KERAS_DATA_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        yield


def calibrate_only(converter):
    """Makes `converter.convert()` calibrate int8 ranges and stop before quantizing.

    Behaviour (TensorFlow 2.21, private `TFLiteConverter._experimental_calibrate_only`):
    the public converter calibrates and quantizes in one `convert()`, with no
    way to quantize only some operators after seeing how the whole model
    fares. `tf.lite.experimental.QuantizationDebugger` does it with this
    switch (its `get_nondebug_quantized_model`): calibrate once, then
    quantize the calibrated model as often as wanted
    (`quantize_calibrated_model`), some operators denylisted. Used by
    `keras_lm.export.tflite.calibrate_int8` (the `int8` export's `full` and
    `matmuls` candidates, and the classifier's). Returns `converter`.
    """
    converter._experimental_calibrate_only = True
    return converter


def quantize_calibrated_model(calibrated, denylisted_ops=None):
    """int8 `.tflite` bytes from a model `calibrate_only` converted.

    Behaviour (TensorFlow 2.21, `tensorflow.lite.python.convert.mlir_quantize`,
    a converter internal that the quantization debugger calls): quantizes
    every operator with an int8 kernel except those named in
    `denylisted_ops`, which keep float32 activations; inputs and outputs
    stay float32. Used by `keras_lm.export.tflite.quantize_calibrated`.
    """
    from tensorflow.lite.python.convert import mlir_quantize

    if denylisted_ops is None:
        return mlir_quantize(calibrated)
    return mlir_quantize(calibrated, denylisted_ops=list(denylisted_ops))


# keras-hub's TensorFlow path pre-splits byte-level BPE text with RE2 (no
# look-ahead), emulating GPT-2's `\s+(?!\S)` by inserting U+096C before a
# space that starts a word, splitting with `_BPE_WORDS`, splitting the last
# whitespace char off each piece with `_BPE_LAST_SPACE`, then dropping the
# U+096C pieces. Written here in the `tokenizers` library's regex syntax, with
# RE2's ASCII `\s` spelled out (Oniguruma's `\s` is Unicode).
_RE2_SPACE = r"\t\n\f\r "
_SPECIAL_SPACES = r"\x{a0}\x{2009}\x{202f}\x{3000}"
_BPE_MARK = "\u096c"
_BPE_WORDS = (
    r"'s|'t|'re|'ve|'m|'ll|'d"
    rf"|[{_RE2_SPACE}{_SPECIAL_SPACES}]+[\n\r\t\f{_BPE_MARK}{_SPECIAL_SPACES}]"
    rf"| ?\p{{L}}+| ?[\p{{N}}]+| ?[^{_RE2_SPACE}\p{{L}}\p{{N}}{_SPECIAL_SPACES}]+"
)
_BPE_LAST_SPACE = rf"[ \t\r\f\x0b{_BPE_MARK}{_SPECIAL_SPACES}]\z"


def align_keras_hub_bpe(hub_tokenizer):
    """Makes a keras-hub byte-level BPE tokenizer's eager path split words as its graph path does.

    Behaviour (keras-hub 0.32, `BytePairTokenizer._set_vocabulary_and_merges_tokenizers`):
    eagerly, `tokenize` runs a `tokenizers` pipeline whose `Split` gets Llama
    3's pattern as a plain string, which `tokenizers` matches literally, so
    words are never pre-split and merges run across them ("2  # ok" gives
    one "ĠĠ" where the graph path gives "Ġ", "Ġ#"). Inside `tf.function`,
    `tf.data` and a SavedModel the TensorFlow path runs instead, so a prompt
    tokenized eagerly differed from the same prompt in a SavedModel. This
    gives the instance's `tokenizers` pipeline the graph path's split
    (rules above; equal ids on the standard library's source and 5,000
    random whitespace-heavy strings, tests/test_compat.py), so eager,
    graph, SavedModel and the LiteRT-LM bundle's tokenizer.json (a copy of
    this pipeline) agree. The one known difference: a literal U+096C in the
    text, which the graph path drops. Used by `HubTokenizer`. Returns
    `hub_tokenizer`; other tokenizers (SentencePiece) pass unchanged.
    """
    if not hasattr(hub_tokenizer, "_maybe_initialized_tokenizers"):
        return hub_tokenizer
    from tokenizers import Regex, normalizers, pre_tokenizers

    hub_tokenizer._maybe_initialized_tokenizers()
    pipeline = hub_tokenizer._tokenizer
    pipeline.normalizer = normalizers.Replace(
        Regex(rf" (?=[^{_RE2_SPACE}{_SPECIAL_SPACES}])"), _BPE_MARK + " ")
    pipeline.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_BPE_WORDS), "isolated"),
        pre_tokenizers.Split(Regex(_BPE_LAST_SPACE), "isolated"),
        pre_tokenizers.Split(_BPE_MARK, "removed"),
        pre_tokenizers.ByteLevel(add_prefix_space=hub_tokenizer.add_prefix_space,
                                 use_regex=False),
    ])
    return hub_tokenizer
