"""Sparse additive noise for detector images (training only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class SparseNoise(layers.Layer):
    """Adds soft deposits at a small random fraction of pixels (training only).

    Mimics electronic noise and pile-up: each pixel of the chosen channels gets, with
    probability ``rate``, a deposit ``E * amplitude * max_c``, where ``E`` is exponential
    with mean one (drawn from the same uniform number that picks the pixel, so one
    random draw per pixel) and ``max_c`` is the
    largest ``|x|`` of that sample and channel. The image stays sparse (unlike
    ``GaussianNoise``, which would fill every pixel) and the noise follows each channel's
    own scale.

    Args:
        rate: fraction of pixels that receive a deposit.
        amplitude: size of a deposit relative to the channel's maximum.
        channels: indices of the channels that get noise (None: all).
        seed: seed of the layer's random generator.

    Example:
        >>> layer = SparseNoise(0.01, 0.05, channels=(3, 4), seed=1)
        >>> layer(keras.ops.ones((2, 4, 4, 8)), training=True).shape
        (2, 4, 4, 8)
    """

    def __init__(self, rate: float = 0.002, amplitude: float = 0.05, channels=None, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) <= 1.0 or float(amplitude) < 0:
            raise ValueError(f"SparseNoise needs 0 <= rate <= 1 and amplitude >= 0, got {rate}, {amplitude}")
        self.rate = float(rate)
        self.amplitude = float(amplitude)
        self.channels = None if channels is None else [int(c) for c in channels]
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        n = int(input_shape[-1])
        if self.channels is not None and any(not 0 <= c < n for c in self.channels):
            raise ValueError(f"SparseNoise channels {self.channels} out of range for {n} channels")
        self._channel_mask = [1.0 if (self.channels is None or c in self.channels) else 0.0 for c in range(n)]

    def call(self, x, training=None):
        if not training or self.rate == 0.0 or self.amplitude == 0.0:
            return x
        shape = ops.shape(x)
        spatial = tuple(range(1, len(x.shape) - 1))
        scale = ops.max(ops.abs(x), axis=spatial, keepdims=True) * self.amplitude
        u = keras.random.uniform(shape, seed=self.seed_generator)
        hit = u < self.rate
        # given a hit, u / rate is uniform in (0, 1): -log of it is exponential with mean one
        size = -ops.log(ops.maximum(u / self.rate, 1e-7))
        noise = ops.cast(ops.where(hit, size, 0.0), x.dtype)
        mask = ops.convert_to_tensor(self._channel_mask, dtype=x.dtype)
        return x + noise * scale * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "amplitude": self.amplitude,
                "channels": self.channels, "seed": self.seed}
