"""Structured pruning: a smaller model without the least important heads, neurons, units.

`prune(model, sparsity, importance_data)` scores every unit
(`keras_lm.prune.units`: attention heads and MLP neurons of a Transformer,
units of an LSTM) by gradient-weighted magnitude on sample text
(`keras_lm.prune.importance`), ranks all units of the model together by
score per parameter (so a head, a few thousand weights, and a neuron, a
few dozen, compete on the same footing), and removes them from the least
important up until at least `sparsity` of the prunable parameters are gone,
keeping at least one unit of each kind in every layer. The result is a new
model of the same family with per-layer sizes (`num_heads=[...]`,
`intermediate_dim=[...]`, `head_dim`; an LSTM's `hidden_dim=[...]`) and the
kept slices of every weight: fewer weights, not masked zeros.

Example:
>>> import numpy as np
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
>>> windows = np.random.default_rng(0).integers(0, 256, (8, 17))
>>> pruned, report = prune(model, 0.25, windows)
>>> report["removed_share"] >= 0.25, pruned.count_params() < model.count_params()
(True, True)
>>> pruned.get_config()["head_dim"], len(pruned.get_config()["num_heads"])
(16, 2)
"""

import numpy as np

from keras_lm.errors import UsageError
from keras_lm.prune.importance import batches, weight_importance
from keras_lm.prune.units import MIN_UNITS, unit_groups

IMPORTANCE = "gradient_weighted_magnitude"


def prune(model, sparsity, importance_data, batch_size=8):
    """`(pruned_model, report)`: `model` less `sparsity` of its prunable parameters.

    Args:
        model: a `TransformerLM` or `LSTMLM`; left unchanged.
        sparsity: share of the prunable parameters to remove, in (0, 1).
        importance_data: token windows `(count, length + 1)` (consecutive
            ids, e.g. `keras_lm.data.sample_windows`), or an iterable of
            `(inputs, targets)` batches, to measure importance on.
        batch_size: windows per batch when `importance_data` is windows.

    Returns:
        The new model, and a dict: the sparsity asked for and reached
        (`removed_share`), prunable parameters before and after, parameters
        before and after, the kept sizes per layer and the units removed.
    """
    check_sparsity(sparsity)
    if isinstance(importance_data, (np.ndarray, list)):
        importance_data = batches(importance_data, batch_size)
    groups = unit_groups(model)
    scores = weight_importance(model, importance_data)
    removed = choose_units(groups, [g.scores(scores) for g in groups], sparsity)
    pruned = smaller_model(model, groups, removed)
    before, after = prunable_parameters(model), prunable_parameters(pruned)
    report = {
        "sparsity": float(sparsity),
        "removed_share": 1.0 - after / before,
        "importance": IMPORTANCE,
        "prunable_parameters_before": before,
        "prunable_parameters_after": after,
        "num_parameters_before": int(model.count_params()),
        "num_parameters_after": int(pruned.count_params()),
        "kept": kept_sizes(pruned),
        "removed_units": {f"{g.kind}s_layer_{g.layer}": sorted(int(u) for u in r)
                          for g, r in zip(groups, removed)},
    }
    return pruned, report


def check_sparsity(sparsity):
    """Raises UsageError unless `sparsity` is a number in (0, 1)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) \
            or not 0 < sparsity < 1:
        raise UsageError(f"sparsity must be in (0, 1) (the share of prunable parameters to "
                         f"remove), got {sparsity!r}", argument="sparsity")


def choose_units(groups, group_scores, sparsity):
    """Per group, the set of units to remove: lowest score per parameter first.

    Stops once the removed units hold `sparsity` of the groups' parameters;
    a unit whose removal would leave its layer below `MIN_UNITS` of its kind
    is skipped.
    """
    candidates = []
    total = 0
    for index, (group, scores) in enumerate(zip(groups, group_scores)):
        parameters = group.parameters_per_unit()
        total += int(parameters.sum())
        for unit in range(group.count):
            candidates.append((scores[unit] / parameters[unit], index, unit, parameters[unit]))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    removed = [set() for _ in groups]
    taken = 0
    for _, index, unit, parameters in candidates:
        if taken >= sparsity * total:
            break
        if groups[index].count - len(removed[index]) <= MIN_UNITS:
            continue
        removed[index].add(unit)
        taken += int(parameters)
    return removed


def smaller_model(model, groups, removed):
    """A new model of `model`'s family with `removed` units cut out of every weight."""
    drops = {}  # (weight path, axis) -> indices to delete along that axis
    for group, units in zip(groups, removed):
        for weight_slice in group.slices:
            key = (weight_slice.variable.path, weight_slice.axis)
            indices = weight_slice.indices[sorted(units)].ravel() if units else []
            drops.setdefault(key, set()).update(int(i) for i in indices)
    kept = {(g.kind, g.layer): g.count - len(units) for g, units in zip(groups, removed)}
    config = model.get_config()
    if hasattr(model, "blocks"):
        config.update(
            num_heads=[kept["head", i] for i in range(model.num_layers)],
            intermediate_dim=[kept.get(("neuron", i), 0) for i in range(model.num_layers)],
            head_dim=int(model.head_dim))
    else:
        config.update(hidden_dim=[kept["lstm_unit", i] for i in range(model.num_layers)])
    pruned = type(model).from_config(config)
    if len(pruned.weights) != len(model.weights):
        raise ValueError(f"the pruned model has {len(pruned.weights)} weights, the model "
                         f"{len(model.weights)}: cannot match them")
    for old, new in zip(model.weights, pruned.weights):
        value = np.asarray(old)
        for axis in range(value.ndim):
            indices = sorted(drops.get((old.path, axis), ()))
            if indices:
                value = np.delete(value, indices, axis=axis)
        if value.shape != tuple(new.shape):
            raise ValueError(f"weight {old.path}: pruned to {value.shape}, the smaller model "
                             f"has {tuple(new.shape)} at {new.path}")
        new.assign(value)
    return pruned


def prunable_parameters(model):
    """Parameters that belong to a unit (see `keras_lm.prune.units`), counted once."""
    seen = {}
    for group in unit_groups(model):
        for weight_slice in group.slices:
            seen[weight_slice.variable.path] = int(np.prod(weight_slice.variable.shape))
    return sum(seen.values())


def kept_sizes(model):
    """The per-layer sizes of `model`: heads and MLP widths, or LSTM units."""
    if hasattr(model, "blocks"):
        return {"num_heads": list(model.layer_num_heads), "head_dim": int(model.head_dim),
                "intermediate_dim": list(model.layer_intermediate_dims)}
    return {"hidden_dim": list(model.layer_hidden_dims)}
