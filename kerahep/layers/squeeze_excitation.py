"""Squeeze-and-excitation: channel gates from globally pooled features (keras.ops only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class SqueezeExcitation(layers.Layer):
    """Rescales the channels of ``(batch, height, width, channels)`` maps by learned gates.

    The maps are averaged over space ("squeeze"), passed through a bottleneck of
    ``channels // ratio`` units and a sigmoid ("excitation"), and multiply the input
    (Hu et al., arXiv:1709.01507).

    Args:
        ratio: channel reduction of the bottleneck.
        min_units: smallest bottleneck width.

    Example:
        >>> se = SqueezeExcitation(ratio=4)
        >>> tuple(se(keras.ops.ones((2, 8, 8, 16))).shape)
        (2, 8, 8, 16)
    """

    def __init__(self, ratio: int = 4, min_units: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.ratio = int(ratio)
        self.min_units = int(min_units)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        units = max(channels // self.ratio, self.min_units)
        self.reduce = layers.Dense(units, activation="relu", name="reduce", dtype=self.dtype_policy)
        self.expand = layers.Dense(channels, activation="sigmoid", name="expand", dtype=self.dtype_policy)
        self.reduce.build((None, channels))
        self.expand.build((None, units))

    def call(self, x):
        s = ops.mean(x, axis=(1, 2))
        s = self.expand(self.reduce(s))
        return x * ops.cast(s, x.dtype)[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio, "min_units": self.min_units}
