"""Per-channel scaling of jet images, inside the model (keras.ops only)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class ChannelScale(layers.Layer):
    """Divides each channel by its own scale and (optionally) compresses it with a signed log.

    ``y = sign(x) * log1p(|x| / scale_c)`` (``log=True``) or ``y = x / scale_c``. Zeros stay
    zero, so sparse images stay sparse; signed channels (impact parameters) keep their sign.
    The scales are plain numbers in the layer's configuration, so a saved ``.keras`` model
    scores raw images without any side file.

    Args:
        scales: one positive number per channel (for example the median non-zero ``|x|``,
            see :func:`kerahep.data.jets.channel_scales`).
        log: apply the signed ``log1p`` compression after dividing.

    Example:
        >>> layer = ChannelScale([1.0, 2.0])
        >>> tuple(layer(keras.ops.ones((1, 3, 3, 2))).shape)
        (1, 3, 3, 2)
    """

    def __init__(self, scales, log: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.scales = [float(s) for s in scales]
        if not self.scales or any(not (s > 0) for s in self.scales):
            raise ValueError(f"ChannelScale needs positive scales, got {self.scales}")
        self.log = bool(log)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and int(channels) != len(self.scales):
            raise ValueError(f"ChannelScale has {len(self.scales)} scales but the input has {channels} channels")

    def call(self, x):
        inv = ops.convert_to_tensor([1.0 / s for s in self.scales], dtype=x.dtype)
        y = x * inv
        if self.log:
            y = ops.sign(y) * ops.log1p(ops.abs(y))
        return y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scales": list(self.scales), "log": self.log}
