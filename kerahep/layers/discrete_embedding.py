"""Embedding of features that take a few discrete values (b-tag levels), placed on tokens."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class DiscreteTokenEmbedding(layers.Layer):
    """Embed discrete-valued input columns and add each embedding to its token.

    Each column ``columns[k]`` of the raw input takes the values ``levels[k]`` (for HIGGS
    b-tags, ``(0, 1.107, 2.215)``); a value is mapped to its nearest level and looked up in
    a learned table of that column. The output ``(batch, num_tokens, output_dim)`` carries
    the embedding of column ``k`` on token ``token_positions[k]`` and zeros elsewhere, so it
    can be added to the token embeddings without mixing tokens.

    Args:
        columns: input column of each discrete feature.
        levels: the discrete values of each column (same length for all columns).
        token_positions: the token each column belongs to.
        num_tokens: number of tokens of the output.
        output_dim: embedding width (the token width).

    Example:
        >>> emb = DiscreteTokenEmbedding([2], [[0.0, 1.1, 2.2]], [1], num_tokens=2, output_dim=4)
        >>> emb(keras.ops.zeros((3, 5))).shape
        (3, 2, 4)
    """

    def __init__(self, columns, levels, token_positions, num_tokens: int, output_dim: int,
                 embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.columns = [int(c) for c in columns]
        self.levels = [[float(v) for v in lv] for lv in levels]
        self.token_positions = [int(t) for t in token_positions]
        self.num_tokens = int(num_tokens)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        if not (len(self.columns) == len(self.levels) == len(self.token_positions)) or not self.columns:
            raise ValueError("columns, levels and token_positions must be non-empty and of equal length")
        if len({len(lv) for lv in self.levels}) != 1:
            raise ValueError(f"every column needs the same number of levels, got {self.levels}")
        if any(not 0 <= t < self.num_tokens for t in self.token_positions):
            raise ValueError(f"token_positions {self.token_positions} out of range for {self.num_tokens} tokens")
        k, n_levels = len(self.columns), len(self.levels[0])
        place = np.zeros((k, self.num_tokens), dtype="float32")
        place[np.arange(k), self.token_positions] = 1.0
        self._place = place
        self._levels = np.asarray(self.levels, dtype="float32")  # (k, L)
        self._offsets = (np.arange(k) * n_levels).astype("int32")

    def build(self, input_shape):
        k, n_levels = len(self.columns), len(self.levels[0])
        self.embeddings = self.add_weight(name="embeddings", shape=(k, n_levels, self.output_dim),
                                          initializer=self.embeddings_initializer)

    def level_index(self, x):
        """``(batch, k)`` index of the nearest level of each discrete column."""
        vals = ops.take(x, ops.convert_to_tensor(np.asarray(self.columns, dtype="int32")), axis=1)
        dist = ops.abs(vals[:, :, None] - ops.cast(ops.convert_to_tensor(self._levels), vals.dtype)[None])
        return ops.argmin(dist, axis=-1)

    def call(self, x):
        idx = ops.cast(self.level_index(x), "int32") + ops.convert_to_tensor(self._offsets)[None]
        table = ops.reshape(self.embeddings, (-1, self.output_dim))
        emb = ops.take(table, idx, axis=0)  # (batch, k, dim)
        place = ops.cast(ops.convert_to_tensor(self._place), emb.dtype)
        return ops.einsum("bkd,kt->btd", emb, place)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_tokens, self.output_dim)

    def get_config(self):
        return {**super().get_config(), "columns": self.columns, "levels": self.levels,
                "token_positions": self.token_positions, "num_tokens": self.num_tokens,
                "output_dim": self.output_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer)}
