"""U-net skips: the first half's block outputs, weighted, into the second half's inputs."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_lm")
class UNetSkips(keras.layers.Layer):
    """One learned weight per skip: `x + weight[i] * skip`, the weights starting at 1.

    In a stack of `num_layers` blocks, the first `num_layers // 2` (the
    "encoder") keep their outputs; the second half takes them back in reverse
    order, the first block of the second half the last encoder output, and so
    on (modded-nanogpt's U-net, after the image models of the same name). A
    skip acts within one position, so decoding needs no state for it.

    `call(x, skip, index=i)`: `x + weight[i] * skip`.

    Example:
    >>> skips = UNetSkips(num_layers=4)
    >>> skips.skip_count, skips.source_of(2), skips.source_of(3), skips.source_of(1)
    (2, 1, 0, None)
    """

    def __init__(self, num_layers, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.skip_count = num_layers // 2

    def source_of(self, layer):
        """The encoder block whose output enters block `layer`'s input, or None."""
        decoder_index = layer - (self.num_layers - self.skip_count)
        if 0 <= decoder_index < self.skip_count:
            return self.skip_count - 1 - decoder_index
        return None

    def build(self, input_shape=None):
        self.skip_weights = self.add_weight(shape=(self.skip_count,), initializer="ones",
                                            name="skip_weights")

    def call(self, x, skip, index):
        return x + ops.cast(self.skip_weights[index], x.dtype) * skip

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers}
