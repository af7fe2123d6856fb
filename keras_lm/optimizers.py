"""Optimizers by name, with linear warm-up then cosine decay and clipping."""

import keras

from keras_lm.errors import UsageError

OPTIMIZERS = ("adamw", "adam", "sgd", "momentum", "muon", "lion")

# Parameters that weight decay should not shrink (norm scales, biases and
# embeddings, as in GPT-2 / nanoGPT).
_NO_DECAY = ["bias", "gamma", "beta", "embeddings"]


def warmup_cosine(learning_rate, total_steps, warmup_steps=None, final_fraction=0.1):
    """Linear warm-up from 0 to `learning_rate`, then cosine decay to a fraction.

    Example:
    >>> schedule = warmup_cosine(1e-3, total_steps=100, warmup_steps=10)
    >>> round(float(schedule(10)), 6), round(float(schedule(100)), 6)
    (0.001, 0.0001)
    """
    if total_steps is None or total_steps <= 0:
        raise UsageError(f"total_steps must be > 0, got {total_steps}", argument="total_steps")
    if warmup_steps is None:
        warmup_steps = min(max(total_steps // 20, 1), 500)
    warmup_steps = min(int(warmup_steps), int(total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=max(int(total_steps) - warmup_steps, 1),
        alpha=final_fraction,
    )


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
):
    """Builds an optimizer by name; a schedule if `total_steps` is given.

    Args:
        name: one of `OPTIMIZERS`. `momentum` is SGD with Nesterov momentum
            0.9; `muon` is Keras' Muon (AdamW for embeddings and 1-D weights).
        learning_rate: peak learning rate.
        total_steps: length of the warm-up + cosine schedule; None for a
            constant rate.
        weight_decay: decoupled weight decay (adamw, muon, lion); biases,
            norm scales and embeddings are excluded.
        clipnorm: clip gradients to this global norm; None to disable.

    Example:
    >>> make_optimizer("momentum", 0.1, total_steps=100).__class__.__name__
    'SGD'
    """
    check_optimizer(name, learning_rate)
    rate = learning_rate
    if total_steps is not None:
        rate = warmup_cosine(learning_rate, total_steps, warmup_steps)
    common = {"learning_rate": rate, "global_clipnorm": clipnorm}
    if name == "adamw":
        optimizer = keras.optimizers.AdamW(weight_decay=weight_decay, beta_2=0.95, **common)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(beta_2=0.95, **common)
    elif name == "sgd":
        optimizer = keras.optimizers.SGD(**common)
    elif name == "momentum":
        optimizer = keras.optimizers.SGD(momentum=0.9, nesterov=True, **common)
    elif name == "lion":
        optimizer = keras.optimizers.Lion(weight_decay=weight_decay, **common)
    else:
        optimizer = keras.optimizers.Muon(weight_decay=weight_decay, **common)
    if name in ("adamw", "lion", "muon"):
        optimizer.exclude_from_weight_decay(var_names=_NO_DECAY)
    return optimizer
