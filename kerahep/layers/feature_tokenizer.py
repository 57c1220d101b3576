"""Gather a flat feature vector into tokens, one group of features per token (keras.ops only)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


def _groups(groups) -> list[list[int]]:
    out = [[int(i) for i in g] for g in groups]
    if not out or any(len(g) == 0 for g in out):
        raise ValueError(f"groups must be a non-empty list of non-empty index lists, got {groups!r}")
    return out


@keras.saving.register_keras_serializable(package="kerahep")
class FeatureTokenizer(layers.Layer):
    """``(batch, n_features)`` -> ``(batch, tokens, slots)``: token ``t`` holds the features ``groups[t]``.

    Groups may have different lengths; they are padded to the longest with zeros (and an
    index ``-1`` inside a group also means an empty slot). Each feature lands in its own
    token only, so a token never carries another token's values. :meth:`inverse` maps
    token values back to the flat layout.

    Args:
        groups: one list of feature indices per token, e.g. ``[[0, 1, 2, 3], [4, -1, 5, 6]]``.

    Example:
        >>> tok = FeatureTokenizer([[0, 1], [2]])
        >>> keras.ops.convert_to_numpy(tok(np.array([[1., 2., 3.]])))
        array([[[1., 2.],
                [3., 0.]]], dtype=float32)
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = _groups(groups)
        self.num_tokens = len(self.groups)
        self.slots = max(len(g) for g in self.groups)

    def index_table(self, n_features: int) -> np.ndarray:
        """``(tokens, slots)`` feature index of each slot; ``n_features`` marks an empty slot."""
        table = np.full((self.num_tokens, self.slots), n_features, dtype="int32")
        for t, g in enumerate(self.groups):
            for s, i in enumerate(g):
                if i >= n_features:
                    raise ValueError(f"feature index {i} in token {t} is out of range for {n_features} features")
                table[t, s] = i if i >= 0 else n_features
        return table

    def valid_slots(self, n_features: int) -> np.ndarray:
        """``(tokens, slots)`` 1.0 where a slot holds a feature, 0.0 where it is padding."""
        return (self.index_table(n_features) < n_features).astype("float32")

    def inverse_index(self, n_features: int) -> np.ndarray:
        """``(n_features,)`` flat position ``t * slots + s`` of each feature in the token layout (-1: none)."""
        table = self.index_table(n_features)
        inv = np.full((n_features,), -1, dtype="int32")
        for t in range(self.num_tokens):
            for s in range(self.slots):
                if table[t, s] < n_features:
                    inv[table[t, s]] = t * self.slots + s
        return inv

    def build(self, input_shape):
        n = int(input_shape[-1])
        self.n_features = n
        self._index = self.index_table(n).reshape(-1)
        self._inverse = self.inverse_index(n)

    def call(self, x):
        zeros = ops.zeros_like(x[:, :1])
        padded = ops.concatenate([x, zeros], axis=1)
        flat = ops.take(padded, ops.convert_to_tensor(self._index), axis=1)
        return ops.reshape(flat, (-1, self.num_tokens, self.slots))

    def inverse(self, tokens):
        """``(batch, tokens, slots)`` -> ``(batch, n_features)`` (padding slots dropped).

        Every feature must belong to a token.
        """
        if (self._inverse < 0).any():
            missing = np.flatnonzero(self._inverse < 0).tolist()
            raise ValueError(f"features {missing} belong to no token; the layout cannot be inverted")
        flat = ops.reshape(tokens, (-1, self.num_tokens * self.slots))
        return ops.take(flat, ops.convert_to_tensor(self._inverse), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_tokens, self.slots)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}
