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
* ``reader rate, 2 vs 1 decode threads`` (no target): the slope with threads;
* ``targets reachable: physical limit vs in-memory epoch`` (target 0.9 to 2): whether this
  machine allows the first two targets at all. A streamed epoch has to decode every row, so
  it is at most about as fast as the plain decoding of its bytes (first row <= this ratio);
  and the reader hands its batches to ``tf.data`` as it does from its cache, so it is at most
  about as fast as its own in-memory epoch (second row <= 1 / this ratio). Below 0.9 the
  decoding is too slow for the first target on these cores, above 2 ``tf.data``'s share of a
  batch too large for the second; neither is the reader's doing;
* ``streamed epoch, tf.data autotuning off vs on (median epoch)`` (no target): what turning
  ``tf.data``'s autotuner off (:func:`kerahep.data.batches.no_autotune`) saves a streamed epoch.

All seven sides (streamed, in memory, the reader on the default threads, on 1 and on 2, the
limit, the streamed epoch autotuned) are timed in the same rounds, alternating
(:func:`kerahep.benchmarks.measure_rates`), after a warm-up call each, for at least the rounds
and seconds per side of :data:`TIMING`, so that load changes on a shared machine hit them alike
and an epoch of a few milliseconds is timed often enough; each rate is the best epoch (the
medians and the epochs timed are in the first row's ``extra``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from . import Row, measure_rates, ratio_row, time_epoch

#: the band of the reachability row (see the module docstring): 0.9 = the streamed target,
#: 2 = 1 / the decode target
REACHABLE = (0.9, 2.0)

#: ``(rounds at least, seconds per side at least)`` of the reader rows, by ``quick``
TIMING = {True: (2, 0.5), False: (3, 2.0)}


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


def reader_rows(task: str, unit: str, streamed, memory, decode: Callable, limit: Callable,
                quick: bool, notes: str, limit_notes: str) -> list[Row]:
    """The five reader rows of the module docstring.

    Args:
        task: the task's name.
        unit: ``crops/s`` and the like.
        streamed: the shuffled training-split dataset, streamed (with the default threads).
        memory: the same split, served from memory (the reader's cache).
        decode: ``decode(threads)``: a streamed dataset over every row of the files.
        limit: ``limit(threads)``: a function that decodes the same bytes plainly once and
            returns the rows.
        quick: the shorter timing of :data:`TIMING` (2 rounds and 0.5 s per side at least; else 3 and 2 s).
        notes, limit_notes: what the rows were measured on.
    """
    from ..data.batches import decode_threads

    threads = decode_threads()
    repeats, min_seconds = TIMING[bool(quick)]
    epoch = {"streamed": streamed, "memory": memory, "reader": decode(threads), "reader_1": decode(1),
             "reader_2": decode(2), "autotuned": autotuned(streamed)}
    sides = {k: (lambda ds=ds: time_epoch(ds)[0]) for k, ds in epoch.items()}
    sides["limit"] = limit(threads)
    measured = measure_rates(sides, repeats, min_seconds)
    rate = {k: r.best for k, r in measured.items()}
    rounds = measured["limit"].epochs  # every side runs once in every round
    timing = (f"best of {rounds} epochs per side (>= {repeats} rounds, >= {min_seconds:g} s per side), "
              f"all seven sides alternating")
    extra = {"median": {k: r.median for k, r in measured.items()}, "epochs": {k: r.epochs for k, r in measured.items()}}
    rows = [ratio_row(task, "reader, streamed vs in-memory epoch", rate["memory"], rate["streamed"], unit, target=0.9,
                      notes=f"{notes}; whole batches, no model, {timing}; "
                            f"{threads} decode threads (os.cpu_count() = {os.cpu_count()})", **extra)]
    rows.append(ratio_row(task, "reader decode rate vs physical limit", rate["limit"], rate["reader"], unit, target=0.5,
                          notes=f"every row of the files, {threads} threads on both sides; limit: {limit_notes}; "
                                f"{timing}"))
    rows.append(ratio_row(task, "reader rate, 2 vs 1 decode threads", rate["reader_1"], rate["reader_2"], unit,
                          notes=f"every row of the files, streamed; the slope with threads "
                                f"(1 thread: {rate['reader_1']:.0f}, 2: {rate['reader_2']:.0f} {unit})",
                          rates={"1": rate["reader_1"], "2": rate["reader_2"], "default": rate["reader"]},
                          default_threads=threads))
    rows.append(reachable_row(task, unit, rate["memory"], rate["limit"]))
    median = extra["median"]
    rows.append(ratio_row(task, "streamed epoch, tf.data autotuning off vs on (median epoch)", median["autotuned"],
                          median["streamed"], unit,
                          notes="the same streamed dataset with tf.data's autotuning turned back on; the readers turn "
                                "it off (kerahep.data.batches.no_autotune), as after the last batch its iterator waits "
                                "on the tuner in some epochs; the median, as the best epoch hides a wait that comes "
                                f"only now and then; {timing}"))
    return rows


def autotuned(ds):
    """``ds`` with ``tf.data``'s autotuning turned back on (the readers turn it off)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = True
    return ds.with_options(options)


def reachable_row(task: str, unit: str, memory: float, limit: float) -> Row:
    """Whether this machine allows the first two reader targets at all: the physical limit against
    the in-memory epoch, within :data:`REACHABLE` (see the module docstring)."""
    low, high = REACHABLE
    r = limit / memory if memory else float("nan")
    ok = bool(low <= r <= high)
    if r < low:
        why = (f"the plain decoding alone is slower than {low:g} of the in-memory epoch: no streamed reader "
               f"reaches the {low:g} target on these cores (streamed vs in-memory <= about {r:.2f})")
    elif r > high:
        why = (f"tf.data's share of a batch is too large: no reader reaches the {1 / high:g} target here "
               f"(decode vs limit <= about {1 / r:.2f}, its in-memory epoch against the limit)")
    else:
        why = "both reader targets are within reach of the decoding and of tf.data on this machine"
    return Row(task, "targets reachable: physical limit vs in-memory epoch", float(memory), float(limit), unit,
               float(r), f"{low:g} .. {high:g}", ok,
               f"{why}; a streamed epoch is at most about as fast as the plain decoding of its bytes, and at most "
               f"about as fast as the same reader served from memory")
