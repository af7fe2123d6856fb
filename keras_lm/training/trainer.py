"""One training run from a `TrainConfig`: what `keras-lm train` does, top to bottom."""

import math
import os
import shlex
import time

import keras

from keras_lm import compat
from keras_lm.generation import generate
from keras_lm.models import MODELS
from keras_lm.training.callbacks import WallClockSchedule, run_callbacks
from keras_lm.training.console import Console, ProgressLog, format_duration
from keras_lm.training.distribute import make_strategy, weights_digest
from keras_lm.training.run_directory import RunDirectory
from keras_lm.training.sources import make_source


def train(config, callbacks=()):
    """Runs training as configured; returns the final metrics dict.

    `callbacks`: more Keras callbacks for `fit` (the chief's only), e.g. a
    probe measured during training (`keras_lm.probes.InductionScores`).

    Writes into `config.output_dir` (see `RunDirectory`): `model.keras`,
    `tokenizer.json`, `config.json`, `logs/`, `checkpoints/best.keras`,
    `backup/`, `samples.txt` and `metrics.json`. Re-running the same
    configuration after a crash resumes from the last backup.

    Under `config.strategy` (see `keras_lm.training.distribute`) the model is
    built and compiled in the strategy's scope; only the chief writes the
    outputs and runs the final evaluation. Every process returns
    `weights_digest`.

    Example:
        from keras_lm.training import TrainConfig, train
        train(TrainConfig.from_recipe("tiny", output_dir="/tmp/tiny"))
    """
    started = time.time()
    config.validate()
    console = Console(config.verbose)
    # First: a strategy may configure TensorFlow's runtime (logical CPUs,
    # collective ops), which is only possible before it starts.
    distribution = make_strategy(config.strategy, config.devices, config.batch_size)
    source = make_source(config)  # text files or a synthetic task
    run_dir = RunDirectory(config.output_dir or default_output_dir(config), distribution)
    run_dir.prepare()
    try:
        keras.utils.set_random_seed(config.seed)
        keras.config.set_dtype_policy(config.precision)
        tokenizer = source.tokenizer(run_dir.resuming, run_dir.root)
        steps, interval = run_length(config, source)
        clock = wall_clock(config, started)
        model = compiled_model(config, tokenizer, distribution, steps, clock)
        resolved = resolved_config(config, source, model, distribution, steps,
                                   interval, run_dir.root)
        run_dir.start(resolved, tokenizer)
        console.line(start_line(config, source, model, distribution, steps, clock))
        if source.split_note:
            console.line(source.split_note)
        train_ds, val_ds = (distribution.shard(d)
                            for d in source.datasets(tokenizer, run_dir.resuming))
        progress = ProgressLog(console, steps, config.batch_size * config.sequence_length,
                               clock.seconds if clock else None, started,
                               config.batch_warmup_steps)
        extra_callbacks = callbacks
        callbacks = run_callbacks(config, source, run_dir, tokenizer, val_ds,
                                  resolved if config.hparams else None, clock, progress,
                                  extra_callbacks)
        if run_dir.resuming:
            console.line(f"resuming from the backup in {run_dir.backup_dir}")
        with compat.quiet_keras_data_warnings():
            history = model.fit(train_ds, epochs=steps // interval, steps_per_epoch=interval,
                                validation_data=val_ds, callbacks=callbacks.all,
                                verbose=0, shuffle=False)  # ProgressLog prints; data shuffles
        digest = weights_digest(model)
        if distribution.name != "default":  # each worker's, to compare them
            console.line(f"final weights digest: {digest}")
        trained_steps = int(model.optimizer.iterations.numpy())
        if not distribution.is_chief:  # the chief saves and evaluates the same weights
            return {"steps": trained_steps, "weights_digest": digest}
        run_dir.save_model(model)
        console.line(source.final_scores_note)
        metrics = {**final_metrics(config, source, model, tokenizer, history, clock),
                   "weights_digest": digest,
                   "train_loss": callbacks.logs.last_full_interval_loss(interval)}
        metrics.update(train_figures(metrics["train_loss"], source.tokens_per_byte))
        if callbacks.hparams:
            callbacks.hparams.write_metrics(metrics, trained_steps)
        metrics["wall_time_seconds"] = time.time() - started
        run_dir.write_metrics(metrics)
        console.line(summary(config, source, model, tokenizer, metrics, run_dir.root))
        return metrics
    finally:
        run_dir.cleanup()


def default_output_dir(config):
    """saved_models/<recipe>, or saved_models/run for a config made without one."""
    return os.path.join("saved_models", config.recipe or "run")


def wall_clock(config, started):
    """The clock's schedule with `--train_minutes`, else None.

    With it the clock drives the schedule (and `steps` is only an upper
    bound), so the optimizer gets a constant, assignable rate.
    """
    if not config.train_minutes:
        return None
    return WallClockSchedule(config.learning_rate, 60 * config.train_minutes, start=started,
                             schedule=config.schedule, decay_fraction=config.decay_fraction)


def compiled_model(config, tokenizer, distribution, steps, clock):
    """The configured model, compiled, its variables in the strategy's scope."""
    with distribution.strategy.scope():  # variables: one copy per replica
        model = build_model(config, tokenizer)
        model.compile(config.optimizer, learning_rate=config.learning_rate,
                      total_steps=None if clock else steps,
                      warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
                      clipnorm=config.clipnorm, jit_compile=jit_compile(config, distribution),
                      beta2=config.beta2, schedule=config.schedule,
                      decay_fraction=config.decay_fraction,
                      adam_learning_rate=config.adam_learning_rate)
    return model


def final_metrics(config, source, model, tokenizer, history, clock):
    """The finished model's held-out scores and the run's counts."""
    steps = int(model.optimizer.iterations.numpy())
    return {
        **source.final_scores(model, tokenizer, history),
        "steps": steps,
        "tokens_seen": config.tokens_after(steps),
        "num_parameters": model.count_params(),
        "stopped_by_clock": bool(clock and clock.stopped_at_step),
    }


def build_model(config, tokenizer):
    """The model of `config.model` / `config.preset`, sized for the tokenizer."""
    args = dict(config.model_args)
    if config.dropout is not None:
        args["dropout"] = config.dropout
    return MODELS[config.model].from_preset(
        config.preset, vocabulary_size=tokenizer.vocabulary_size,
        sequence_length=config.sequence_length, pad_id=tokenizer.pad_id, **args)


def run_length(config, source):
    """`(steps, eval_interval)`: steps rounded up to whole evaluation intervals."""
    steps = config.steps
    if config.epochs is not None:
        steps = source.steps_for_epochs(config.epochs, config.batch_size * config.sequence_length)
    interval = min(config.eval_interval, steps)
    return math.ceil(steps / interval) * interval, interval


def jit_compile(config, distribution):
    """`--jit_compile`, else the family's default ("auto"); off under tf.distribute,
    as Keras itself chooses there."""
    if config.jit_compile is not None:
        return config.jit_compile
    return False if distribution.name != "default" else "auto"


def resolved_config(config, source, model, distribution, steps, interval, root):
    """The settings as the run resolved them: what config.json records.

    `vocabulary_size` stays the setting (a task's ids, a subword size, or
    None); the model's own size is `model_config.vocabulary_size`.
    """
    return {
        **config.to_dict(), **source.facts(),
        "output_dir": root, "steps": steps, "eval_interval": interval,
        "sample_tokens": config.sample_length(),
        "num_parameters": model.count_params(),
        "model_config": model.get_config(),
        "distribute": {**distribution.describe(config.batch_size, config.learning_rate),
                       "jit_compile": bool(model.jit_compile)},
    }


def train_figures(train_loss, tokens_per_byte):
    """Bits per byte and perplexity of the final training loss (text sources)."""
    if train_loss is None or not tokens_per_byte:
        return {}
    return {"train_bits_per_byte": train_loss * tokens_per_byte / math.log(2),
            "train_perplexity": math.exp(min(train_loss, 700.0))}


def start_line(config, source, model, distribution, steps, clock):
    length = (f"{config.train_minutes} minutes (at most {steps} steps)" if clock
              else f"{steps} steps")
    line = (f"{config.model} ({config.preset}): {model.count_params():,} parameters; "
            f"{source.description()}; training for {length} of "
            f"{config.batch_size * config.sequence_length} tokens")
    if config.batch_warmup_steps:
        line += (f" (the first {config.batch_warmup_steps} of "
                 f"{config.tokens_after(1)})")
    if distribution.name != "default":
        line += (f"; {distribution.name}: {distribution.num_replicas} replicas on "
                 f"{distribution.num_workers} worker(s), "
                 f"{config.batch_size // distribution.num_replicas} sequences each")
    return line


def summary(config, source, model, tokenizer, metrics, root):
    """The closing block: the held-out figures, the counts, where the outputs
    are, a sample (text runs) and the next commands to try."""
    lines = [f"done in {format_duration(metrics['wall_time_seconds'])}: "
             f"{metrics['steps']:,} steps, {metrics['tokens_seen']:,} tokens seen"
             + (" (stopped by the clock)" if metrics["stopped_by_clock"] else "")]
    if source.has_text:
        lines.append(f"validation: {metrics['val_bits_per_byte']:.3f} bits per byte "
                     f"(xz -9e on the same text: {metrics['xz_val_bits_per_byte']:.3f}); "
                     f"loss {metrics['val_loss']:.3f}, perplexity {metrics['val_perplexity']:.2f}")
    else:
        lines.append(f"{config.task}: exact match {metrics['exact_match']:.3f}, token accuracy "
                     f"{metrics['token_accuracy']:.3f}, answer log-likelihood "
                     f"{metrics['answer_log_likelihood']:.3f} nats")
    lines.append(f"outputs in {root}: model.keras, tokenizer.json, config.json, metrics.json, "
                 "logs/, checkpoints/")
    if source.has_text:
        prompt = config.sample_prompts[0]
        sample = generate(model, tokenizer, prompt, config.sample_length(), sampler="temperature",
                          temperature=config.temperature, seed=0, truncate="left")
        lines.append(f"sample (temperature {config.temperature}):\n{prompt}{sample}")
    lines.append("next:")
    lines += [f"  {command}" for command in next_commands(source, root)]
    return "\n".join(lines)


def next_commands(source, root):
    """The commands a user runs next on this run directory."""
    directory = shlex.quote(root)
    if not source.has_text:
        return [f"keras-lm probe --model_dir={directory} --probe=icl_score",
                f"tensorboard --logdir {shlex.quote(os.path.join(root, 'logs'))}"]
    return [f"keras-lm generate --model_dir={directory} --prompt='def '",
            f"keras-lm eval --model_dir={directory}",
            f"keras-lm export --model_dir={directory}",
            f"tensorboard --logdir {shlex.quote(os.path.join(root, 'logs'))}"]
