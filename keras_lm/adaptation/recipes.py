"""Fine-tuning recipes: named default configurations of `keras-lm finetune`.

A recipe sets the defaults; any flag given on the command line overrides
it. The measurements behind them are in BENCHMARKS.md.
"""

from keras_lm.errors import UsageError

FINETUNE_RECIPES = {
    # The built-in demo: a function's signature and docstring -> its body,
    # from the Python standard library (`keras_lm.data.docstring_pairs`),
    # fine-tuning the quickstart's model in <= 6 minutes on 2 cores (loading,
    # the pairs, the score before, 4 minutes of training, the score after).
    # The pairs kept fit the base's context whole (`pairs_corpus_max_bytes`
    # is set from the base: its context minus 16).
    "docstring_to_code": dict(
        pairs_corpus="docstring_to_code",
        steps=100_000,  # an upper bound: the clock ends the run
        train_minutes=4.0,
        batch_size=16,
        eval_interval=50,
        val_steps=16,
    ),
}


def finetune_recipe_defaults(name):
    """The settings of fine-tuning recipe `name` (a copy)."""
    if name not in FINETUNE_RECIPES:
        raise UsageError(f"recipe: unknown recipe {name!r}; choose from "
                         f"{', '.join(FINETUNE_RECIPES)}", argument="recipe")
    return dict(FINETUNE_RECIPES[name])
