import numpy as np
import pytest

from kerahep.data.splits import block_split, random_split, stratified_split
from kerahep.errors import ConfigError


def test_stratified_split_disjoint_complete_and_stratified():
    labels = np.array([0] * 300 + [1] * 100)
    parts = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
    allidx = np.concatenate(parts)
    assert len(allidx) == 400 and len(np.unique(allidx)) == 400
    for p, f in zip(parts, (0.7, 0.15, 0.15)):
        assert abs(labels[p].mean() - 0.25) < 0.02
        assert abs(len(p) / 400 - f) < 0.01
    again = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = stratified_split(labels, (0.7, 0.15, 0.15), seed=4)
    assert not np.array_equal(parts[0], other[0])


def test_random_split_eighty_twenty():
    tr, te = random_split(1001, (0.8, 0.2), seed=0)
    assert len(tr) + len(te) == 1001 and not set(tr) & set(te)


def test_block_split_contiguous_blocks_no_overlap():
    parts = block_split(1000, (0.6, 0.2, 0.2), n_blocks=10, seed=0)
    assert sum(len(p) for p in parts) == 1000
    assert not set(parts[0]) & set(parts[2])
    for p in parts:  # each split is a union of runs of 100 consecutive indices
        assert len(p) % 100 == 0
        assert set((p // 100).tolist()) == set((p[::100] // 100).tolist())


def test_bad_fractions_rejected():
    with pytest.raises(ConfigError, match="sum to 1"):
        stratified_split([0, 1], (0.5, 0.6))
