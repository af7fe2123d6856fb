"""Fine-tuning recipes: named default configurations of `keras-lm finetune`.

One table for every head: a recipe's `head` says what it trains (`lm`: a
`FinetuneConfig` run, `finetune`; `classifier`: a `ClassifierConfig` run,
`finetune_classifier`), and its other entries are that config's settings.
A recipe sets the defaults; any setting given overrides it
(`FinetuneConfig.from_recipe`, `ClassifierConfig.from_recipe`). The measurements behind
them are in BENCHMARKS.md.

Example:
>>> recipe_head("classify_stdlib"), recipe_head("docstring_to_code")
('classifier', 'lm')
>>> finetune_recipe_defaults("classify_stdlib")["pooling"]
'mean'
"""

from keras_lm.adaptation.stdlib_labels import CLASSIFY_STDLIB
from keras_lm.errors import UsageError

FINETUNE_RECIPES = {
    # The built-in demo: a function's signature and docstring -> its body,
    # from the Python standard library (`keras_lm.data.docstring_pairs`),
    # fine-tuning the quickstart's model in <= 6 minutes on 2 cores (loading,
    # the pairs, the score before, 4 minutes of training, the score after).
    # The pairs kept fit the base's context whole (`pairs_corpus_max_bytes`
    # is set from the base: its context minus 16).
    "docstring_to_code": dict(
        head="lm",
        pairs_corpus="docstring_to_code",
        steps=100_000,  # an upper bound: the clock ends the run
        train_minutes=4.0,
        batch_size=16,
        eval_interval=50,
        val_steps=16,
    ),
    # The built-in labels: which standard-library package a function name
    # comes from (`keras_lm.adaptation.stdlib_labels`); a classifier head on
    # the quickstart's model, its data and settings those of CLASSIFY_STDLIB.
    "classify_stdlib": dict(head="classifier", **CLASSIFY_STDLIB),
}


def finetune_recipe_defaults(name):
    """The settings of fine-tuning recipe `name` (a copy, without its `head`)."""
    recipe = _recipe(name)
    return {key: value for key, value in recipe.items() if key != "head"}


def recipe_head(name):
    """What recipe `name` trains: `lm` or `classifier`."""
    return _recipe(name)["head"]


def _recipe(name):
    if name not in FINETUNE_RECIPES:
        raise UsageError(f"recipe: unknown recipe {name!r}; choose from "
                         f"{', '.join(FINETUNE_RECIPES)}", argument="recipe")
    return FINETUNE_RECIPES[name]
