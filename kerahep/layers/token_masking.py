"""Random token masking for masked autoencoders: masked tokens are removed, not zeroed."""

from __future__ import annotations

import keras
from keras import layers, ops


def num_visible(num_tokens: int, mask_ratio: float) -> int:
    """Tokens kept visible: ``num_tokens - round(ratio * num_tokens)``, at least one."""
    n_mask = int(round(float(mask_ratio) * num_tokens))
    return max(1, num_tokens - n_mask)


@keras.saving.register_keras_serializable(package="kerahep")
class RandomTokenMasking(layers.Layer):
    """Keep a random subset of tokens per event, as in MAE (He et al. 2021).

    ``call(tokens)`` returns ``(visible, mask, ids_restore)``:

    * ``visible`` ``(batch, n_visible, dim)``: the kept tokens only, gathered by index, so
      the values of masked tokens are never part of the output (not even multiplied by
      zero: a NaN in a masked token cannot reach the encoder);
    * ``mask`` ``(batch, tokens)``: 1.0 where a token was masked;
    * ``ids_restore`` ``(batch, tokens)``: the permutation that puts ``[visible, masked]``
      back in token order (for :class:`~kerahep.layers.mask_token.MaskTokenInsert`).

    The same number of tokens is masked in every event. Masking acts in training and in
    inference (the masked autoencoder always reconstructs); an encoder used for
    classification is built without this layer.

    Args:
        mask_ratio: fraction of tokens masked (rounded; at least one token stays visible).
        seed: seed of the layer's random generator.

    Example:
        >>> vis, mask, ids = RandomTokenMasking(0.5, seed=1)(keras.ops.ones((2, 6, 4)))
        >>> vis.shape, mask.shape
        ((2, 3, 4), (2, 6))
    """

    def __init__(self, mask_ratio: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(mask_ratio) < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        self.mask_ratio = float(mask_ratio)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def sample_noise(self, batch, num_tokens: int):
        """Uniform noise ``(batch, tokens)`` from the layer's seed generator (sorted, it picks the kept tokens)."""
        return keras.random.uniform((batch, num_tokens), seed=self.seed_generator)

    def _order(self, noise):
        ids_shuffle = ops.argsort(noise, axis=1)
        return ids_shuffle, ops.argsort(ids_shuffle, axis=1)

    def mask_from_noise(self, noise, dtype="float32"):
        """The ``(batch, tokens)`` mask (1: masked) that ``call`` produces for ``noise``."""
        num_tokens = int(noise.shape[1])
        keep = num_visible(num_tokens, self.mask_ratio)
        _, ids_restore = self._order(noise)
        batch = ops.shape(noise)[0]
        shuffled = ops.concatenate([ops.zeros((batch, keep), dtype=dtype),
                                    ops.ones((batch, num_tokens - keep), dtype=dtype)], axis=1)
        return ops.take_along_axis(shuffled, ids_restore, axis=1)

    def call(self, tokens, noise=None):
        shape = ops.shape(tokens)
        batch, num_tokens, dim = shape[0], int(tokens.shape[1]), shape[2]
        keep = num_visible(num_tokens, self.mask_ratio)
        if noise is None:
            noise = self.sample_noise(batch, num_tokens)
        ids_shuffle, ids_restore = self._order(noise)
        ids_keep = ids_shuffle[:, :keep]
        index = ops.broadcast_to(ops.expand_dims(ids_keep, -1), (batch, keep, dim))
        visible = ops.take_along_axis(tokens, index, axis=1)
        return visible, self.mask_from_noise(noise, dtype=tokens.dtype), ids_restore

    def compute_output_shape(self, input_shape):
        keep = num_visible(int(input_shape[1]), self.mask_ratio)
        return ((input_shape[0], keep, input_shape[2]), (input_shape[0], input_shape[1]),
                (input_shape[0], input_shape[1]))

    def get_config(self):
        return {**super().get_config(), "mask_ratio": self.mask_ratio, "seed": self.seed}
