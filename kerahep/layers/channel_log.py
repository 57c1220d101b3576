"""Logarithmic scaling of selected channels inside a model (keras.ops only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class ChannelLog1p(layers.Layer):
    """``log1p(max(x, 0) / scale)`` on the listed channels; the other channels pass unchanged.

    Calorimeter energies span orders of magnitude (a shower core near 1, single hits near
    the zero-suppression threshold); the logarithm makes both visible to a convolution.
    Zero (no hit) stays zero.

    Args:
        channels: indices of the channels to transform (channels last).
        scale: energy that maps to ``log(2)``; about the smallest recorded hit.

    Example:
        >>> x = keras.ops.ones((1, 2, 2, 2))
        >>> y = ChannelLog1p(channels=(0,), scale=1.0)(x)
        >>> round(float(y[0, 0, 0, 0]), 4), float(y[0, 0, 0, 1])
        (0.6931, 1.0)
    """

    def __init__(self, channels=(0,), scale: float = 0.002, **kwargs):
        super().__init__(**kwargs)
        self.channels = tuple(int(c) for c in ([channels] if isinstance(channels, int) else channels))
        self.scale = float(scale)
        if self.scale <= 0:
            raise ValueError(f"ChannelLog1p: scale must be positive, got {scale}")

    def build(self, input_shape):
        n = int(input_shape[-1])
        if self.channels and max(self.channels) >= n:
            raise ValueError(f"ChannelLog1p{self.channels}: the input has only {n} channels")
        self._mask = [c in self.channels for c in range(n)]

    def call(self, x):
        logged = ops.log1p(ops.maximum(x, 0.0) / ops.cast(self.scale, x.dtype))
        return ops.where(ops.convert_to_tensor(self._mask), logged, x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": list(self.channels), "scale": self.scale}
