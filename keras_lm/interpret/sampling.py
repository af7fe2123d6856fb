"""SHAP and LIME over token masks: the `shap` and `lime` packages, model-agnostic.

Both methods see the model only through a *value function* of token masks,
`value(keep) -> (masks,)`, where `keep` is a boolean `(masks, tokens)`
array (True: the prompt token stays); `explain` passes
`masking.masked_logp`, so a removed token is deleted from the sequence (see
`keras_lm.interpret.masking` for why). The masks are the features: shap's
Text masker wants a Hugging Face-style tokenizer (`input_ids`,
`offset_mapping`), and LIME's text explainer splits words with a regular
expression; over our own token list, both work on any tokenizer and any
model, and both explain the same number as the gradient methods (the
target's log-probability, in nats).

- `shap_scores`: shap's `Permutation` explainer (antithetic permutations,
  forward and backward, 2 * tokens + 1 evaluations each). Its values sum
  exactly to value(all kept) - value(all removed), the Shapley efficiency
  property, for any number of permutations; more permutations bring each
  value closer to the Shapley value. (shap's Deep and Gradient explainers
  fail on Keras 3, shap #3672; the model-agnostic ones do not care.)
- `lime_scores`: `lime`'s `LimeTextExplainer` (position features,
  `bow=False`, every feature kept: `feature_selection="none"`): it removes
  a uniformly drawn number of tokens per sample, weights each sample by
  LIME's exponential kernel (width 25) over the cosine distance to the full
  prompt, and fits a weighted ridge regression; the scores are its
  coefficients. `details["r2"]` says how well that linear model fits.

`samples` is the number of masked inputs each evaluates (default:
`default_samples(tokens)`, shap's own default of 10 permutations, the same
budget for LIME); `seed` fixes the draws. Both are in `details`.

Example:
>>> import numpy as np
>>> weights = np.array([2.0, -1.0, 0.5])
>>> def value(keep):
...     return keep.astype(float) @ weights  # a linear model: its attributions are its weights
>>> scores, details = shap_scores(value, 3, samples=70, seed=0)
>>> scores.round(6).tolist(), details["permutations"]
([2.0, -1.0, 0.5], 10)
"""

import numpy as np

from keras_lm.errors import UsageError

DEFAULT_SEED = 0
PERMUTATIONS = 10  # shap's default for the Permutation explainer
LIME_KERNEL_WIDTH = 25  # lime's default for text
PACKAGES = {"shap": "shap", "lime": "lime"}


def require(method, argument="method"):
    """Imports the package `method` needs, or a one-line `UsageError` naming `argument` with
    the install command."""
    import importlib

    try:
        return importlib.import_module(PACKAGES[method])
    except ImportError:
        raise UsageError(f"{argument}: {method} needs the {PACKAGES[method]!r} package, which is "
                         "not installed; install it with: pip install 'keras-lm[explain]'",
                         argument=argument) from None


def default_samples(count):
    """Masked inputs evaluated by default for a prompt of `count` tokens."""
    return PERMUTATIONS * (2 * count + 1)


def shap_scores(value, count, samples, seed):
    """Shapley value estimates `(count,)` by shap's Permutation explainer, and its details."""
    shap = require("shap")
    permutations = max(1, samples // (2 * count + 1))

    def model(keep):
        return value(np.asarray(keep, dtype=bool))

    def masker(mask, _):  # the masked "input" is the mask itself
        return np.asarray(mask, dtype=bool)[None]

    # The explainer seeds NumPy's global generator with `seed` (shap's own rule).
    explainer = shap.explainers.Permutation(model, masker, seed=seed)
    result = explainer(np.ones((1, count)), max_evals=permutations * (2 * count + 1),
                       batch_size=2 * count + 1, silent=True)
    scores = np.asarray(result.values[0], dtype="float64")
    return scores, {"seed": int(seed), "samples": permutations * (2 * count + 1),
                    "permutations": permutations,
                    "empty_logp": float(np.ravel(result.base_values)[0])}


def lime_scores(value, count, samples, seed):
    """LIME's weighted-ridge coefficients `(count,)` (`lime`'s text explainer), and its details."""
    require("lime")  # its one-line message, before the import below can fail
    from lime.lime_text import LimeTextExplainer

    words = [str(i) for i in range(count)]  # one feature per prompt position

    def classifier(texts):
        keep = np.array([[word != "-" for word in text.split(" ")] for text in texts])
        return value(keep)[:, None]  # one "class": the log-probability itself

    explainer = LimeTextExplainer(kernel_width=LIME_KERNEL_WIDTH, split_expression=" ",
                                  bow=False, mask_string="-", feature_selection="none",
                                  random_state=seed)
    explanation = explainer.explain_instance(" ".join(words), classifier, labels=(0,),
                                             num_features=count, num_samples=int(samples))
    scores = np.zeros(count)
    for feature, weight in explanation.local_exp[0]:
        scores[feature] = weight
    return scores, {"seed": int(seed), "samples": int(samples),
                    "kernel_width": LIME_KERNEL_WIDTH, "r2": float(explanation.score)}
