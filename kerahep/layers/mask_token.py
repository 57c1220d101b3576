"""Put a learned mask token in the place of every masked token (the MAE decoder input)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class MaskTokenInsert(layers.Layer):
    """``(visible (batch, n_visible, dim), ids_restore (batch, tokens))`` -> ``(batch, tokens, dim)``.

    Appends one learned mask token per masked position to the visible tokens and undoes
    the shuffle of :class:`~kerahep.layers.token_masking.RandomTokenMasking`, so every
    token is back at its position, the masked ones holding the mask token.

    Args:
        initializer: initializer of the mask token.

    Example:
        >>> from kerahep.layers.token_masking import RandomTokenMasking
        >>> vis, mask, ids = RandomTokenMasking(0.5)(keras.ops.ones((2, 6, 4)))
        >>> MaskTokenInsert()(vis, ids).shape
        (2, 6, 4)
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, visible_shape, ids_restore_shape=None):
        self.mask_token = self.add_weight(name="mask_token", shape=(1, 1, int(visible_shape[-1])),
                                          initializer=self.initializer)

    def call(self, visible, ids_restore):
        shape = ops.shape(visible)
        batch, keep, dim = shape[0], int(visible.shape[1]), shape[2]
        num_tokens = int(ids_restore.shape[1])
        fill = ops.broadcast_to(ops.cast(self.mask_token, visible.dtype), (batch, num_tokens - keep, dim))
        full = ops.concatenate([visible, fill], axis=1)
        index = ops.broadcast_to(ops.expand_dims(ids_restore, -1), (batch, num_tokens, dim))
        return ops.take_along_axis(full, index, axis=1)

    def compute_output_shape(self, visible_shape, ids_restore_shape):
        return (visible_shape[0], ids_restore_shape[1], visible_shape[2])

    def get_config(self):
        return {**super().get_config(), "initializer": keras.initializers.serialize(self.initializer)}
