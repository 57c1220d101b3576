"""Shower-shape features of calorimeter crops ``(n, 32, 32, 2)`` (channel 0, the energy; axis 1
is eta, axis 2 phi): energy-weighted widths, the maximum pixel over the energy sum, the number
of hit pixels, and the single-feature ROC AUC of electrons against photons.

The synthetic electron/photon twin records these AUCs in its ``twin.json``
(:mod:`kerahep.data.synthetic.electron_photon`) and the twin fidelity report compares them
with the real crops' values (:mod:`kerahep.benchmarks.twins`, issue 19).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def _energy(crops) -> np.ndarray:
    """Channel 0 (energy) of crops ``(n, H, W, 2)``, or crops ``(n, H, W)`` as they are, float64."""
    x = np.asarray(crops, dtype=np.float64)
    if x.ndim == 4 and x.shape[-1] >= 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise DataError("crops", "an array (n, 32, 32, 2) or (n, 32, 32) of energies", f"shape {x.shape}")
    return x


def shower_widths(crops) -> np.ndarray:
    """Energy-weighted widths ``(n, 2)`` of each crop along axis 1 (eta) and axis 2 (phi), in pixels.

    Along an axis: the energy of channel 0 summed over the other axis gives weights
    ``w_i = E_i / sum(E)`` at pixel indices ``i``; the width is the weighted standard deviation
    ``sqrt(sum_i w_i (i - m)^2)`` with ``m = sum_i w_i i``. One hit pixel: width 0; an empty
    crop: width 0.
    """
    e = _energy(crops)
    tot = e.sum(axis=(1, 2))
    out = np.zeros((len(e), 2))
    for k, axis in enumerate((2, 1)):  # summing over axis 2 projects onto axis 1 (eta), and back
        proj = e.sum(axis=axis)
        idx = np.arange(proj.shape[1], dtype=np.float64)
        w = proj / np.where(tot > 0, tot, 1.0)[:, None]
        m = (w * idx).sum(axis=1)
        out[:, k] = np.sqrt(np.maximum((w * (idx[None] - m[:, None]) ** 2).sum(axis=1), 0.0))
    return out


def wide_axis(electron_widths) -> int:
    """The wide axis: 1 (eta) or 2 (phi), whichever has the larger mean electron width.

    ``electron_widths`` is :func:`shower_widths` of the electron crops. (The real electrons are
    wider along one axis, 1.27 against 1.05 pixels; the twin's are wider along phi.)
    """
    w = np.asarray(electron_widths, dtype=np.float64)
    return 1 if w[:, 0].mean() > w[:, 1].mean() else 2


def max_over_sum(crops) -> np.ndarray:
    """Per crop: the maximum pixel energy over the energy sum of channel 0 (1 for a single hit;
    0 for an empty crop)."""
    e = _energy(crops)
    tot = e.sum(axis=(1, 2))
    return np.where(tot > 0, e.max(axis=(1, 2)) / np.where(tot > 0, tot, 1.0), 0.0)


def hit_pixels(crops) -> np.ndarray:
    """Per crop: the number of pixels of channel 0 with energy > 0."""
    return (_energy(crops) > 0).sum(axis=(1, 2)).astype(np.float64)


def calo_features(photons, electrons) -> tuple[dict, int]:
    """``({feature: (photon values, electron values)}, wide axis)`` of the three features."""
    wg, we = shower_widths(photons), shower_widths(electrons)
    axis = wide_axis(we)
    return {"width_wide_auc": (wg[:, axis - 1], we[:, axis - 1]),
            "max_over_sum_auc": (max_over_sum(photons), max_over_sum(electrons)),
            "hit_pixels_auc": (hit_pixels(photons), hit_pixels(electrons))}, axis


def feature_auc(photon_values, electron_values) -> float:
    """ROC AUC of one feature with electrons as positives (sklearn ``roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    g, e = np.asarray(photon_values, np.float64), np.asarray(electron_values, np.float64)
    y = np.concatenate([np.zeros(len(g)), np.ones(len(e))])
    return float(roc_auc_score(y, np.concatenate([g, e])))
