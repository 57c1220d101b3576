"""Planning chunk-aligned reads of a jet dataset and reading its compressed chunks directly
(inflated with the fastest zlib at hand)."""

from __future__ import annotations

import numpy as np


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


def inflate_function():
    """The fastest zlib-compatible ``decompress`` installed (zlib-ng, ISA-L, then the standard library)."""
    try:
        from zlib_ng import zlib_ng

        return zlib_ng.decompress
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        return isal_zlib.decompress
    except ImportError:
        import zlib

        return zlib.decompress


def direct_chunk_reader(ds):
    """A reader of chunk-aligned row slices that inflates the stored chunks itself, or None.

    Only for the layout it can decode exactly: little-endian float32, each chunk holding
    whole images (``chunks == (k,) + shape[1:]``) and deflate (gzip) as the only filter.
    The returned ``read(start, stop)`` gives ``ds[start:stop]`` for ``start`` on a chunk
    boundary; a chunk it cannot read directly (never written, for example) is read through
    h5py.
    """
    import h5py

    if ds.chunks is None or tuple(ds.chunks[1:]) != tuple(ds.shape[1:]) or ds.dtype != np.dtype("<f4"):
        return None
    try:
        plist = ds.id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    except Exception:  # pragma: no cover - unusual property lists: use h5py
        return None
    if filters != [h5py.h5z.FILTER_DEFLATE]:
        return None
    inflate = inflate_function()
    rows_per_chunk = int(ds.chunks[0])
    image = tuple(ds.shape[1:])
    zeros = (0,) * len(image)

    def read(start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start,) + image, np.float32)
        for first in range(start, stop, rows_per_chunk):
            rows = min(rows_per_chunk, stop - first)
            try:
                mask, raw = ds.id.read_direct_chunk((first,) + zeros)
                data = raw if mask & 1 else inflate(raw)  # bit 0: deflate was skipped for this chunk
                chunk = np.frombuffer(data, np.float32).reshape((rows_per_chunk,) + image)
                out[first - start:first - start + rows] = chunk[:rows]
            except (OSError, ValueError, KeyError, RuntimeError):
                out[first - start:first - start + rows] = ds[first:first + rows]
        return out

    return read
