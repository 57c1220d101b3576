"""``log(1 + x)`` scaling of counts inside a model (keras.ops only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class Log1p(layers.Layer):
    """Scales non-negative counts as ``scale * log(1 + max(x, 0))``.

    Occupancy maps span several decades (0 to a few thousand hits); the logarithm puts
    quiet and busy cells on one footing. Living in the model, the scaling travels with a
    saved ``.keras`` file, which therefore scores raw counts.

    Args:
        scale: factor applied after the logarithm (``1/log(1 + typical maximum)`` puts
            values near [0, 1]).

    Example:
        >>> y = Log1p(scale=0.5)(keras.ops.convert_to_tensor([[0.0, 1.0]]))
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        return ops.log1p(ops.maximum(x, 0.0)) * ops.cast(self.scale, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
