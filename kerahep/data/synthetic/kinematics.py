"""Four-vector kinematics of the synthetic twins in NumPy: (E, px, py, pz) arrays along the last axis."""

from __future__ import annotations

import numpy as np


def four_vector(pt, eta, phi, m=0.0):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px ** 2 + py ** 2 + pz ** 2 + np.asarray(m) ** 2)
    return np.stack([e, px, py, pz], axis=-1)


def pt_eta_phi(p):
    pt = np.hypot(p[..., 1], p[..., 2])
    eta = np.arcsinh(p[..., 3] / np.maximum(pt, 1e-9))
    phi = np.arctan2(p[..., 2], p[..., 1])
    return pt, eta, phi


def boost(p, beta):
    """Boost four-vectors ``p`` (..., 4) by velocity ``beta`` (..., 3)."""
    b2 = np.sum(beta ** 2, axis=-1, keepdims=True)
    gamma = 1.0 / np.sqrt(np.maximum(1.0 - b2, 1e-12))
    bp = np.sum(beta * p[..., 1:], axis=-1, keepdims=True)
    coef = np.where(b2 > 0, (gamma - 1.0) * bp / np.maximum(b2, 1e-12), 0.0)
    e = gamma * (p[..., :1] + bp)
    vec = p[..., 1:] + coef * beta + gamma * beta * p[..., :1]
    return np.concatenate([e, vec], axis=-1)


def isotropic(rng, n):
    cos_t = rng.uniform(-1, 1, n)
    sin_t = np.sqrt(1 - cos_t ** 2)
    ph = rng.uniform(0, 2 * np.pi, n)
    return np.stack([sin_t * np.cos(ph), sin_t * np.sin(ph), cos_t], axis=-1)


def two_body_at_rest(rng, m_parent, m1, m2):
    """Momenta of a two-body decay at rest, isotropic: returns p1, p2 (n, 4)."""
    lam = (m_parent ** 2 - (m1 + m2) ** 2) * (m_parent ** 2 - (m1 - m2) ** 2)
    q = np.sqrt(np.maximum(lam, 0.0)) / (2 * m_parent)
    d = isotropic(rng, len(m_parent))
    p1 = np.concatenate([np.sqrt(q ** 2 + m1 ** 2)[:, None], q[:, None] * d], axis=1)
    p2 = np.concatenate([np.sqrt(q ** 2 + m2 ** 2)[:, None], -q[:, None] * d], axis=1)
    return p1, p2


def breit_wigner(rng, mass, width, n, lo, hi):
    m = mass + 0.5 * width * np.tan(np.pi * (rng.uniform(size=n) - 0.5))
    return np.clip(m, lo, hi)


def invariant_mass(p):
    m2 = p[..., 0] ** 2 - np.sum(p[..., 1:] ** 2, axis=-1)
    return np.sqrt(np.maximum(m2, 0.0))


# --------------------------------------------------------------------- prongs
