"""Structured pruning: smaller real models without their least important heads,
neurons and LSTM units (`prune`), with unstructured magnitude pruning
(`magnitude_prune`) as the comparison. `keras-lm prune` runs it on a run
directory (`prune_run`). See docs/pruning.md.
"""

from keras_lm.prune.importance import weight_importance
from keras_lm.prune.structured import prune
from keras_lm.prune.units import unit_groups
from keras_lm.prune.unstructured import magnitude_prune

__all__ = ["magnitude_prune", "prune", "unit_groups", "weight_importance"]
