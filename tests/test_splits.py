"""The seeded index splits: exact sizes (the remainder goes to the first split), disjoint parts
that cover every index, the same parts from the same seed and other parts from another."""

import itertools

import numpy as np
import pytest

from kerahep.data.splits import block_split, random_split, stratified_split
from kerahep.errors import ConfigError


def assert_partition(parts, n: int, sizes) -> None:
    """``parts`` are sorted, pairwise disjoint, of ``sizes``, and together ``range(n)``."""
    assert [len(p) for p in parts] == list(sizes)
    for p in parts:
        assert np.all(np.diff(p) > 0)  # sorted, no index twice
    for a, b in itertools.combinations(parts, 2):
        assert not set(a.tolist()) & set(b.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))


def assert_seeded(split, *args) -> None:
    """The same seed gives the same parts; another seed other parts (of the same sizes)."""
    parts, again, other = split(*args, seed=3), split(*args, seed=3), split(*args, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert [len(p) for p in other] == [len(p) for p in parts]
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_stratified_split_disjoint_complete_and_stratified():
    labels = np.array([0] * 300 + [1] * 100)
    parts = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
    # per class: 300 -> 210/45/45 and 100 -> 70/15/15
    assert_partition(parts, 400, (280, 60, 60))
    assert [int(labels[p].sum()) for p in parts] == [70, 15, 15]
    assert_seeded(stratified_split, labels, (0.7, 0.15, 0.15))
    # the remainder of each class goes to the first split: 7 -> 5/1/1 (floors 4, 1, 1), 3 -> 3/0/0 (2, 0, 0)
    labels = np.array([0] * 7 + [1] * 3)
    parts = stratified_split(labels, (0.7, 0.15, 0.15), seed=0)
    assert_partition(parts, 10, (8, 1, 1))
    assert [int(labels[p].sum()) for p in parts] == [3, 0, 0]


def test_random_split_eighty_twenty():
    parts = random_split(1001, (0.8, 0.2), seed=0)
    assert_partition(parts, 1001, (801, 200))  # floor(800.8) + the remainder, floor(200.2)
    assert_seeded(random_split, 1001, (0.8, 0.2))


def test_block_split_contiguous_blocks_no_overlap():
    parts = block_split(1000, (0.6, 0.2, 0.2), n_blocks=10, seed=0)
    assert_partition(parts, 1000, (600, 200, 200))
    for p in parts:  # each split is a union of whole runs of 100 consecutive indices
        blocks = np.unique(p // 100)
        np.testing.assert_array_equal(p, np.concatenate([np.arange(100 * b, 100 * b + 100) for b in blocks]))
    assert_seeded(block_split, 1000, (0.6, 0.2, 0.2), 10)


@pytest.mark.parametrize("fractions", [(0.5, 0.6), (1.2, -0.2)])
def test_bad_fractions_rejected(fractions):
    with pytest.raises(ConfigError, match="sum to 1"):
        stratified_split([0, 1], fractions)
