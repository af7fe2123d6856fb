"""How much each weight matters: gradient-weighted magnitude on sample text.

For every prunable weight `w` the score is `sum over batches of |w * dL/dw|`,
where `L` is the mean next-token loss of a batch: the first-order Taylor
estimate of how much the loss changes when `w` is set to zero (Molchanov et
al. 2017, "Pruning convolutional neural networks for resource efficient
inference"), taken per batch so that opposite signs in different batches do
not cancel. A unit's score (`keras_lm.prune.units`) is the sum over its
weights.

Example:
>>> import numpy as np
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM(259, sequence_length=8, num_layers=1, num_heads=2, hidden_dim=8)
>>> windows = np.random.default_rng(0).integers(0, 256, (4, 9))
>>> scores = weight_importance(model, batches(windows, batch_size=2))
>>> scores[model.blocks[0].attention.qkv.kernel.path].shape
(8, 24)
"""

import keras
import numpy as np
import tensorflow as tf

from keras_lm.prune.units import unit_groups


def batches(windows, batch_size=8):
    """`(inputs, targets)` batches from int windows `(count, length + 1)` of consecutive tokens."""
    windows = np.asarray(windows, dtype="int32")
    if windows.ndim != 2 or windows.shape[1] < 2 or not len(windows):
        raise ValueError(f"windows must be (count, length + 1 >= 2) token ids, got shape "
                         f"{windows.shape}")
    return [(windows[i:i + batch_size, :-1], windows[i:i + batch_size, 1:])
            for i in range(0, len(windows), batch_size)]


def weight_importance(model, data, pad_id=None):
    """`{weight path: sum over batches |w * dL/dw|}` (NumPy) for every weight of a unit.

    `data`: an iterable of `(inputs, targets)` int batches (`batches`, or a
    `tf.data.Dataset` such as `keras_lm.data.text_dataset`'s). `pad_id`
    targets are left out of the loss (default: the model's `pad_id`).
    """
    variables = list({id(s.variable): s.variable
                      for group in unit_groups(model) for s in group.slices}.values())
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=model.pad_id if pad_id is None else pad_id)

    @tf.function
    def batch_scores(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        gradients = tape.gradient(loss, variables)
        return [tf.abs(tf.cast(v, "float32") * tf.cast(g, "float32"))
                for v, g in zip(variables, gradients)]

    totals = [np.zeros(v.shape, "float64") for v in variables]
    seen = 0
    for x, y in data:
        for total, score in zip(totals, batch_scores(tf.cast(x, "int32"), tf.cast(y, "int32"))):
            total += score.numpy()
        seen += 1
    if not seen:
        raise ValueError("data: no batches to measure importance on")
    return {v.path: total for v, total in zip(variables, totals)}
