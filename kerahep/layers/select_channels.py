"""Channel selection inside a model (keras.ops only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class SelectChannels(layers.Layer):
    """Keeps the listed channels of a channels-last input, in the given order.

    Puts the choice of inputs (say, the energy channel of a two-channel crop) inside the
    model, so a saved model scores the raw files whatever channels it uses.

    Args:
        channels: indices of the channels to keep.

    Example:
        >>> x = keras.ops.reshape(keras.ops.arange(8.0), (1, 2, 2, 2))
        >>> tuple(SelectChannels(channels=(1,))(x).shape)
        (1, 2, 2, 1)
    """

    def __init__(self, channels=(0,), **kwargs):
        super().__init__(**kwargs)
        self.channels = tuple(int(c) for c in ([channels] if isinstance(channels, int) else channels))
        if not self.channels:
            raise ValueError("SelectChannels needs at least one channel")

    def build(self, input_shape):
        n = input_shape[-1]
        if n is not None and max(self.channels) >= n:
            raise ValueError(f"SelectChannels{self.channels}: the input has only {n} channels")

    def call(self, x):
        return ops.take(x, list(self.channels), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (len(self.channels),)

    def get_config(self):
        return {**super().get_config(), "channels": list(self.channels)}
