"""Optimizers by name, with a learning-rate schedule (warm-up then cosine, or
warm-up / stable / decay) and clipping."""

import math

import keras
from keras import ops

from keras_lm.errors import UsageError

OPTIMIZERS = ("adamw", "adam", "sgd", "momentum", "muon", "lion")
# `cosine`: linear warm-up, then cosine decay over the rest of the run.
# `wsd`: linear warm-up, the peak rate held, then a linear decay over the last
# `decay_fraction` of the run (warm-up / stable / decay).
SCHEDULES = ("cosine", "wsd")
# Adam's second-moment decay where `beta2` is not given: today's defaults.
DEFAULT_BETA2 = {"adamw": 0.95, "adam": 0.95, "muon": 0.999}
# Muon sends these variables to its AdamW part: a layer named `head` (an
# untied output head, the LSTM's head). Keras' Muon already sends embeddings
# and 1-D weights there. (The speedrun trains the head with Adam.)
MUON_ADAMW_LAYERS = [r"(^|/)head/"]

# Parameters that weight decay should not shrink (norm scales, biases and
# embeddings, as in GPT-2 / nanoGPT), nor the speedrun options' scalars (the
# smear gate and scale, the value-embedding mix, the U-net skip weights), which
# modded-nanogpt keeps out of decay too.
_NO_DECAY = ["bias", "gamma", "beta", "embeddings", "gate", "scale", "value_mix",
             "skip_weights"]


def warmup_cosine(learning_rate, total_steps, warmup_steps=None, final_fraction=0.1):
    """Linear warm-up from 0 to `learning_rate`, then cosine decay to a fraction.

    Example:
    >>> schedule = warmup_cosine(1e-3, total_steps=100, warmup_steps=10)
    >>> round(float(schedule(10)), 6), round(float(schedule(100)), 6)
    (0.001, 0.0001)
    """
    if total_steps is None or total_steps <= 0:
        raise UsageError(f"total_steps must be > 0, got {total_steps}", argument="total_steps")
    warmup_steps = _warmup_steps(total_steps, warmup_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=max(int(total_steps) - warmup_steps, 1),
        alpha=final_fraction,
    )


@keras.saving.register_keras_serializable(package="keras_lm")
class WarmupStableDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Warm-up / stable / decay by steps: linear warm-up from 0 to
    `learning_rate`, the peak held, then a linear decay over the last
    `decay_steps` to `final_fraction` of the peak.

    Unlike a cosine, the rate stays at its peak for most of the run, and the
    decay (where the loss drops) can be placed at any step.

    Example:
    >>> schedule = WarmupStableDecay(1e-3, total_steps=100, warmup_steps=10,
    ...                              decay_steps=20)
    >>> [round(float(schedule(s)), 6) for s in (5, 10, 80, 90, 100)]
    [0.0005, 0.001, 0.001, 0.00055, 0.0001]
    """

    def __init__(self, learning_rate, total_steps, warmup_steps, decay_steps,
                 final_fraction=0.1):
        self.learning_rate = learning_rate
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(decay_steps)
        self.final_fraction = final_fraction

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.minimum(step / max(self.warmup_steps, 1), 1.0)
        decay_start = self.total_steps - self.decay_steps
        progress = ops.clip((step - decay_start) / max(self.decay_steps, 1), 0.0, 1.0)
        decay = 1.0 - (1.0 - self.final_fraction) * progress
        return self.learning_rate * ops.minimum(warmup, decay)

    def get_config(self):
        return dict(learning_rate=self.learning_rate, total_steps=self.total_steps,
                    warmup_steps=self.warmup_steps, decay_steps=self.decay_steps,
                    final_fraction=self.final_fraction)


def rate_at_fraction(fraction, schedule="cosine", warmup_fraction=0.05, decay_fraction=0.2,
                     final_fraction=0.1):
    """The share of the peak rate when `fraction` of the run (steps or time) has passed.

    The same shapes as `warmup_cosine` and `WarmupStableDecay`, by progress
    instead of step: what a run timed by the clock follows.

    Example:
    >>> [round(rate_at_fraction(f, "wsd"), 3) for f in (0.025, 0.5, 0.9, 1.0)]
    [0.5, 1.0, 0.55, 0.1]
    >>> round(rate_at_fraction(1.0, "cosine"), 3)
    0.1
    """
    check_schedule(schedule, decay_fraction)
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < warmup_fraction:
        return fraction / warmup_fraction
    if schedule == "wsd":
        progress = max(fraction - (1 - decay_fraction), 0.0) / decay_fraction
        return 1.0 - (1.0 - final_fraction) * min(progress, 1.0)
    decay = min((fraction - warmup_fraction) / (1 - warmup_fraction), 1.0)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * decay))


def check_schedule(schedule, decay_fraction=0.2):
    """Raises UsageError unless `schedule` is one of `SCHEDULES`, `decay_fraction` in (0, 1]."""
    if schedule not in SCHEDULES:
        raise UsageError(f"schedule: unknown value {schedule!r}; choose from "
                         f"{', '.join(SCHEDULES)}", argument="schedule")
    if decay_fraction is None or not 0 < decay_fraction <= 1:
        raise UsageError(f"decay_fraction must be in (0, 1], got {decay_fraction}",
                         argument="decay_fraction")


def check_optimizer_options(name, beta2=None, adam_learning_rate=None):
    """Raises UsageError for a `beta2` outside (0, 1) or one the optimizer has not,
    and for an `adam_learning_rate` <= 0 or given to another optimizer than muon."""
    if beta2 is not None:
        if name not in DEFAULT_BETA2:
            raise UsageError(f"beta2={beta2}: not used by optimizer={name}; it is Adam's "
                             f"(optimizer {', '.join(DEFAULT_BETA2)})", argument="beta2")
        if not 0 < beta2 < 1:
            raise UsageError(f"beta2 must be in (0, 1), got {beta2}", argument="beta2")
    if adam_learning_rate is not None:
        if name != "muon":
            raise UsageError(f"adam_learning_rate={adam_learning_rate}: only used by "
                             f"optimizer=muon, got optimizer={name}",
                             argument="adam_learning_rate")
        if not adam_learning_rate > 0:
            raise UsageError(f"adam_learning_rate must be > 0, got {adam_learning_rate}",
                             argument="adam_learning_rate")


def check_optimizer(name, learning_rate):
    """Raises UsageError unless `name` is one of `OPTIMIZERS` and `learning_rate` > 0."""
    if name not in OPTIMIZERS:
        raise UsageError(f"optimizer: unknown value {name!r}; choose from {', '.join(OPTIMIZERS)}",
                         argument="optimizer")
    if not learning_rate or learning_rate <= 0:
        raise UsageError(f"learning_rate must be > 0, got {learning_rate}",
                         argument="learning_rate")


def make_optimizer(
    name="adamw",
    learning_rate=1e-3,
    total_steps=None,
    warmup_steps=None,
    weight_decay=0.1,
    clipnorm=1.0,
    *,
    beta2=None,
    schedule="cosine",
    decay_fraction=0.2,
    adam_learning_rate=None,
):
    """Builds an optimizer by name; a schedule if `total_steps` is given.

    Args:
        name: one of `OPTIMIZERS`. `momentum` is SGD with Nesterov momentum
            0.9; `muon` is Keras' Muon for the hidden matrices, AdamW for
            embeddings, 1-D weights and an output head (a layer named `head`).
        learning_rate: peak learning rate (muon: of its hidden matrices).
        total_steps: length of the schedule; None for a constant rate.
        warmup_steps: linear warm-up steps (default 5% of `total_steps`, at
            most 500).
        weight_decay: decoupled weight decay (adamw, muon, lion); biases,
            norm scales and embeddings are excluded.
        clipnorm: clip gradients to this global norm; None to disable.
        beta2: Adam's second-moment decay (adam, adamw, muon's AdamW part);
            None keeps 0.95 (adam, adamw) and Keras' 0.999 (muon).
        schedule: `cosine` or `wsd` (see `SCHEDULES`).
        decay_fraction: share of the steps the `wsd` schedule decays over.
        adam_learning_rate: muon only: the peak rate of its AdamW part
            (default `learning_rate`); it follows the same schedule.

    Example:
    >>> make_optimizer("momentum", 0.1, total_steps=100).__class__.__name__
    'SGD'
    >>> muon = make_optimizer("muon", 0.02, adam_learning_rate=0.002)
    >>> round(muon.adam_lr_ratio, 6)
    0.1
    """
    check_optimizer(name, learning_rate)
    check_schedule(schedule, decay_fraction)
    check_optimizer_options(name, beta2, adam_learning_rate)
    if total_steps is not None and total_steps <= 0:
        raise UsageError(f"total_steps must be > 0, got {total_steps}", argument="total_steps")
    rate = learning_rate
    if total_steps is not None and schedule == "wsd":
        warmup = _warmup_steps(total_steps, warmup_steps)
        rate = WarmupStableDecay(learning_rate, total_steps, warmup,
                                 decay_steps=max(round(decay_fraction * total_steps), 1))
    elif total_steps is not None:
        rate = warmup_cosine(learning_rate, total_steps, warmup_steps)
    common = {"learning_rate": rate, "global_clipnorm": clipnorm}
    beta2 = DEFAULT_BETA2.get(name) if beta2 is None else beta2
    if name == "adamw":
        optimizer = keras.optimizers.AdamW(weight_decay=weight_decay, beta_2=beta2, **common)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(beta_2=beta2, **common)
    elif name == "sgd":
        optimizer = keras.optimizers.SGD(**common)
    elif name == "momentum":
        optimizer = keras.optimizers.SGD(momentum=0.9, nesterov=True, **common)
    elif name == "lion":
        optimizer = keras.optimizers.Lion(weight_decay=weight_decay, **common)
    else:
        ratio = 1 if adam_learning_rate is None else adam_learning_rate / learning_rate
        optimizer = keras.optimizers.Muon(weight_decay=weight_decay, adam_beta_2=beta2,
                                          adam_lr_ratio=ratio,
                                          exclude_layers=list(MUON_ADAMW_LAYERS), **common)
    if name in ("adamw", "lion", "muon"):
        optimizer.exclude_from_weight_decay(var_names=_NO_DECAY)
    return optimizer


def _warmup_steps(total_steps, warmup_steps):
    """`warmup_steps`, by default 5% of the steps (at most 500), never past the end."""
    if warmup_steps is None:
        warmup_steps = min(max(total_steps // 20, 1), 500)
    return min(int(warmup_steps), int(total_steps))
