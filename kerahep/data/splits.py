"""Seeded splits on indices, without loading the data."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def _counts(n: int, fractions) -> list[int]:
    fractions = [float(f) for f in fractions]
    if abs(sum(fractions) - 1.0) > 1e-6 or any(f < 0 for f in fractions):
        raise ConfigError(f"split fractions must be >= 0 and sum to 1, got {tuple(fractions)}")
    sizes = [int(np.floor(n * f)) for f in fractions]
    sizes[0] += n - sum(sizes)  # remainder to the training split
    return sizes


def random_split(n: int, fractions, seed: int = 0) -> list[np.ndarray]:
    """Disjoint random index sets covering ``range(n)``, each sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for size in _counts(n, fractions):
        out.append(np.sort(perm[start:start + size]))
        start += size
    return out


def stratified_split(labels, fractions, seed: int = 0) -> list[np.ndarray]:
    """Disjoint index sets with the class proportions of ``labels`` in each, sorted.

    Args:
        labels: 1-D array of class labels (any hashable values).
        fractions: e.g. ``(0.7, 0.15, 0.15)`` or ``(0.8, 0.2)``.
        seed: the split is a function of the seed and the labels only.

    Example:
        >>> tr, va, te = stratified_split([0, 1] * 50, (0.7, 0.15, 0.15), seed=1)
        >>> len(tr), len(va), len(te)
        (70, 15, 15)
    """
    labels = np.asarray(labels).ravel()
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        start = 0
        for i, size in enumerate(_counts(len(idx), fractions)):
            parts[i].append(idx[start:start + size])
            start += size
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts]


def block_split(n: int, fractions, n_blocks: int = 20, seed: int = 0) -> list[np.ndarray]:
    """Split ``range(n)`` by contiguous blocks (for time-ordered data such as lumisections).

    The range is cut into ``n_blocks`` contiguous blocks; whole blocks are assigned to the
    splits at random, so neighbouring entries never straddle train and test except at
    block edges.
    """
    n_blocks = max(1, min(int(n_blocks), n))
    edges = np.linspace(0, n, n_blocks + 1).astype(int)
    blocks = [np.arange(edges[i], edges[i + 1]) for i in range(n_blocks)]
    order = np.random.default_rng(seed).permutation(n_blocks)
    sizes = _counts(n_blocks, fractions)
    out, start = [], 0
    for size in sizes:
        chosen = order[start:start + size]
        start += size
        out.append(np.sort(np.concatenate([blocks[b] for b in chosen])) if size else np.zeros(0, dtype=np.int64))
    return out
