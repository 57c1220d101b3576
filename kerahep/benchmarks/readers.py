"""Reader rows shared by the task benchmarks: a streamed reader against the physical limit.

For each task's streamed reader (:mod:`kerahep.data.batches` underneath), measured side by
side in one run, no model:

* ``reader, streamed vs in-memory epoch`` (target >= 0.9): one shuffled epoch streamed from
  the files against the same batches served from memory (the reader's own cache, filled by a
  first epoch), so the ratio is what decoding costs once the pipeline is whole batches;
* ``reader decode rate vs physical limit`` (target >= 0.5): the reader's rate over every row
  of the files against the fastest plain decoding of the same bytes on the same number of
  threads (direct chunk reads inflated with zlib-ng for HDF5; pyarrow's multi-threaded CSV
  read; a plain memory copy for memory maps), measured in the same run;
* ``reader rate, 2 vs 1 decode threads`` (no target): the slope with threads.

Each rate is the best of ``repeats`` epochs, the two sides alternating (:func:`epoch_rates`),
so that load changes on a shared machine hit both alike.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from . import Row, epoch_rates, ratio_row


def best_rate(fn: Callable[[], int], repeats: int) -> float:
    """Items per second of ``fn()`` (which returns the items it handled), best of ``repeats`` after one warm-up."""
    fn()
    best, n = float("inf"), 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def inflate_limit(paths, key: str, threads: int) -> Callable[[], int]:
    """The physical limit of gzip-chunked HDF5 ``key`` in ``paths``: every chunk read with
    ``read_direct_chunk`` and inflated with the fastest zlib (:func:`kerahep.data.h5.inflate_function`)
    on ``threads`` threads; returns a function that does it once and returns the rows."""
    from concurrent.futures import ThreadPoolExecutor

    import h5py
    import numpy as np

    from ..data.h5 import HDF5_LOCK, inflate_function

    inflate = inflate_function()

    def run() -> int:
        rows = 0
        with ThreadPoolExecutor(threads) as pool:
            for path in paths:
                with h5py.File(path, "r") as f:
                    ds = f[key]
                    step, zeros = ds.chunks[0], (0,) * (ds.ndim - 1)

                    def one(first, ds=ds, step=step, zeros=zeros):
                        with HDF5_LOCK:  # h5py cannot read chunks from two threads at once
                            mask, raw = ds.id.read_direct_chunk((first,) + zeros)
                        return np.frombuffer(raw if mask & 1 else inflate(raw), np.float32).size

                    list(pool.map(one, range(0, ds.shape[0], step)))
                    rows += ds.shape[0]
        return rows

    return run


def reader_rows(task: str, unit: str, streamed: Callable, memory, decode: Callable, limit: Callable,
                repeats: int, notes: str, limit_notes: str) -> list[Row]:
    """The three reader rows of the module docstring.

    Args:
        task: the task's name.
        unit: ``crops/s`` and the like.
        streamed: the shuffled training-split dataset, streamed (with the default threads).
        memory: the same split, served from memory (the reader's cache).
        decode: ``decode(threads)``: a streamed dataset over every row of the files.
        limit: ``limit(threads)``: a function that decodes the same bytes plainly once and
            returns the rows.
        repeats: epochs per rate (best of).
        notes, limit_notes: what the rows were measured on.
    """
    from ..data.batches import decode_threads

    threads = decode_threads()
    rate = epoch_rates({"streamed": streamed, "memory": memory}, repeats)
    rows = [ratio_row(task, "reader, streamed vs in-memory epoch", rate["memory"], rate["streamed"], unit, target=0.9,
                      notes=f"{notes}; whole batches, no model, best of {repeats}, alternating; "
                            f"{threads} decode threads (os.cpu_count() = {os.cpu_count()})")]
    sides = {"reader": decode(threads), "reader_1": decode(1), "reader_2": decode(2)}
    rates = epoch_rates(sides, repeats)
    phys = best_rate(limit(threads), repeats)
    rows.append(ratio_row(task, "reader decode rate vs physical limit", phys, rates["reader"], unit, target=0.5,
                          notes=f"every row of the files, {threads} threads on both sides; limit: {limit_notes}; "
                                f"best of {repeats}"))
    rows.append(ratio_row(task, "reader rate, 2 vs 1 decode threads", rates["reader_1"], rates["reader_2"], unit,
                          notes=f"every row of the files, streamed; the slope with threads "
                                f"(1 thread: {rates['reader_1']:.0f}, 2: {rates['reader_2']:.0f} {unit})",
                          rates={"1": rates["reader_1"], "2": rates["reader_2"], str(threads): rates["reader"]}))
    return rows
