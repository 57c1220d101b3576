"""The lumisection splits of hcal_dqm runs: contiguous ``(run, start, stop)`` blocks per split,
their order, sizes and reads (re-exported by :mod:`kerahep.data.hcal`)."""

from __future__ import annotations

import numpy as np


def ranges_of(indices: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` ranges of a sorted index array."""
    if len(indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    stops = np.concatenate([indices[breaks] + 1, [indices[-1] + 1]])
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def split_segments(sizes, fractions, n_blocks: int = 10, seed: int = 0) -> list[list[tuple[int, int, int]]]:
    """Block split of every run: per split, a list of ``(run, start, stop)`` lumisection ranges.

    Each run is cut into ``n_blocks`` contiguous blocks that go whole to one split
    (:func:`kerahep.data.splits.block_split`), with the same fractions in every run.

    Args:
        sizes: lumisections per run.
        fractions: ``(train, val, test)`` or ``(train, test)`` (then val is empty).
    """
    from .splits import block_split

    fractions = tuple(fractions)
    if len(fractions) == 2:
        fractions = (fractions[0], 0.0, fractions[1])
    out = [[] for _ in fractions]
    for r, n in enumerate(sizes):
        parts = block_split(int(n), fractions, n_blocks=n_blocks, seed=seed + 1000 * r)
        for i, idx in enumerate(parts):
            out[i].extend((r, a, b) for a, b in ranges_of(np.asarray(idx)))
    return out


def split_order(segments) -> tuple[np.ndarray, np.ndarray]:
    """``(run, lumisection)`` of every entry, in the order an evaluation pipeline yields them."""
    runs = [np.full(b - a, r, dtype=np.int64) for r, a, b in segments]
    ls = [np.arange(a, b, dtype=np.int64) for r, a, b in segments]
    if not runs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(runs), np.concatenate(ls)


def count(segments) -> int:
    return int(sum(b - a for _, a, b in segments))


def chunks(segments, chunk_size: int) -> np.ndarray:
    """``(run, start, stop)`` reads of at most ``chunk_size`` lumisections covering ``segments``."""
    out = [(r, s, min(s + chunk_size, b)) for r, a, b in segments for s in range(a, b, chunk_size)]
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)
