"""Random channel dropout for multi-channel detector images (training only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class ChannelDropout(layers.Layer):
    """Zeroes whole channels of an image at random, independently per sample (training only).

    Unlike ``SpatialDropout2D`` the kept channels are *not* rescaled: a dropped channel
    mimics a sub-detector that saw nothing, and the energy scale of the others must not
    change.

    Args:
        rate: probability that a channel of a sample is zeroed.
        seed: seed of the layer's random generator.

    Example:
        >>> layer = ChannelDropout(0.5, seed=1)
        >>> tuple(layer(keras.ops.ones((2, 4, 4, 8)), training=True).shape)
        (2, 4, 4, 8)
    """

    def __init__(self, rate: float = 0.1, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"ChannelDropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        shape = ops.shape(x)
        keep_shape = (shape[0],) + (1,) * (len(x.shape) - 2) + (shape[-1],)
        u = keras.random.uniform(keep_shape, seed=self.seed_generator)
        return x * ops.cast(u >= self.rate, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
