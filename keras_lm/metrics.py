"""Metrics of a language model that ignore padding."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_lm")
class TokenAccuracy(keras.metrics.Mean):
    """Share of next tokens predicted exactly (argmax), padding ignored.

    Example:
    >>> metric = TokenAccuracy(ignore_id=0)
    >>> metric.update_state([[1, 0]], [[[0.0, 9.0], [9.0, 0.0]]])
    >>> float(metric.result())
    1.0
    """

    def __init__(self, ignore_id=None, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_id = ignore_id

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        hits = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), y_true), self.dtype)
        if self.ignore_id is not None:
            mask = ops.cast(ops.not_equal(y_true, self.ignore_id), self.dtype)
            sample_weight = mask if sample_weight is None else sample_weight * mask
        return super().update_state(hits, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "ignore_id": self.ignore_id}
