"""Pairwise invariant masses of physics objects as per-token features (keras.ops only)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerahep")
class PairInvariantMass(layers.Layer):
    """Squared invariant mass of every pair of objects, attached to the objects' tokens.

    Each object ``k`` is read from the raw feature vector: ``pt_index[k]``, ``eta_index[k]``
    (-1: no eta, taken as 0, e.g. missing energy), ``cos_index[k]``, ``sin_index[k]``.
    As massless four-vectors, ``E = pt cosh(eta)``, ``p = (pt cos, pt sin, pt sinh(eta))``;
    the pair mass is ``m_kl^2 = (p_k + p_l)^2``. Token ``token_positions[k]`` receives the row
    ``[m_k1^2 ... m_kK^2, log(1 + m_k1^2) ... log(1 + m_kK^2)]`` (``2K`` values); tokens without
    an object receive zeros. Sums of pair masses give every multi-object mass of massless
    objects, so a network can build the invariant masses where the physics lies (as the
    pair features of the Particle Transformer).

    ``visible`` (``(batch, tokens)``, 1 for visible) hides objects: the entries of a row that
    pair with a hidden object are set to zero by selection (``where``), so the values of a
    hidden object never reach a visible token, not even as ``0 * NaN``.

    Args:
        pt_index, eta_index, cos_index, sin_index: raw feature columns of each object.
        token_positions: the token of each object.
        num_tokens: number of tokens of the output.

    Example:
        >>> layer = PairInvariantMass([0, 3], [1, -1], [2, 4], [5, 6], [0, 1], num_tokens=2)
        >>> layer(keras.ops.ones((4, 7))).shape
        (4, 2, 4)
    """

    def __init__(self, pt_index, eta_index, cos_index, sin_index, token_positions, num_tokens: int, **kwargs):
        super().__init__(**kwargs)
        self.pt_index = [int(i) for i in pt_index]
        self.eta_index = [int(i) for i in eta_index]
        self.cos_index = [int(i) for i in cos_index]
        self.sin_index = [int(i) for i in sin_index]
        self.token_positions = [int(t) for t in token_positions]
        self.num_tokens = int(num_tokens)
        k = len(self.pt_index)
        if not k or any(len(v) != k for v in (self.eta_index, self.cos_index, self.sin_index, self.token_positions)):
            raise ValueError("pt_index, eta_index, cos_index, sin_index and token_positions need one entry per object")
        if len(set(self.token_positions)) != k or any(not 0 <= t < self.num_tokens for t in self.token_positions):
            raise ValueError(f"token_positions {self.token_positions} must be distinct tokens below {self.num_tokens}")
        self.num_objects = k
        rows = np.full((self.num_tokens,), k, dtype="int32")  # row k: zeros for tokens without an object
        rows[self.token_positions] = np.arange(k)
        self._rows = rows
        self._has_eta = np.asarray([i >= 0 for i in self.eta_index])
        self._eta_cols = np.asarray([max(i, 0) for i in self.eta_index], dtype="int32")

    def _take(self, x, idx):
        return ops.take(x, ops.convert_to_tensor(np.asarray(idx, dtype="int32")), axis=1)

    def pair_masses(self, x):
        """``(batch, objects, objects)`` squared pair masses."""
        pt, cos, sin = self._take(x, self.pt_index), self._take(x, self.cos_index), self._take(x, self.sin_index)
        eta = ops.where(ops.convert_to_tensor(self._has_eta)[None], self._take(x, self._eta_cols), ops.zeros_like(pt))
        e, px, py, pz = pt * ops.cosh(eta), pt * cos, pt * sin, pt * ops.sinh(eta)

        def pair(v):
            return v[:, :, None] + v[:, None, :]

        return ops.square(pair(e)) - ops.square(pair(px)) - ops.square(pair(py)) - ops.square(pair(pz))

    def call(self, x, visible=None):
        m2 = self.pair_masses(x)
        if visible is not None:
            vis = self._take(ops.cast(visible, m2.dtype), self.token_positions) > 0.5  # (batch, objects)
            m2 = ops.where(vis[:, None, :], m2, ops.zeros_like(m2))
        feats = ops.concatenate([m2, ops.log1p(ops.relu(m2))], axis=-1)  # (batch, objects, 2 objects)
        feats = ops.concatenate([feats, ops.zeros_like(feats[:, :1])], axis=1)
        return ops.take(feats, ops.convert_to_tensor(self._rows), axis=1)

    def compute_output_shape(self, x_shape, visible_shape=None):
        return (x_shape[0], self.num_tokens, 2 * self.num_objects)

    def get_config(self):
        return {**super().get_config(), "pt_index": self.pt_index, "eta_index": self.eta_index,
                "cos_index": self.cos_index, "sin_index": self.sin_index,
                "token_positions": self.token_positions, "num_tokens": self.num_tokens}
