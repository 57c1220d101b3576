"""higgs_mae benchmarks: the chunked HIGGS reader against reading the file whole.

Rows (ratios measured side by side in one run, on files in the UCI format written from
the synthetic twin):

* ``reader into tf.data batches, streamed vs whole file loaded``: events per second of
  one pass of :func:`kerahep.data.higgs.higgs_dataset` (chunks of 4096 lines, phi ->
  cos/sin, re-batched to 1024) against ``pandas.read_csv`` of the whole file plus the
  same transform, fed as the same ``tf.data`` batches (target >= 0.7: streaming costs
  little). Both sides iterate the batches: iterating ``tf.data`` batches in Python costs
  about as much as parsing them here, so leaving it out of one side only (as this row
  once did) measured that cost, not streaming. The gzip row is the same on ``.csv.gz``.
* ``parser only, block reader vs pandas whole file``: the arrays alone, no ``tf.data``.
* ``parser, block reader vs TextLineDataset``: events per second of
  :func:`kerahep.data.higgs.iter_chunks` (blocks of lines parsed by pyarrow on
  ``PARSE_THREADS`` threads, plus the transform) against a ``tf.data.TextLineDataset`` +
  ``tf.io.decode_csv`` reader of the same lines (batches of 4096 lines, parallel map): the
  measurement behind the reader's choice.
* ``peak memory added, chunked pass, 4x larger file``: memory added by one streamed pass
  over a file four times larger (target <= 1.3: the reader streams); every measurement
  runs in its own process: its peak resident memory, read by its launcher
  (``run_child(..., launcher=True)``), minus its resident memory after the imports.
* ``peak memory added, chunked pass vs whole-file read``: on the larger file, the streamed
  pass against ``pandas.read_csv`` of the whole file (target <= 0.5).

* ``MAE pre-training, streamed vs in-memory epoch``: events per second of one epoch of the
  default masked autoencoder fed by the streamed reader against the same events in memory
  (target >= 0.95: the reader is not what holds training back).

* the reader rows of :mod:`kerahep.benchmarks.readers`: a shuffled epoch of
  :func:`~kerahep.data.higgs.higgs_dataset` against the same batches from memory (its cache;
  target >= 0.9), its rate against pyarrow's multi-threaded ``read_csv`` of the same bytes on
  the same threads (target >= 0.5), its rate with 1 and 2 parsing threads, and whether this
  machine allows the two targets at all (the limit against the in-memory epoch).

Run with ``python -m scripts.benchmark --task higgs_mae [--quick]``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from . import Row, ratio_row, run_child

TASK = "higgs_mae"
BATCH = 1024


def make_file(path: Path, events: int, gz: bool = False) -> Path:
    """A HIGGS-format file of ``events`` lines (twin events, tiled; UCI number format)."""
    from ..data.higgs import write_higgs
    from ..data.synthetic.higgs import generate

    block = min(events, 20000)
    ev = generate((block + 1) // 2, seed=0)
    reps = int(np.ceil(events / len(ev["label"])))
    labels = np.tile(ev["label"], reps)[:events]
    raw = np.tile(ev["raw"], (reps, 1))[:events]
    return write_higgs(path.with_suffix(".csv.gz") if gz else path, labels, raw)


def grow(src: Path, dst: Path, factor: int) -> Path:
    """``dst`` = ``src`` repeated ``factor`` times (plain text)."""
    with open(dst, "wb") as out:
        for _ in range(factor):
            with open(src, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    return dst


def chunked_pass(path) -> int:
    from ..data.higgs import higgs_dataset

    n = 0
    for _, y in higgs_dataset(path, batch_size=BATCH):
        n += int(y.shape[0])
    return n


def whole_file(path) -> int:
    import pandas as pd

    from ..data.higgs import transform

    df = pd.read_csv(path, header=None)
    arr = df.to_numpy(np.float32)
    x = transform(arr[:, 1:], "low")
    return len(x)


def whole_file_batches(path) -> int:
    """What a reader that loads the file whole gives a training loop: :func:`whole_file`'s
    arrays in ``tf.data`` batches of ``BATCH``, iterated like :func:`chunked_pass`."""
    import pandas as pd
    import tensorflow as tf

    from ..data.batches import PREFETCH, no_autotune
    from ..data.higgs import transform

    arr = pd.read_csv(path, header=None).to_numpy(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((transform(arr[:, 1:], "low"), arr[:, 0])).batch(BATCH)
    n = 0
    for _, y in ds.prefetch(PREFETCH).with_options(no_autotune()):  # as the reader's: no end-of-epoch wait
        n += int(y.shape[0])
    return n


def block_reader(path) -> int:
    from ..data.higgs import iter_chunks, transform

    n = 0
    for y, raw, _ in iter_chunks(path):
        transform(raw, "low")
        n += len(y)
    return n


def textline_pass(path) -> int:
    """The alternative reader: TextLineDataset + decode_csv, phi -> cos/sin in TensorFlow."""
    import math

    import tensorflow as tf

    from ..data.batches import PREFETCH, no_autotune
    from ..data.higgs import PHI_MAX

    phi_cols = [3, 5, 8, 12, 16, 20]
    scale = math.pi / PHI_MAX
    compression = "GZIP" if str(path).endswith(".gz") else ""

    def decode(lines):
        cols = tf.io.decode_csv(lines, [0.0] * 29)
        feats = []
        for j in range(1, 22):
            if j in phi_cols:
                feats += [tf.cos(cols[j] * scale), tf.sin(cols[j] * scale)]
            else:
                feats.append(cols[j])
        return tf.stack(feats, axis=1), cols[0]

    ds = (tf.data.TextLineDataset(str(path), compression_type=compression).batch(4096)
          .map(decode, num_parallel_calls=tf.data.AUTOTUNE).rebatch(BATCH).prefetch(PREFETCH)
          .with_options(no_autotune()))  # as the reader's (the map then runs on a thread per core)
    n = 0
    for _, y in ds:
        n += int(y.shape[0])
    return n


def _timed(fn, path, repeat: int) -> float:
    best = float("inf")
    n = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn(path)
        best = min(best, time.perf_counter() - t0)
    return n / best


def memory_in_child(mode: str, path) -> dict:
    """Run ``mode`` (a reader function of this module) on ``path``; the resident memory (bytes)
    of this process after the imports (runs in a child under a launcher, which adds the peak,
    ``peak_rss``)."""
    import pandas  # noqa: F401  (imported before the baseline is taken)
    import psutil
    import tensorflow  # noqa: F401

    base = psutil.Process().memory_info().rss
    n = globals()[mode](path)
    return {"events": n, "base": base}


def peak_added(mode: str, path) -> float:
    """Peak resident memory (MB) added by ``mode`` (a function of this module) in a fresh process.

    The peak is the child's own, read by its launcher: the child's ``ru_maxrss`` would start at
    the peak of this process (see :func:`kerahep.benchmarks.run_child`)."""
    r = run_child(memory_in_child, mode, path, launcher=True)
    return max(float(r["peak_rss"]) - float(r["base"]), 0.0) / 1e6


def arrow_limit(path, threads: int):
    """The physical limit of a CSV text: pyarrow's multi-threaded ``read_csv`` of the same bytes
    into float64 columns on ``threads`` threads; returns a function that reads it once (the rows)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from ..schema import N_COLUMNS

    names = [str(i) for i in range(N_COLUMNS)]

    def run() -> int:
        before = pa.cpu_count()
        pa.set_cpu_count(threads)
        try:
            table = pcsv.read_csv(path, read_options=pcsv.ReadOptions(column_names=names, use_threads=True),
                                  convert_options=pcsv.ConvertOptions(column_types={n: pa.float64() for n in names}))
        finally:
            pa.set_cpu_count(before)
        return table.num_rows

    return run


def reader_rows(path: Path, quick: bool) -> list[Row]:
    """The reader rows of :mod:`kerahep.benchmarks.readers` on a plain HIGGS CSV file."""
    from ..data.higgs import higgs_dataset
    from .readers import reader_rows as rows

    window = 100_000

    def stream(threads=None, cache=False):
        return higgs_dataset(path, batch_size=BATCH, shuffle_buffer=window, seed=0, cache=cache, threads=threads)

    return rows(TASK, "events/s", stream(), stream(cache=True), stream, lambda threads: arrow_limit(path, threads),
                quick, notes=f"{path.stat().st_size / 1e6:.0f} MB CSV, UCI '%.18e' format, batch {BATCH}, "
                                         f"mixing window {window}, low-level features (phi -> cos, sin)",
                limit_notes="pyarrow.csv.read_csv of the same bytes, float64 columns, no transform")


def training_rows(work: Path, quick: bool) -> list[Row]:
    """``MAE pre-training, streamed vs in-memory epoch``: the default masked autoencoder trained for
    one epoch fed by :func:`~kerahep.data.higgs.higgs_dataset` against the same events from memory
    (:func:`kerahep.tasks.higgs_mae.data.array_dataset`), alternating, best of ``repeats``."""
    from types import SimpleNamespace

    import keras
    import pandas as pd

    from ..data.higgs import higgs_dataset, transform
    from ..registry import get_task
    from ..tasks.higgs_mae.data import array_dataset
    from ..tasks.higgs_mae.models import build_autoencoder
    from . import fit_rates

    cfg = get_task(TASK).preset()
    d, bs = cfg.data, cfg.training.batch_size
    events = 20_000 if quick else 60_000
    path = make_file(work / f"HIGGS_train_{events}.csv", events)
    arr = pd.read_csv(path, header=None).to_numpy(np.float32)
    x, y = transform(arr[:, 1:], d.features), arr[:, 0]
    data = {"streamed": higgs_dataset(path, features=d.features, batch_size=bs, shuffle_buffer=d.shuffle_buffer, seed=0),
            "memory": array_dataset(x, y, bs, shuffle=True, seed=0)}
    adapt = SimpleNamespace(adapt=x[:: max(1, len(x) // 2000)])
    models = {}
    for k in data:
        keras.utils.set_random_seed(0)
        models[k] = build_autoencoder(cfg, adapt)
        models[k].compile(optimizer=keras.optimizers.AdamW(1e-3))  # the autoencoder adds its own losses
    repeats = 2 if quick else 3
    rate = fit_rates(models, data, {k: events for k in data}, repeats)
    m = cfg.model
    return [ratio_row(TASK, "MAE pre-training, streamed vs in-memory epoch", rate["memory"], rate["streamed"],
                      "events/s", target=0.95,
                      notes=f"default masked autoencoder (dim {m.dim}, depth {m.depth}, {d.features} features, "
                            f"{m.tokenization} tokens), batch {bs}, {events} events, mixing window {d.shuffle_buffer}, "
                            f"one epoch, best of {repeats}, alternating")]


def run(quick: bool = False, workdir=None) -> list[Row]:
    """Measure the rows of the module docstring; ``quick`` uses smaller files."""
    work = Path(workdir or tempfile.mkdtemp(prefix="kerahep-higgs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # quick spans many 4096-line chunks, so the small and the 4x file are read alike
    events = 140_000 if quick else 200_000
    repeat = 1 if quick else 3
    small = make_file(work / "HIGGS_small.csv", events)
    notes = f"{events} events, {small.stat().st_size / 1e6:.0f} MB, UCI '%.18e' format"
    warm = make_file(work / "HIGGS_warm.csv", 2000)
    for fn in (chunked_pass, textline_pass, whole_file, whole_file_batches):  # one-time start-up
        fn(warm)
    rows = reader_rows(small, quick)
    chunked = _timed(chunked_pass, small, repeat)
    whole = _timed(whole_file_batches, small, repeat)
    rows.append(ratio_row(TASK, "reader into tf.data batches, streamed vs whole file loaded", whole, chunked,
                          "events/s", target=0.7, notes=notes + f"; batches of {BATCH} iterated on both sides"))
    block = _timed(block_reader, small, repeat)
    rows.append(ratio_row(TASK, "parser only, block reader vs pandas whole file", _timed(whole_file, small, repeat),
                          block, "events/s", notes=notes + "; arrays, no tf.data"))
    tf_rate = _timed(textline_pass, small, repeat)
    rows.append(ratio_row(TASK, "parser, block reader vs TextLineDataset", tf_rate, block, "events/s",
                          notes=notes + "; ratio > 1: the block reader is faster"))
    gz = make_file(work / "HIGGS_gz", events // 2, gz=True)
    rows.append(ratio_row(TASK, "reader on .csv.gz into tf.data batches, streamed vs whole file loaded",
                          _timed(whole_file_batches, gz, repeat), _timed(chunked_pass, gz, repeat), "events/s",
                          target=0.7, notes=f"{events // 2} events, gzip"))
    large = grow(small, work / "HIGGS_large.csv", 4)
    m_small = peak_added("chunked_pass", small)
    m_large = peak_added("chunked_pass", large)
    rows.append(ratio_row(TASK, "peak memory added, chunked pass, 4x larger file", m_small, m_large, "MB",
                          target=1.3, higher_is_better=False,
                          notes=f"{events} vs {4 * events} events; own process each"))
    m_whole = peak_added("whole_file", large)
    rows.append(ratio_row(TASK, "peak memory added, chunked pass vs whole-file read", m_whole, m_large, "MB",
                          target=0.5, higher_is_better=False,
                          notes=f"{4 * events} events, {large.stat().st_size / 1e6:.0f} MB"))
    rows += training_rows(work, quick)
    if workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return rows
