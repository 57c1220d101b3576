"""Multiplicative energy smearing of detector images (training only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class EnergySmearing(layers.Layer):
    """Multiplies deposits by random factors near one (training only).

    ``x * max(1 + s_g * N(0,1), 0) * (1 + s_p * U)``, where the first factor is drawn once
    per sample and channel (a calibration or energy-scale shift) and the second once per
    pixel (the detector resolution; ``U`` is uniform with unit variance, ``|U| <= sqrt(3)``,
    because a full-image uniform draw costs a quarter of a normal one on a CPU). Zero
    pixels stay zero: no colour jitter, no fake deposits.

    Args:
        global_stddev: relative spread of the per-sample, per-channel scale.
        pixel_stddev: relative spread of the per-pixel factor.
        seed: seed of the layer's random generator.

    Example:
        >>> layer = EnergySmearing(0.05, 0.1, seed=1)
        >>> tuple(layer(keras.ops.ones((2, 4, 4, 8)), training=True).shape)
        (2, 4, 4, 8)
    """

    def __init__(self, global_stddev: float = 0.05, pixel_stddev: float = 0.05, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if float(global_stddev) < 0 or float(pixel_stddev) < 0:
            raise ValueError(f"EnergySmearing spreads must be >= 0, got {global_stddev}, {pixel_stddev}")
        self.global_stddev = float(global_stddev)
        self.pixel_stddev = float(pixel_stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training:
            return x
        shape = ops.shape(x)
        if self.global_stddev > 0:
            gshape = (shape[0],) + (1,) * (len(x.shape) - 2) + (shape[-1],)
            g = 1.0 + self.global_stddev * keras.random.normal(gshape, seed=self.seed_generator)
            x = x * ops.cast(ops.maximum(g, 0.0), x.dtype)
        if self.pixel_stddev > 0:
            u = keras.random.uniform(shape, minval=-3.0 ** 0.5, maxval=3.0 ** 0.5, seed=self.seed_generator)
            x = x * ops.cast(ops.maximum(1.0 + self.pixel_stddev * u, 0.0), x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "global_stddev": self.global_stddev,
                "pixel_stddev": self.pixel_stddev, "seed": self.seed}
