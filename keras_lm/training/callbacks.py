"""Callbacks that make a language-model run readable as it trains."""

import dataclasses
import math
import os
import time

import keras
import tensorflow as tf

from keras_lm import data
from keras_lm.errors import TrainingDiverged
from keras_lm.generation import generate
from keras_lm.optimizers import rate_at_fraction
from keras_lm.training.distribute import backup_callback
from keras_lm.training.extras_budget import BudgetedExtra, ExtrasBudget
from keras_lm.training.tensorboard import HParamsLogger, tensorboard_callbacks


class LanguageModelLogs(keras.callbacks.Callback):
    """Adds bits per byte, tokens per second and tokens seen to the epoch logs.

    Place it before `keras.callbacks.TensorBoard` in the callback list: the
    logs dict is shared, so TensorBoard then writes these scalars too
    (`val_bits_per_byte` goes to the validation run as `bits_per_byte`).

    Args:
        tokens_per_step: tokens in one training batch (batch x sequence).
        tokens_per_byte: ratio that converts nats per token into bits per
            byte (see `keras_lm.data.tokens_per_byte`).
        val_tokens_per_byte: the same ratio for the validation files.
        small_batch_steps: the first steps that read a quarter of
            `tokens_per_step` (`--batch_warmup_steps`).
    """

    def __init__(self, tokens_per_step, tokens_per_byte, val_tokens_per_byte=None,
                 small_batch_steps=0):
        super().__init__()
        self.tokens_per_step = tokens_per_step
        self.small_batch_steps = small_batch_steps
        self.tokens_per_byte = tokens_per_byte
        self.val_tokens_per_byte = val_tokens_per_byte or tokens_per_byte
        self.intervals = []  # (steps, mean training loss) of each interval

    def last_full_interval_loss(self, interval):
        """Mean training loss of the last interval of `interval` steps.

        A run stopped by the clock ends with a short interval (often one
        step), whose loss is one batch's: too noisy to report.
        """
        if not self.intervals:
            return None
        full = [loss for steps, loss in self.intervals if steps >= interval]
        return full[-1] if full else self.intervals[-1][1]

    def on_epoch_begin(self, epoch, logs=None):
        self._start_time = self._last_batch_end = time.perf_counter()
        self._start_step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        # Throughput counts training only, not the validation that follows.
        self._last_batch_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        step = int(self.model.optimizer.iterations.numpy())
        steps = step - self._start_step
        seconds = self._last_batch_end - self._start_time
        tokens = self._tokens_after(step) - self._tokens_after(self._start_step)
        logs["tokens_per_second"] = tokens / max(seconds, 1e-9)
        if "loss" in logs:
            self.intervals.append((steps, float(logs["loss"])))
        logs["tokens_seen"] = float(self._tokens_after(step))
        for prefix, ratio in (("", self.tokens_per_byte), ("val_", self.val_tokens_per_byte)):
            if prefix + "loss" in logs and ratio:  # no ratio on synthetic tasks
                logs[prefix + "bits_per_byte"] = logs[prefix + "loss"] * ratio / math.log(2)

    def _tokens_after(self, step):
        return data.tokens_after(step, self.tokens_per_step, self.small_batch_steps)


class SampleWriter(BudgetedExtra, keras.callbacks.Callback):
    """Generates text for fixed prompts every `every` epochs.

    Writes it to TensorBoard's text tab (`log_dir`, tag `samples`) and appends
    it to `samples_path`, each with the step and the sampler settings. With a
    `budget` (an `ExtrasBudget`, a timed run's): while it allows, and at the end.
    """

    extra_name = "samples"

    def __init__(
        self,
        tokenizer,
        prompts,
        log_dir=None,
        samples_path=None,
        every=1,
        max_new_tokens=128,
        temperature=0.8,
        seed=0,
        budget=None,
    ):
        super().__init__()
        self.budget = budget
        self.tokenizer = tokenizer
        self.prompts = list(prompts)
        self.samples_path = samples_path
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self._writer = tf.summary.create_file_writer(log_dir) if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        self.extra_due((epoch + 1) % self.every == 0)

    def on_train_end(self, logs=None):
        self.extra_at_end()

    def run_extra(self, step):
        self.write_samples(step)

    def write_samples(self, step):
        """Generates one sample per prompt; returns them as a list of str."""
        # All prompts in one batch; long ones keep their end (the context is fixed).
        samples = generate(
            self.model,
            self.tokenizer,
            self.prompts,
            self.max_new_tokens,
            sampler="temperature",
            temperature=self.temperature,
            seed=self.seed,
            truncate="left",
        )
        header = (
            f"step {step} (sampler=temperature, temperature={self.temperature}, seed={self.seed}, "
            f"max_new_tokens={self.max_new_tokens})"
        )
        if self.samples_path:
            with open(self.samples_path, "a", encoding="utf-8") as f:
                for prompt, sample in zip(self.prompts, samples):
                    f.write(f"=== {header}\n{prompt}{sample}\n\n")
        if self._writer is not None:
            # Markdown code blocks keep indentation readable in TensorBoard.
            markdown = "\n\n".join(
                f"**{header}**\n\n```\n{p}{s}\n```" for p, s in zip(self.prompts, samples)
            )
            with self._writer.as_default():
                tf.summary.text("samples", markdown, step=step)
            self._writer.flush()
        return samples


class WallClockSchedule(keras.callbacks.Callback):
    """Trains for a fixed wall-clock time, the learning rate following the clock.

    Progress is `elapsed / seconds` instead of `step / total_steps`: linear
    warm-up over the first `warmup_fraction`, then cosine decay to
    `final_fraction` of the peak (or `schedule="wsd"`: the peak held, then a
    linear decay over the last `decay_fraction`; see
    `keras_lm.optimizers.rate_at_fraction`), and training stops when the
    time is up. A
    run on a machine of any speed then ends on time with its schedule
    complete (the quickstart promises six minutes on two cores, and these
    shared machines vary by +-40% from minute to minute).

    The optimizer needs a constant (variable) learning rate, not a schedule.
    A run resumed from a backup starts its clock again.
    """

    def __init__(self, learning_rate, seconds, start=None, warmup_fraction=0.05,
                 final_fraction=0.1, schedule="cosine", decay_fraction=0.2):
        super().__init__()
        self.schedule = schedule
        self.decay_fraction = decay_fraction
        self.learning_rate = learning_rate
        self.seconds = seconds
        self.start = time.time() if start is None else start
        self.warmup_fraction = warmup_fraction
        self.final_fraction = final_fraction
        self.stopped_at_step = None

    def rate_at(self, fraction):
        """The learning rate when `fraction` of the time has passed."""
        return self.learning_rate * rate_at_fraction(
            fraction, self.schedule, self.warmup_fraction, self.decay_fraction,
            self.final_fraction)

    def on_train_batch_begin(self, batch, logs=None):
        fraction = (time.time() - self.start) / self.seconds
        if fraction >= 1:
            self.model.stop_training = True
            self.stopped_at_step = int(self.model.optimizer.iterations.numpy())
        self.model.optimizer.learning_rate = self.rate_at(min(fraction, 1.0))


class StopOnDivergence(keras.callbacks.Callback):
    """Ends `fit` at the first step whose loss is NaN or infinite, by raising `TrainingDiverged`.

    Keras' `TerminateOnNaN` only sets `stop_training`: `fit` then still ends
    its epoch (the backup saves the NaN weights, the trainer saves them as
    `model.keras`) and the run reports "done". Raising here leaves every file
    as the last good evaluation wrote it.

    Example:
    >>> callback = StopOnDivergence(learning_rate=1e9, checkpoint="/none/best.keras")
    >>> callback.advice()
    'lower learning_rate (it is 1e+09) or lengthen warmup_steps; model.keras was not written'
    """

    def __init__(self, learning_rate, checkpoint):
        super().__init__()
        self.learning_rate = learning_rate
        self.checkpoint = checkpoint

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(self.model.optimizer.iterations.numpy())
            raise TrainingDiverged(step, float(loss), self.advice())

    def advice(self):
        advice = (f"lower learning_rate (it is {self.learning_rate:g}) or lengthen "
                  "warmup_steps; model.keras was not written")
        if os.path.exists(self.checkpoint):
            advice += f"; the last good checkpoint is {self.checkpoint}"
        return advice


@dataclasses.dataclass
class RunCallbacks:
    """The callbacks of a `keras-lm train` run, and the two the trainer reads after `fit`.

    `logs` gives the final training loss (`last_full_interval_loss`);
    `hparams` (or None) records the final metrics for the HParams tab.
    """

    logs: LanguageModelLogs
    hparams: HParamsLogger
    all: list


def run_callbacks(config, source, run_dir, tokenizer, validation_data, hparams, clock=None,
                  progress=None, extra=()):
    """The callbacks of a run, in the order they must run.

    The clock (a `WallClockSchedule`, when the run is timed) sets the
    learning rate first; `LanguageModelLogs` adds bits per byte and
    throughput before the console (`progress`, a `ProgressLog`) and
    TensorBoard write the logs; then the samples (text
    sources), TensorBoard with keras_lm's views, the best checkpoint, the
    resume backup (two copies: a crash while one is written leaves the other
    whole); `StopOnDivergence` ends the run at a NaN loss. `extra` callbacks (a caller's, e.g. the
    probes' `InductionScores`: training never imports the probes) run after
    the console and before TensorBoard. Only the chief draws the views: they only
    read the model (no collective op), so the other workers, whose files are
    thrown away, skip them instead of competing for the CPU. In a timed run
    the extras (samples, attention, loss by position, projector) share an
    `ExtrasBudget`: 5% of the clock, drawn while it allows and at the end.
    """
    chief = run_dir.distribution.is_chief
    log_dir = os.path.join(run_dir.write_dir, "logs")
    budget = ExtrasBudget.for_run(clock, extra_names(config, source, chief))
    logs = LanguageModelLogs(config.batch_size * config.sequence_length, source.tokens_per_byte,
                             source.val_tokens_per_byte, config.batch_warmup_steps)
    checkpoint = os.path.join(run_dir.write_dir, "checkpoints", "best.keras")
    divergence = StopOnDivergence(config.learning_rate, checkpoint)
    callbacks = ([c for c in (clock, logs, progress) if c] + [divergence]
                 + (list(extra) if chief else []))
    if config.samples and chief and source.has_text:
        callbacks.append(SampleWriter(
            tokenizer, config.sample_prompts, log_dir=os.path.join(log_dir, "samples"),
            samples_path=run_dir.own_path("samples.txt"), max_new_tokens=config.sample_length(),
            temperature=config.temperature, budget=budget))
    views = tensorboard_callbacks(
        log_dir, tokenizer, validation_data, None,
        attention_maps=config.attention_maps and config.model == "transformer" and chief,
        position_loss=config.position_loss and chief,
        embedding_projector=config.embedding_projector and chief,
        histograms=config.histograms and chief,
        profile_steps=config.profile_steps if chief else None,
        probe_text=source.probe_text, budget=budget)
    # The HParams tab gets the run's final evaluation, written by the trainer.
    hparams_logger = (HParamsLogger(log_dir, hparams, final_metrics_from_logs=False)
                      if config.hparams and chief else None)
    callbacks += views + ([hparams_logger] if hparams_logger else []) + [
        keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True),
        backup_callback(run_dir.own_path("backup"), run_dir.backup_dir),
    ]
    return RunCallbacks(logs, hparams_logger, callbacks)


def extra_names(config, source, chief):
    """The evaluation-time extras a run draws (the chief only): an `ExtrasBudget`'s names."""
    if not chief:
        return ()
    wanted = dict(samples=config.samples and source.has_text,
                  attention_maps=config.attention_maps and config.model == "transformer",
                  position_loss=config.position_loss,
                  embedding_projector=config.embedding_projector)
    return tuple(name for name, on in wanted.items() if on)
