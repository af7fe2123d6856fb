"""Unstructured magnitude pruning: the comparison for structured pruning (quality only).

Zeroes the `sparsity` share of the prunable weights (those of a unit, see
`keras_lm.prune.units`) with the smallest magnitude, ranked over the whole
model. The shapes stay: the model is no smaller or faster, only sparse;
it tells how much quality the same share of removed weights costs when
they may be chosen one by one.

Example:
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
>>> masked = magnitude_prune(model, 0.5)
>>> round(zero_share(masked), 2)
0.5
"""

import numpy as np

from keras_lm.prune.structured import check_sparsity
from keras_lm.prune.units import unit_groups


def magnitude_prune(model, sparsity):
    """A copy of `model` whose smallest `sparsity` share of prunable weights is zero."""
    check_sparsity(sparsity)
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    variables = _prunable(copy)
    magnitudes = np.concatenate([np.abs(np.asarray(v)).ravel() for v in variables])
    count = round(sparsity * magnitudes.size)
    threshold = np.partition(magnitudes, count - 1)[count - 1] if count else -1.0
    for variable in variables:
        value = np.asarray(variable)
        variable.assign(np.where(np.abs(value) <= threshold, 0.0, value).astype(value.dtype))
    return copy


def zero_share(model):
    """The share of prunable weights that are exactly zero."""
    values = [np.asarray(v).ravel() for v in _prunable(model)]
    return float(sum((v == 0).sum() for v in values) / sum(v.size for v in values))


def _prunable(model):
    return list({id(s.variable): s.variable
                 for group in unit_groups(model) for s in group.slices}.values())
