"""Run a layer only in training (augmentation inside a model that scores raw inputs)."""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="kerahep")
class TrainingOnly(layers.Layer):
    """Applies ``layer`` when called with ``training=True`` and passes inputs through otherwise.

    Keras' image augmentation layers (``RandomFlip``, ``RandomErasing``, ...) default to
    ``training=True`` when a model is called directly (``model(x)``), so a saved model
    with augmentation inside would augment at inference unless every caller passes
    ``training=False``. Wrapped, they act in ``fit`` (which passes ``training=True``) and
    never otherwise.

    Args:
        layer: the layer to wrap (a Keras layer or its serialized config).

    Example:
        >>> flip = TrainingOnly(keras.layers.RandomFlip("horizontal"))
        >>> x = keras.ops.reshape(keras.ops.arange(4.0), (1, 2, 2, 1))
        >>> bool(keras.ops.all(flip(x) == x))
        True
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        self.layer = layer

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)

    def call(self, x, training=None):
        if training:
            return self.layer(x, training=True)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}
