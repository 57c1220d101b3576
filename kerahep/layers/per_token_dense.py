"""A dense projection with its own weights for each token position (keras.ops only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class PerTokenDense(layers.Layer):
    """``(batch, tokens, d_in)`` -> ``(batch, tokens, units)`` with a separate kernel per token.

    Token ``t`` is projected by ``kernel[t]`` only: tokens of different kinds (a lepton, a
    jet, missing energy) get their own embedding, and no value crosses from one token to
    another.

    Args:
        units: output width.
        use_bias: add a bias per token.
        activation: optional activation.
        kernel_initializer, bias_initializer: initializers.

    Example:
        >>> PerTokenDense(8)(keras.ops.zeros((2, 6, 5))).shape
        (2, 6, 8)
    """

    def __init__(self, units: int, use_bias: bool = True, activation=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        t, d = int(input_shape[-2]), int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(t, d, self.units), initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(t, self.units), initializer=self.bias_initializer) \
            if self.use_bias else None

    def call(self, x):
        y = ops.einsum("btd,tdu->btu", x, ops.cast(self.kernel, x.dtype))
        if self.bias is not None:
            y = y + ops.cast(self.bias, x.dtype)[None]
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}
