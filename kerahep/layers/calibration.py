"""Temperature scaling of predicted probabilities inside a model (keras.ops only)."""

from __future__ import annotations

import math

import keras
from keras import layers, ops

MODES = ("sigmoid", "softmax")


@keras.saving.register_keras_serializable(package="kerahep")
class TemperatureScaling(layers.Layer):
    """Rescales probabilities by a temperature ``T``: the calibration layer of a saved model.

    ``sigmoid`` (one probability per event, any shape): ``p' = sigmoid(logit(clip(p)) / T)``;
    ``softmax`` (probabilities over the last axis): ``p' = softmax(log(clip(p)) / T)``.
    ``clip`` keeps ``p`` in ``[epsilon, 1 - epsilon]`` so the logarithms stay finite. ``T > 1``
    softens over-confident scores, ``T < 1`` sharpens them, ``T = 1`` leaves them (up to the
    clip); the order of the events, and so the ROC curve, is unchanged. The temperature is
    fitted on held-out events (``training.calibrate``), then stored in the configuration, so
    the saved ``.keras`` file scores calibrated probabilities.

    Args:
        temperature: ``T`` (finite, > 0).
        mode: ``sigmoid`` or ``softmax``.
        epsilon: the clip of the probabilities (in (0, 0.5)).

    Example:
        >>> p = keras.ops.convert_to_tensor([[0.9], [0.2]])
        >>> q = TemperatureScaling(2.0)(p)  # 0.9 -> 0.75, 0.2 -> 1/3
    """

    def __init__(self, temperature: float = 1.0, mode: str = "sigmoid", epsilon: float = 1e-7, **kwargs):
        kwargs.setdefault("dtype", "float32")  # a probability output stays float32 under mixed precision
        super().__init__(**kwargs)
        temperature, epsilon = float(temperature), float(epsilon)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"TemperatureScaling: temperature must be finite and > 0, got {temperature}")
        if mode not in MODES:
            raise ValueError(f"TemperatureScaling: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0 < epsilon < 0.5:
            raise ValueError(f"TemperatureScaling: epsilon must be in (0, 0.5), got {epsilon}")
        self.temperature, self.mode, self.epsilon = temperature, mode, epsilon

    def call(self, p):
        p = ops.clip(ops.cast(p, self.compute_dtype), self.epsilon, 1.0 - self.epsilon)
        t = ops.cast(self.temperature, self.compute_dtype)
        if self.mode == "sigmoid":  # log(1 - p), not log1p: ONNX has no Log1p, and p <= 1 - epsilon
            return ops.sigmoid((ops.log(p) - ops.log(1.0 - p)) / t)
        return ops.softmax(ops.log(p) / t, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "mode": self.mode, "epsilon": self.epsilon}
