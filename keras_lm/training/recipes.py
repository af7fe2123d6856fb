"""Recipes: named default configurations of a training run.

A recipe sets the defaults of a run; any setting given overrides it
(`TrainConfig.from_recipe(name, **given)`, which `keras-lm train` calls with
the flags given, by the rules of `apply_recipe`). The tuning record behind `quickstart` is in
BENCHMARKS.md.
"""

import copy

from keras_lm.errors import UsageError

RECIPES = {
    # The main job: a byte-level Transformer on the Python standard library,
    # tuned for the best validation bits per byte in <= 6 minutes on 2 cores
    # (start-up, training, final evaluation and sample). Small batches won:
    # more updates per token; QK-norm and a ReLU² MLP ended lower than
    # without them, here and in the character speedrun (BENCHMARKS.md).
    "quickstart": dict(
        model="transformer",
        preset="small",
        model_args=dict(qk_norm="rms", activation="relu2"),
        tokenizer="byte",
        corpus="pystdlib",
        sequence_length=256,
        batch_size=8,
        steps=100_000,  # an upper bound: the clock ends the run
        train_minutes=5.0,
        eval_interval=360,
        val_steps=16,
        optimizer="adamw",
        learning_rate=2e-3,
        sample_tokens=100,
    ),
    # The same job with the LSTM family, on the same time budget. A step's
    # time follows its window's length far more than its batch (each time
    # step of the recurrence has a fixed cost at this size), so shorter
    # windows in larger batches won: 32 x 64 beat 64 x 32 (3.011 against
    # 3.432 bits per byte), which beat 128 x 16 (BENCHMARKS.md). The window
    # no longer bounds generation: the state carries, so `max_length` lets
    # `generate` and the exports run it over 1,024 tokens.
    "lstm_quickstart": dict(
        model="lstm",
        preset="small",
        model_args=dict(max_length=1024),
        tokenizer="byte",
        corpus="pystdlib",
        sequence_length=32,
        batch_size=64,
        steps=100_000,
        train_minutes=4.6,
        eval_interval=300,
        val_steps=16,
        optimizer="adamw",
        learning_rate=3e-3,
        dropout=0.0,
        sample_tokens=60,
    ),
    # One text file at character level (`--train_files=input.txt`, split
    # inside at a line boundary): nanoGPT's CPU shape for Shakespeare
    # (4 layers x 4 heads x 128, context 64, batch 12, AdamW 1e-3, beta2
    # 0.99) with rotary positions, which reached nanoGPT's validation loss
    # in 0.43 of its time (benchmarks/speedrun.py, BENCHMARKS.md), and
    # QK-norm and a ReLU² MLP, lower at any equal time after that; by the clock.
    "char": dict(
        model="transformer",
        preset="small",
        model_args=dict(qk_norm="rms", activation="relu2"),
        tokenizer="char",
        corpus="pystdlib",
        sequence_length=64,
        batch_size=12,
        steps=100_000,
        train_minutes=5.0,
        eval_interval=500,
        val_steps=16,
        optimizer="adamw",
        learning_rate=1e-3,
        beta2=0.99,
        warmup_steps=100,
        dropout=0.0,
        sample_tokens=60,
    ),
    # Seconds, for smoke tests: a tiny model and a few steps.
    "tiny": dict(
        model="transformer",
        preset="tiny",
        tokenizer="byte",
        corpus="pystdlib",
        sequence_length=64,
        batch_size=8,
        steps=20,
        eval_interval=10,
        val_steps=2,
        sample_tokens=16,
        optimizer="adamw",
        learning_rate=3e-3,
    ),
}


def recipe_defaults(name):
    """The settings of recipe `name` (a deep copy: its model_args too)."""
    if name not in RECIPES:
        raise UsageError(f"recipe: unknown recipe {name!r}; choose from {', '.join(RECIPES)}", argument="recipe")
    return copy.deepcopy(RECIPES[name])


def apply_recipe(recipe, given):
    """The settings of a run: a recipe's (a dict), then those `given`, by three rules.

    - Given steps or epochs (and no train_minutes) turn the recipe's clock off.
    - A recipe's model_args belong to its model family: given model_args add
      to them (and win); a given model of another family drops them.
    - A recipe's sample_tokens is a cap: a shorter given context shortens
      the samples rather than failing.

    Example:
    >>> values = apply_recipe(recipe_defaults("quickstart"), {"model": "lstm", "steps": 9})
    >>> values["model_args"], values["train_minutes"], values["steps"]
    ({}, None, 9)
    """
    values = {**copy.deepcopy(recipe), **given}
    if "model_args" in given or "model" in given:
        kept = recipe.get("model_args", {}) if values.get("model") == recipe.get("model") else {}
        values["model_args"] = {**kept, **(given.get("model_args") or {})}
    if "sample_tokens" not in given and values.get("sample_tokens") is not None:
        context = values.get("sequence_length")
        if context is not None:
            values["sample_tokens"] = min(values["sample_tokens"], context - 1) or None
    if ("steps" in given or "epochs" in given) and "train_minutes" not in given:
        values["train_minutes"] = None
    return values
