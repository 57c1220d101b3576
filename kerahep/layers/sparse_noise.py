"""Sparse additive noise for detector images (training only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class SparseNoise(layers.Layer):
    """Adds soft deposits at a small random fraction of pixels (training only).

    Mimics electronic noise and pile-up: ``round(rate * pixels)`` deposits per image land on
    random pixels of the chosen channels, each ``E * amplitude * max_c``, where ``E`` is
    exponential with mean one and ``max_c`` is the largest ``|x|`` of that image and
    channel. The image stays sparse (unlike ``GaussianNoise``, which would fill every
    pixel), the noise follows each channel's own scale, and only the deposits are drawn
    (then scattered), not a random number per pixel.

    Args:
        rate: fraction of pixels that receive a deposit.
        amplitude: size of a deposit relative to the channel's maximum.
        channels: indices of the channels that get noise (None: all).
        seed: seed of the layer's random generator.

    Example:
        >>> layer = SparseNoise(0.01, 0.05, channels=(3, 4), seed=1)
        >>> tuple(layer(keras.ops.ones((2, 4, 4, 8)), training=True).shape)
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
        if len(input_shape) != 4 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"SparseNoise needs images (batch, height, width, channels) of known size, got {input_shape}")
        self._chosen = list(range(n)) if self.channels is None else list(self.channels)
        self._hits = int(round(self.rate * int(input_shape[1]) * int(input_shape[2]) * len(self._chosen)))

    def call(self, x, training=None):
        if not training or self._hits == 0 or self.amplitude == 0.0:
            return x
        shape = ops.shape(x)
        batch, height, width = shape[0], int(x.shape[1]), int(x.shape[2])
        k, n_ch = self._hits, len(self._chosen)
        u = keras.random.uniform((batch, k, 4), seed=self.seed_generator)
        rows = ops.minimum(ops.cast(u[..., 0] * height, "int32"), height - 1)
        cols = ops.minimum(ops.cast(u[..., 1] * width, "int32"), width - 1)
        pick = ops.minimum(ops.cast(u[..., 2] * n_ch, "int32"), n_ch - 1)
        chans = ops.take(ops.convert_to_tensor(self._chosen, dtype="int32"), pick)
        size = -ops.log(ops.maximum(u[..., 3], 1e-7))  # exponential, mean one
        scale = ops.cast(ops.max(ops.abs(x), axis=(1, 2)), "float32") * self.amplitude  # (batch, channels)
        values = size * ops.take_along_axis(scale, chans, axis=1)
        samples = ops.broadcast_to(ops.arange(batch, dtype="int32")[:, None], (batch, k))
        idx = ops.reshape(ops.stack([samples, rows, cols, chans], axis=-1), (-1, 4))
        noise = ops.scatter(idx, ops.reshape(values, (-1,)), shape)
        return x + ops.cast(noise, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "amplitude": self.amplitude,
                "channels": self.channels, "seed": self.seed}
