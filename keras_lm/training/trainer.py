"""One training run from a `TrainConfig`: what `keras-lm train` does."""

import math
import os
import time

import keras

from keras_lm import data
from keras_lm.errors import UsageError
from keras_lm.generation import generate
from keras_lm.io_utils import atomic_path, write_json
from keras_lm.model_dir import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE
from keras_lm.models import MODELS
from keras_lm.data.text_sample import count_invalid_utf8
from keras_lm.tokenizers import load_tokenizer, train_tokenizer
from keras_lm.training.callbacks import WallClockSchedule, standard_callbacks
from keras_lm.training.distribute import make_strategy, weights_digest
from keras_lm.training.tensorboard import HParamsLogger
from keras_lm.scoring import evaluate_files
from keras_lm.training import task_run


# The final evaluation reads at most this many validation tokens (the whole
# validation split of the built-in corpus is ~0.6M): bounded on huge corpora.
FINAL_EVAL_TOKENS = 1 << 22


def resolve_files(config):
    """The (train, validation) file lists of a run."""
    if config.train_files:
        train = data.resolve_files(config.train_files, "--train_files")
    else:
        train = data.corpus_files(config.corpus)
    if config.val_files:
        val = data.resolve_files(config.val_files, "--val_files")
    else:
        train, val = data.split_files(train, config.validation_fraction)
    return train, val


def prepare_output_dir(path):
    """Creates `path` and checks that it is writable, or raises UsageError."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise UsageError(
            f"--output_dir: {path!r} is not writable ({error.strerror})"
        ) from None


def build_tokenizer(config, train_files, output_dir, resuming):
    """The run's tokenizer: reloaded when resuming, else built (and trained)."""
    path = os.path.join(output_dir, TOKENIZER_FILE)
    if resuming and os.path.isfile(path):
        return load_tokenizer(path)
    if config.tokenizer != "byte":
        # Byte ids keep invalid UTF-8 as it is; every other tokenizer replaces it.
        count_invalid_utf8(train_files).report("training files")
    return train_tokenizer(
        config.tokenizer, train_files, config.vocab_size, config.normalize,
        config.sentencepiece_model_type,
    )


def build_model(config, tokenizer):
    """The model of `config.model` / `config.preset`, sized for the tokenizer."""
    args = dict(config.model_args)
    if config.dropout is not None:
        args["dropout"] = config.dropout
    return MODELS[config.model].from_preset(
        config.preset,
        vocabulary_size=tokenizer.vocabulary_size,
        sequence_length=config.sequence_length,
        pad_id=tokenizer.pad_id,
        **args,
    )


def _is_resuming(output_dir):
    return os.path.isfile(os.path.join(output_dir, "backup", "training_metadata.json"))


def train(config):
    """Runs training as configured; returns the final metrics dict.

    Writes into `config.output_dir`: `model.keras`, `tokenizer.json`,
    `config.json`, `logs/`, `checkpoints/best.keras`, `backup/` (removed when
    the run completes), `samples.txt` and `metrics.json`. Re-running the
    same configuration after a crash resumes from the last backup.

    Under `config.strategy` (see `keras_lm.training.distribute`) the model is
    built and compiled in the strategy's scope; only the chief writes
    `output_dir` (other workers write to a temporary directory in it, removed
    at the end, and resume from the chief's backup), and only the chief runs
    the final evaluation. Every process returns `weights_digest`.

    Example:
        from keras_lm.training import TrainConfig, train
        train(TrainConfig(recipe="tiny", preset="tiny", steps=20,
                          eval_interval=10, output_dir="/tmp/tiny"))
    """
    started = time.time()
    config.validate()
    # First: a strategy may configure TensorFlow's runtime (logical CPUs,
    # collective ops), which is only possible before it starts.
    distribution = make_strategy(config.strategy, config.devices, config.batch_size)
    # A --task run trains on a synthetic source, not on files (see task_run).
    task = task_run.task_from_config(config) if config.task else None
    train_files, val_files = ([], []) if task else resolve_files(config)
    output_dir = config.output_dir or os.path.join("saved_models", config.recipe)
    write_dir = distribution.write_dir(output_dir)
    prepare_output_dir(write_dir)
    try:
        return _train(config, started, distribution, task, train_files, val_files, output_dir,
                      write_dir)
    finally:
        distribution.cleanup(output_dir)


def _train(config, started, distribution, task, train_files, val_files, output_dir, write_dir):

    keras.utils.set_random_seed(config.seed)
    keras.config.set_dtype_policy(config.precision)
    resuming = _is_resuming(output_dir)
    if task:
        tokenizer = task_run.task_tokenizer(task)
    else:
        tokenizer = build_tokenizer(config, train_files, output_dir, resuming)
    with distribution.strategy.scope():  # the variables: one copy per replica
        model = build_model(config, tokenizer)

    tokens_per_step = config.batch_size * config.sequence_length
    train_ratio = None if task else data.tokens_per_byte(train_files, tokenizer)
    val_ratio = None if task else data.tokens_per_byte(val_files, tokenizer)
    steps = config.steps
    if config.epochs is not None:
        train_bytes = sum(os.path.getsize(f) for f in train_files)
        steps = math.ceil(config.epochs * train_bytes * train_ratio / tokens_per_step)
    interval = min(config.eval_interval, steps)
    num_evals = math.ceil(steps / interval)
    steps = num_evals * interval  # whole evaluation intervals

    # With --train_minutes the clock drives the schedule (and `steps` is only
    # an upper bound), so the optimizer gets a constant, assignable rate.
    clock = None
    if config.train_minutes:
        clock = WallClockSchedule(config.learning_rate, 60 * config.train_minutes, start=started)
    jit_compile = "auto" if config.jit_compile is None else config.jit_compile
    if distribution.name != "default" and config.jit_compile is None:
        jit_compile = False  # Keras' own default under tf.distribute
    with distribution.strategy.scope():  # the optimizer's variables too
        model.compile(
            config.optimizer,
            learning_rate=config.learning_rate,
            total_steps=None if clock else steps,
            warmup_steps=config.warmup_steps,
            weight_decay=config.weight_decay,
            clipnorm=config.clipnorm,
            jit_compile=jit_compile,
        )
    num_parameters = model.count_params()
    resolved = config.to_dict()
    resolved.update(
        output_dir=output_dir,
        steps=steps,
        eval_interval=interval,
        vocabulary_size=tokenizer.vocabulary_size,
        num_parameters=num_parameters,
        num_train_files=len(train_files),
        num_val_files=len(val_files),
        tokens_per_byte=train_ratio,
        val_tokens_per_byte=val_ratio,
        model_config=model.get_config(),
        distribute={**distribution.describe(config.batch_size, config.learning_rate),
                    "jit_compile": bool(model.jit_compile)},
    )
    if not resuming:
        for stale in ("samples.txt", "metrics.json"):
            if os.path.exists(os.path.join(write_dir, stale)):
                os.remove(os.path.join(write_dir, stale))
    write_json(os.path.join(write_dir, CONFIG_FILE), resolved)
    tokenizer.save(os.path.join(write_dir, TOKENIZER_FILE))
    length = f"{config.train_minutes} minutes (at most {steps} steps)" if clock else f"{steps} steps"
    source = (f"task {task.name} ({task.vocabulary} ids)" if task else
              f"{len(train_files)} train / {len(val_files)} validation files")
    _log(
        f"{config.model} ({config.preset}): {num_parameters:,} parameters; "
        f"{source}; training for {length} of {tokens_per_step} tokens"
        + (f"; {distribution.name}: {distribution.num_replicas} replicas on "
           f"{distribution.num_workers} worker(s), {config.batch_size // distribution.num_replicas} "
           f"sequences each" if distribution.name != "default" else "")
    )

    views = {}
    if task:
        train_ds, val_ds = task_run.task_datasets(task, config, tokenizer.pad_id)
        views["probe_text"] = task_run.task_probe_text(task, tokenizer)
    else:
        train_ds, val_ds = _text_datasets(config, tokenizer, train_files, val_files)
    train_ds, val_ds = distribution.shard(train_ds), distribution.shard(val_ds)
    chief = distribution.is_chief
    callbacks = standard_callbacks(
        write_dir,
        tokenizer,
        tokens_per_step,
        train_ratio,
        val_ratio,
        config.sample_prompts,
        sample_tokens=config.sample_tokens,
        temperature=config.temperature,
        # The views only read the model (no collective op), so other workers,
        # whose files are thrown away, skip them instead of competing for CPU.
        samples=config.samples and chief and not task,  # a task's ids are not text
        validation_data=val_ds,
        hparams=resolved if config.hparams and chief else None,
        attention_maps=config.attention_maps and config.model == "transformer" and chief,
        position_loss=config.position_loss and chief,
        embedding_projector=config.embedding_projector and chief,
        histograms=config.histograms and chief,
        profile_steps=config.profile_steps if chief else None,
        restore_dir=os.path.join(output_dir, "backup"),
        **views,
    )
    # The HParams tab gets the final evaluation below, not the last interval's.
    hparams_logger = next((c for c in callbacks if isinstance(c, HParamsLogger)), None)
    if hparams_logger:
        hparams_logger.final_metrics_from_logs = False
    if clock:
        callbacks.insert(0, clock)
    if resuming:
        _log(f"resuming from the backup in {os.path.join(output_dir, 'backup')}")
    history = model.fit(
        train_ds,
        epochs=num_evals,
        steps_per_epoch=interval,
        validation_data=val_ds,
        callbacks=callbacks,
        verbose=config.verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    digest = weights_digest(model)
    _log(f"final weights digest: {digest}")
    if not distribution.is_chief:  # the chief saves and evaluates the same weights
        return {"steps": int(model.optimizer.iterations.numpy()), "weights_digest": digest}
    with atomic_path(os.path.join(output_dir, MODEL_FILE)) as tmp:
        model.save(tmp)

    if task:
        _log(f"scoring the answers of {task_run.FINAL_EVAL_BATCHES} held-out batches...")
        final = {"val_loss": history.history["val_loss"][-1],
                 **task_run.final_task_scores(model, task, config)}
    else:
        _log(f"evaluating on the validation files (up to {FINAL_EVAL_TOKENS:,} tokens)...")
        final = {
            **{f"val_{k}": v for k, v in evaluate_files(
                model, tokenizer, val_files, batch_size=config.batch_size,
                tokens_per_byte=val_ratio, max_tokens=FINAL_EVAL_TOKENS).items()},
            "xz_val_bits_per_byte": data.xz_bits_per_byte(val_files),
        }
    metrics = {
        "train_loss": _last_full_interval_loss(history.history, interval),
        **final,
        "steps": int(model.optimizer.iterations.numpy()),
        "tokens_seen": int(model.optimizer.iterations.numpy()) * tokens_per_step,
        "num_parameters": num_parameters,
        "stopped_by_clock": bool(clock and clock.stopped_at_step),
        "weights_digest": digest,
    }
    if metrics["train_loss"] is not None and train_ratio:
        metrics["train_bits_per_byte"] = metrics["train_loss"] * train_ratio / math.log(2)
        metrics["train_perplexity"] = math.exp(min(metrics["train_loss"], 700.0))
    if hparams_logger:
        hparams_logger.write_metrics(metrics, metrics["steps"])
    metrics["wall_time_seconds"] = time.time() - started
    write_json(os.path.join(output_dir, "metrics.json"), metrics)
    if task:
        _log(f"{task.name}: exact match {metrics['exact_match']:.3f}, token accuracy "
             f"{metrics['token_accuracy']:.3f}, answer log-likelihood "
             f"{metrics['answer_log_likelihood']:.3f} nats; "
             f"{metrics['wall_time_seconds']:.0f} s")
        _log(f"outputs in {output_dir}")
        return metrics
    sample = generate(
        model, tokenizer, config.sample_prompts[0], config.sample_tokens,
        sampler="temperature", temperature=config.temperature, seed=0, truncate="left",
    )
    _log(
        f"validation: {metrics['val_bits_per_byte']:.3f} bits per byte "
        f"(xz -9e on the same files: {metrics['xz_val_bits_per_byte']:.3f}); "
        f"loss {metrics['val_loss']:.3f}, perplexity {metrics['val_perplexity']:.2f}; "
        f"{metrics['wall_time_seconds']:.0f} s"
    )
    _log(f"sample:\n{config.sample_prompts[0]}{sample}")
    _log(f"outputs in {output_dir}")
    return metrics


def _text_datasets(config, tokenizer, train_files, val_files):
    """`(train, validation)` windows of the text files."""
    train_ds = data.text_dataset(
        train_files,
        tokenizer,
        config.sequence_length,
        config.batch_size,
        shuffle=True,
        repeat=True,
        seed=config.seed,
        shuffle_buffer=config.shuffle_buffer,
    )
    # The same first `val_steps` batches at every interval, cached: Keras keeps
    # its validation iterator across epochs, so a longer dataset would be
    # read further on at each interval and the curve would mix subsets.
    val_ds = data.text_dataset(val_files, tokenizer, config.sequence_length, config.batch_size)
    val_ds = val_ds.take(config.val_steps).cache()
    for _ in val_ds:  # fill the cache now, whole (a partly read cache warns)
        pass
    return train_ds, val_ds


def _last_full_interval_loss(history, interval):
    """Mean training loss of the last complete evaluation interval.

    A run stopped by the clock ends with a short interval (often one step),
    whose loss is one batch's: too noisy to report.
    """
    full = [loss for loss, steps in zip(history.get("loss", []), history.get("interval_steps", []))
            if steps >= interval]
    return full[-1] if full else (history["loss"][-1] if history.get("loss") else None)


def _log(message):
    print(message, flush=True)
