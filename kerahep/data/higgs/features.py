"""Feature sets of the HIGGS table: stored azimuths to radians and the stored 28 columns to
the ``low``, ``all`` or ``raw`` set (:func:`transform`).
"""

from __future__ import annotations

import math

import numpy as np

from ...schema import HIGH_LEVEL, LOW_LEVEL, PHI_MAX, RAW_FEATURES, feature_names


def phi_to_radians(phi):
    """Stored (standardised) azimuth -> radians."""
    return np.asarray(phi) * (math.pi / PHI_MAX)


def transform(raw: np.ndarray, features: str = "low") -> np.ndarray:
    """Map stored features ``(n, 28)`` to the feature set ``features`` (float32)."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2 or raw.shape[1] != len(RAW_FEATURES):
        raise ValueError(f"expected (n, {len(RAW_FEATURES)}) stored features, got {raw.shape}")
    if features == "raw":
        return raw
    cols = []
    for i, name in enumerate(LOW_LEVEL):
        if name.endswith("_phi"):
            rad = phi_to_radians(raw[:, i])
            cols += [np.cos(rad), np.sin(rad)]
        else:
            cols.append(raw[:, i])
    if features == "all":
        cols += [raw[:, 21 + j] for j in range(len(HIGH_LEVEL))]
    elif features != "low":
        feature_names(features)  # raises ConfigError
    return np.stack(cols, axis=1).astype(np.float32)
