"""Planning chunk-aligned reads of a jet dataset (:func:`plan_reads`); reading its compressed
chunks directly, inflated with the fastest zlib at hand, is :func:`kerahep.data.h5.direct_chunk_reader`
(re-exported here)."""

from __future__ import annotations

import numpy as np

from ..h5 import direct_chunk_reader, inflate_function

__all__ = ["direct_chunk_reader", "inflate_function", "plan_reads"]


def plan_reads(indices, n: int, chunk_rows: int | None, block_rows: int) -> list:
    """Chunk-aligned reads that cover the sorted row ``indices`` of a dataset of ``n`` rows.

    The rows are grouped in blocks of ``block_rows`` (a multiple of the chunk size); within
    a block, every run of consecutive chunks that holds a wanted row becomes one slice
    read ``[start, stop)`` whose ends lie on chunk boundaries (or the end of the data), so
    each chunk is decompressed once and chunks without wanted rows are not read.

    Returns:
        A list of ``(start, stop, positions, offsets)``: the slice, the positions of its rows in
        ``indices`` and their offsets inside the slice.

    Example:
        >>> [(a, b) for a, b, _, _ in plan_reads([1, 2, 9], n=12, chunk_rows=4, block_rows=8)]
        [(0, 4), (8, 12)]
    """
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size and (np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= n):
        raise ValueError("plan_reads needs sorted, unique indices within the dataset")
    c = int(chunk_rows or 1)
    block_rows = max(c, int(block_rows) // c * c)
    chunk_of = idx // c
    plans = []
    pos = np.arange(idx.size)
    block_of = idx // block_rows
    for b in np.unique(block_of):
        sel = block_of == b
        chunks = np.unique(chunk_of[sel])
        runs = np.split(chunks, np.flatnonzero(np.diff(chunks) > 1) + 1)
        for run in runs:
            start, stop = int(run[0]) * c, min(n, (int(run[-1]) + 1) * c)
            in_run = sel & (idx >= start) & (idx < stop)
            plans.append((start, stop, pos[in_run], idx[in_run] - start))
    return plans
