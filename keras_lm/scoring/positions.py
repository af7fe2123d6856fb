"""Scores by position in the context window: loss and accuracy at token 1, 2, ...

The picture of in-context learning: a model that uses its context predicts
better the further it has read. `PositionLoss` (TensorBoard) and the probes
(`per_position_loss`, `icl_score`, `induction`) all read these sums.

Example:
>>> import numpy as np
>>> from keras_lm.models import LSTMLM
>>> model = LSTMLM.from_preset("tiny", vocabulary_size=20, sequence_length=8)
>>> ids = np.random.default_rng(0).integers(0, 20, (4, 9)).astype("int32")
>>> losses = position_losses(model, [(ids[:, :-1], ids[:, 1:])])
>>> losses.shape, bool(np.all((losses > 2) & (losses < 4)))  # ~ln 20 = 3.0 untrained
((8,), True)
"""

import numpy as np

from keras_lm.scoring.tokens import scored_mask, token_scores


def position_sums(model, batches, pad_id=None):
    """Per position: summed loss (nats), summed hits and number of scored targets.

    `batches`: a finite iterable of `(inputs, targets)` (a dataset, a list of
    numpy pairs, ...), all of one `time`. Position p (1-based, index p - 1)
    is the prediction of token p + 1 after reading p tokens. A hit is an
    argmax prediction equal to the target. Targets equal to `pad_id` are
    left out; with `pad_id=None` every target counts.

    Returns three float64 numpy vectors `(loss_sums, hit_sums, counts)` of
    length `time`. Raises ValueError when `batches` is empty.
    """
    scores = token_scores(model)
    loss_sums = hit_sums = counts = None
    for batch in batches:
        inputs, targets = batch[0], batch[1]
        log_probs, predictions = (t.numpy() for t in scores(inputs, targets))
        targets = np.asarray(targets)
        mask = scored_mask(targets, pad_id)
        losses = np.where(mask, -log_probs.astype("float64"), 0.0).sum(axis=0)
        hits = (mask & (predictions == targets)).sum(axis=0)
        if counts is None:
            loss_sums, hit_sums, counts = losses, hits.astype("float64"), mask.sum(axis=0) * 1.0
        else:
            loss_sums, hit_sums, counts = loss_sums + losses, hit_sums + hits, counts + mask.sum(0)
    if counts is None:
        raise ValueError("batches is empty: no batch to score")
    return loss_sums, hit_sums, counts


def position_losses(model, batches, pad_id=None):
    """Mean loss (nats) at each position of the context window, a numpy vector.

    The mean of `position_sums`; a position with no scored target (all
    padding) reads 0.
    """
    loss_sums, _, counts = position_sums(model, batches, pad_id)
    return loss_sums / np.maximum(counts, 1.0)


__all__ = ["position_losses", "position_sums"]
