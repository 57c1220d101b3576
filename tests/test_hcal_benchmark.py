"""The hcal_dqm benchmark's physical limit (kerahep.benchmarks.hcal_dqm.copy_limit)."""

import tracemalloc

import numpy as np

from kerahep.benchmarks.hcal_dqm import copy_limit
from kerahep.data import hcal


def test_copy_limit_copies_every_map_into_memory_allocated_once(tmp_path):
    """Each call copies every map of every run and returns their number, into destinations
    allocated when the limit is made: a call allocates far less than the maps it copies (a
    fresh destination per call would time the kernel zeroing new pages, not the copy)."""
    paths = []
    for i, n in enumerate((300, 200)):
        np.save(tmp_path / f"Run{i}.npy", np.random.default_rng(i).random((n, 64, 72)))
        paths.append(tmp_path / f"Run{i}.npy")
    runs = hcal.open_runs(paths, validate=False)
    nbytes = sum(r.array.nbytes for r in runs.runs)
    tracemalloc.start()
    try:
        limit = copy_limit(runs, threads=2)
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert limit() == 500 and limit() == 500
        per_call = tracemalloc.get_traced_memory()[1] - held  # the peak above what was held
    finally:
        tracemalloc.stop()
    assert held >= nbytes  # the destinations, once
    assert per_call < nbytes / 20, (per_call, nbytes)
