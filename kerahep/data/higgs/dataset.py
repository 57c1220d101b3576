"""HIGGS row ranges as arrays (:func:`read_higgs`), counts (:func:`scan`) or a batched
``tf.data`` stream (:func:`higgs_dataset`), and the writer of HIGGS tables (:func:`write_higgs`).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ...schema import RAW_FEATURES, feature_names
from .chunks import HiggsStream
from .features import transform
from .streaming import CHUNK_LINES, iter_chunks


def read_higgs(path, rows=None, features: str = "low", max_rows: int | None = None, chunksize: int = CHUNK_LINES):
    """Read a row range into NumPy arrays ``(x, y)`` (x float32 in the feature set, y float32).

    Only the requested lines are kept in memory; the file is parsed in chunks.
    """
    feature_names(features)
    xs, ys = [], []
    for y, raw, _ in iter_chunks(path, rows, chunksize=chunksize, max_rows=max_rows):
        xs.append(transform(raw, features))
        ys.append(y)
    n_feat = len(feature_names(features))
    if not xs:
        return np.zeros((0, n_feat), np.float32), np.zeros((0,), np.float32)
    return np.concatenate(xs), np.concatenate(ys)


def scan(path, rows=None, max_rows: int | None = None, chunksize: int = CHUNK_LINES) -> dict:
    """Validate every line of a row range without keeping it; return counts.

    Returns:
        ``{"rows": n, "signal": n1, "background": n0, "first_line": l0}`` (``first_line`` 1-based).
    """
    n = n1 = 0
    first = None
    for y, _, line in iter_chunks(path, rows, chunksize=chunksize, max_rows=max_rows):
        first = first or line
        n += len(y)
        n1 += int(y.sum())
    return {"rows": n, "signal": n1, "background": n - n1, "first_line": first}


def higgs_dataset(path, rows=None, features: str = "low", batch_size: int = 256, shuffle_buffer: int = 0,
                  seed: int = 0, chunksize: int = CHUNK_LINES, max_rows: int | None = None, cache: bool = False,
                  prefetch: bool = True, threads: int | None = None):
    """Stream a row range of a HIGGS file as a batched ``tf.data.Dataset`` of ``(x, y)``.

    The file is parsed chunk by chunk on ``threads`` threads (never loaded whole; the
    feature transform runs on the parsing threads too) and the chunks are cut into whole
    batches in NumPy; ``tf.data`` only wraps and prefetches (:class:`~kerahep.data.higgs.chunks.HiggsStream`).
    Without ``shuffle_buffer`` the events come in file order. With it, an uncompressed
    table (csv, tab- or space-separated) is planned as chunks of ``chunksize`` whole lines
    (their byte offsets found once by counting line ends, kept in this process) that every
    epoch reads in a new seeded order (:class:`kerahep.data.batches.BatchStream`), the events
    of each window of ``shuffle_buffer`` events permuted too; a gzip stream has no random
    access, so it is read in file order and mixed within the windows
    (:func:`kerahep.data.batches.cut_batches`), and with ``cache`` the kept chunks are taken
    in a new seeded order every epoch after the first. Either way every event of the range
    comes out exactly once per epoch, in a new order each epoch, the same order for the same
    seed. Call :func:`scan` first to turn a bad line into a :class:`DataError` before
    training (inside ``tf.data`` it surfaces wrapped in a TensorFlow error, message kept;
    :meth:`HiggsStream.surface <kerahep.data.higgs.chunks.HiggsStream.surface>` raises it as itself).

    Args:
        path: HIGGS file.
        rows: ``(start, stop)`` line range (negative: from the end).
        features: ``low``, ``all`` or ``raw``.
        batch_size: events per batch.
        shuffle_buffer: 0 (or 1) keeps file order; else events are mixed in windows of this
            many (and the chunks of an uncompressed table read in a new order each epoch).
        seed: shuffle seed (epoch ``e`` uses ``(seed, e)``).
        chunksize: lines parsed per chunk.
        max_rows: cap on lines read from the range.
        cache: keep the decoded events in memory after the first pass.
        threads: parsing threads (None: :data:`~kerahep.data.higgs.PARSE_THREADS`).
    """
    return HiggsStream(path, rows, features=features, batch_size=batch_size, shuffle_buffer=shuffle_buffer,
                       seed=seed, chunksize=chunksize, max_rows=max_rows, cache=cache,
                       threads=threads).dataset(prefetch)


def write_higgs(path, labels, raw, sep: str = ",", fmt: str = "%.18e", compresslevel: int = 6) -> Path:
    """Write a HIGGS table (label then 28 stored features per line, no header) atomically.

    ``.gz`` paths are gzip-compressed (with a fixed time stamp, so equal inputs give equal
    bytes). The default number format is the UCI file's (``%.18e``, comma-separated).
    """
    from ...artifacts import atomic_path

    labels = np.asarray(labels, dtype=np.float64).reshape(-1, 1)
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape != (len(labels), len(RAW_FEATURES)):
        raise ValueError(f"expected ({len(labels)}, {len(RAW_FEATURES)}) features, got {raw.shape}")
    table = np.hstack([labels, raw])
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            with open(tmp, "wb") as raw_f, gzip.GzipFile(fileobj=raw_f, mode="wb", mtime=0,
                                                          compresslevel=compresslevel, filename="") as f:
                np.savetxt(f, table, fmt=fmt, delimiter=sep)
        else:
            with open(tmp, "wb") as f:
                np.savetxt(f, table, fmt=fmt, delimiter=sep)
    return path


def file_size_mb(path) -> float:
    return os.path.getsize(path) / 1e6
