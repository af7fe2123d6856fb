"""Three attribution methods over one `Objective`: a score per prompt token.

- `integrated_gradients`: the path integral of the gradient from a baseline
  (every prompt token's embedding replaced by `<pad>`'s) to the input, times
  (input - baseline), summed over the embedding width (Sundararajan et al.,
  2017). Completeness: the scores sum to logp(input) - logp(baseline), up
  to the error of the quadrature (Gauss-Legendre over `steps` points,
  Captum's default rule: exact for polynomials of degree < 2 * steps).
- `gradient_x_input`: the gradient at the input times the input embedding,
  summed over the width: one backward pass, a first-order estimate.
- `occlusion`: remove each window of `span` prompt tokens from the sequence
  and measure how much the target's log-probability falls; a token's score
  is the mean fall over the windows that hold it. It needs no gradients
  (LIME's idea: perturb the input, watch the output).

Each returns a float64 array `(prompt tokens,)` and a dict of extras.
"""

import numpy as np

# Rows of interpolated inputs per backward pass: bounds memory for long prompts.
BATCH_SIZE = 32


def integrated_gradients(objective, pad_id, steps):
    """Scores whose sum is logp(input) - logp(baseline) (see the module doc)."""
    inputs = objective.embeddings().numpy()  # (time, width)
    baseline = inputs.copy()
    baseline[objective.attributed] = objective.pad_embedding(pad_id).numpy()
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (nodes + 1) / 2, weights / 2  # the rule moved from [-1, 1] to [0, 1]
    delta = inputs - baseline
    total = np.zeros_like(inputs, dtype="float64")
    for begin in range(0, steps, BATCH_SIZE):
        alpha = alphas[begin:begin + BATCH_SIZE, None, None]
        _, gradients = objective.gradients((baseline + alpha * delta).astype("float32"))
        total += np.tensordot(weights[begin:begin + BATCH_SIZE], gradients, axes=1)
    scores = (total * delta).sum(axis=-1)[objective.attributed]
    logp, baseline_logp = (float(v) for v in objective.from_embeddings(
        np.stack([inputs, baseline]).astype("float32")).numpy())
    return scores, {"baseline_logp": baseline_logp,
                    "completeness_gap": float(scores.sum() - (logp - baseline_logp))}


def gradient_x_input(objective):
    """The gradient at the input times the input embedding, summed over the width."""
    inputs = objective.embeddings().numpy()
    _, gradients = objective.gradients(inputs[None])
    return (gradients[0] * inputs).sum(axis=-1)[objective.attributed].astype("float64"), {}


def occlusion(objective, span=1):
    """The fall of the target's log-probability when a window of `span` tokens is removed."""
    ids = objective.token_ids
    start, stop = objective.start, objective.stop
    windows = list(range(start, stop - span + 1))
    occluded = np.stack([np.concatenate([ids[:w], ids[w + span:]]) for w in windows])
    falls = objective.logp() - np.concatenate(
        [objective.from_ids(occluded[i:i + BATCH_SIZE])
         for i in range(0, len(occluded), BATCH_SIZE)])
    sums, counts = np.zeros(stop - start), np.zeros(stop - start)
    for w, fall in zip(windows, falls):
        sums[w - start:w - start + span] += fall
        counts[w - start:w - start + span] += 1
    return sums / counts, {"span": span}


def spearman(a, b):
    """Spearman's rank correlation of two score arrays (ties share their mean rank).

    None when it is undefined (fewer than two tokens, or constant scores).

    Example:
    >>> spearman([0.1, 0.5, 0.3], [1.0, 9.0, 4.0]), spearman([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    """
    ra, rb = _ranks(np.asarray(a, "float64")), _ranks(np.asarray(b, "float64"))
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(values):
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype="float64")
    for value in np.unique(values):  # ties: the mean of their ranks
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks
