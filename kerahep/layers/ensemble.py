"""The spread of a deep ensemble's members (keras.ops only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class EnsembleSpread(layers.Layer):
    """Standard deviation over a list of tensors of one shape (the members' outputs), element-wise.

    The population standard deviation (``ddof=0``, as ``numpy.std``): for two members it is
    half their difference. Beside a ``keras.layers.Average`` of the same inputs it gives a
    deep ensemble's per-event spread.

    Example:
        >>> a, b = keras.ops.ones((2, 1)), keras.ops.zeros((2, 1))
        >>> s = EnsembleSpread()([a, b])  # 0.5 everywhere
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 1:
            raise ValueError("EnsembleSpread takes a list of the members' outputs")
        return ops.std(ops.stack([ops.cast(t, self.compute_dtype) for t in inputs], axis=0), axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])
