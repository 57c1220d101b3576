"""Chunk plans of a HIGGS row range and the batch streams over them (:class:`HiggsStream`).

An uncompressed table (csv, tab- or space-separated) is read at random: one pass over the
range's bytes counts line ends with NumPy (no parsing) and records the byte offset of every
``chunksize``-th line (:func:`line_index`, kept per file, size, mtime and range in this
process), so every chunk is whole lines whose first line number is exact. With shuffling,
:class:`~kerahep.data.batches.BatchStream` reads the chunks in a new seeded order every
epoch (``os.pread`` of each chunk's bytes on the decoding threads, parsed and transformed
there) and mixes the rows of windows of ``shuffle_buffer`` events. A gzip stream has no
random access: it is read in file order (:func:`~kerahep.data.higgs.iter_chunks`), its
events mixed within windows; with ``cache`` the kept chunks are taken in a new seeded order
every epoch after the first. Without shuffling every format is read in file order.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections import OrderedDict

import numpy as np

from ...errors import ConfigError, DataError
from ...schema import feature_names
from ..batches import BatchStream, Chunk, PendingError, cut_batches, epoch_dataset
from . import streaming
from .checks import diagnose
from .features import transform
from .fileformat import FileFormat, resolve_rows, sniff, stream_errors

#: bytes read at a time by the pass that finds the chunk boundaries
SCAN_BYTES = 1 << 24
#: line indexes kept in this process (the most recently used)
INDEX_CACHE_SIZE = 32
_INDEX: OrderedDict = OrderedDict()
_INDEX_LOCK = threading.Lock()


def line_index(fmt: FileFormat, start: int, nrows: int | None, chunksize: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lines, offsets)`` of the chunks of lines ``start .. start + nrows`` (0-based; None: to the end).

    ``lines[k]`` is the first line (0-based) of chunk ``k`` and ``offsets[k]`` its byte offset;
    the last entry is the end of the range (its stop line, or the file's line count when the
    file ends first, at the file's size). Chunks hold ``chunksize`` lines (the last one fewer).
    Lines end at ``\\n``; a last line without one counts. Kept per (path, size, mtime,
    ``start``, ``nrows``, ``chunksize``), so later epochs and datasets do not read it again.
    """
    st = os.stat(fmt.path)
    key = (str(fmt.path), st.st_size, st.st_mtime_ns, int(start), nrows, int(chunksize))
    with _INDEX_LOCK:
        if key in _INDEX:
            _INDEX.move_to_end(key)
            return _INDEX[key]
    stop = None if nrows is None else int(start) + int(nrows)
    index = _scan(fmt, int(start), stop, int(chunksize))
    with _INDEX_LOCK:
        _INDEX[key] = index
        while len(_INDEX) > INDEX_CACHE_SIZE:
            _INDEX.popitem(last=False)
    return index


def _scan(fmt: FileFormat, start: int, stop: int | None, chunksize: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`line_index` without the cache: one pass counting ``\\n`` in big reads."""
    lines, offsets = ([0], [0]) if start == 0 else ([], [])
    seen = base = 0  # line ends before the block, bytes before it
    last = 10
    buf = bytearray(SCAN_BYTES)
    with stream_errors(fmt, lambda: seen), open(fmt.path, "rb", buffering=0) as f:
        while stop is None or seen < stop:
            got = f.readinto(buf)
            if not got:
                break
            block = np.frombuffer(buf, np.uint8, count=got)
            ends = np.flatnonzero(block == 10)
            # the block starts lines seen + 1 .. hi (each just past one of its line ends)
            hi = seen + len(ends) if stop is None else min(seen + len(ends), stop)
            first = start if seen + 1 <= start else start + -(-(seen + 1 - start) // chunksize) * chunksize
            ts = list(range(first, hi + 1, chunksize))
            if stop is not None and seen < stop <= hi and (not ts or ts[-1] != stop):
                ts.append(stop)
            lines += ts
            offsets += (base + ends[np.asarray(ts, np.int64) - 1 - seen] + 1).tolist()
            seen, base, last = seen + len(ends), base + got, int(block[-1])
    if stop is not None and seen >= stop:
        end_line, end_offset = stop, offsets[lines.index(stop)]
    else:  # the file ended first
        end_line, end_offset = seen + (base > 0 and last != 10), base
    keep = [k for k, line in enumerate(lines) if line < end_line]
    return (np.asarray([lines[k] for k in keep] + [end_line], np.int64),
            np.asarray([offsets[k] for k in keep] + [end_offset], np.int64))


def plan(fmt: FileFormat, start: int, stop: int | None, max_rows: int | None = None,
         chunksize: int = streaming.CHUNK_LINES) -> list[Chunk]:
    """The chunks of a resolved row range (:func:`~kerahep.data.higgs.resolve_rows`), in file order:
    ``Chunk(0, first line, stop line, key=(first byte, stop byte))`` (lines 0-based).

    Raises:
        DataError: the file ends before the range starts, or (``stop`` given) before it ends,
            with the words of :func:`~kerahep.data.higgs.iter_chunks`.
    """
    if chunksize < 1:
        raise ConfigError(f"chunksize must be >= 1, got {chunksize}")
    nrows = None if stop is None else stop - start
    if max_rows is not None:
        nrows = max_rows if nrows is None else min(nrows, max_rows)
    lines, offsets = line_index(fmt, start, nrows, chunksize)
    end = int(lines[-1])
    if end <= start and start > 0:
        raise DataError(fmt.path, f"more than {start} lines for the row range {(start, stop)}",
                        f"{start} lines or fewer")
    if nrows is not None and stop is not None and end - start < nrows:
        raise DataError(fmt.path, f"lines {start + 1}-{start + nrows} for the row range {(start, stop)}",
                        f"a file that ends at line {end}")
    return [Chunk(0, int(lines[k]), int(lines[k + 1]), key=(int(offsets[k]), int(offsets[k + 1])))
            for k in range(len(lines) - 1)]


class HiggsStream:
    """Whole batches ``(x, y)`` of a HIGGS row range, a new epoch at every :meth:`batches`
    (the arguments are :func:`~kerahep.data.higgs.higgs_dataset`'s; see the module docstring).

    ``pending`` keeps the :class:`DataError` met while reading (a bad line, naming the file
    and line); :meth:`surface` re-raises it where ``tf.data`` wrapped it in its own error.
    """

    def __init__(self, path, rows=None, features: str = "low", batch_size: int = 256, shuffle_buffer: int = 0,
                 seed: int = 0, chunksize: int = streaming.CHUNK_LINES, max_rows: int | None = None,
                 cache: bool = False, threads: int | None = None):
        self.fmt = sniff(path)  # missing file, bad first line: DataError now, not inside tf.data
        self.features, self.n_features = features, len(feature_names(features))
        if int(batch_size) < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.batch_size, self.seed, self.cache = int(batch_size), int(seed), bool(cache)
        self.chunksize, self.max_rows = int(chunksize), max_rows
        self.shuffle = bool(shuffle_buffer and shuffle_buffer > 1)
        self.window_rows = int(shuffle_buffer) if self.shuffle else 0
        self.threads = streaming.PARSE_THREADS if threads is None else max(1, int(threads))
        self.rows = resolve_rows(self.fmt.path, rows)
        self.pending = PendingError()
        self.kept: list = []
        self._epochs, self._lock = itertools.count(), threading.Lock()
        self.stream = None
        if self.shuffle and not self.fmt.gzip:
            self.stream = BatchStream(
                plan(self.fmt, *self.rows, max_rows=max_rows, chunksize=self.chunksize), opener=self._opened,
                batch_size=self.batch_size, shuffle=True, seed=self.seed, window_rows=self.window_rows,
                threads=self.threads, cache=self.cache, pending=self.pending,
                fields=[((self.n_features,), np.float32), ((), np.float32)])

    @property
    def n_batches(self) -> int | None:
        """Batches per epoch where the plan knows them (a shuffled uncompressed table), else None."""
        return None if self.stream is None else self.stream.n_batches

    def _post(self, raw: np.ndarray) -> np.ndarray:
        return transform(raw, self.features)

    @contextlib.contextmanager
    def _opened(self):
        """The file opened once for an epoch; ``load(chunk)`` reads and parses one chunk (a decoding thread)."""
        fd = os.open(self.fmt.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            yield lambda chunk: self._load(fd, chunk)
        finally:
            os.close(fd)

    def _load(self, fd: int, chunk: Chunk) -> tuple:
        lo, hi = chunk.key
        with stream_errors(self.fmt, lambda: chunk.start):
            data = os.pread(fd, hi - lo, lo) if hasattr(os, "pread") else _read_at(self.fmt.path, lo, hi - lo)
        if len(data) != hi - lo:
            raise DataError(self.fmt.path, f"lines {chunk.start + 1}-{chunk.stop} at bytes {lo}-{hi}",
                            "a shorter file (it changed while being read)")
        arr, x = streaming.parse_and_post(self.fmt, data, chunk.size, self._post)
        if arr is None:
            diagnose(self.fmt, chunk.start, chunk.stop)
        return x, np.ascontiguousarray(arr[:, 0])

    def _in_order(self, epoch: int):
        """Decoded ``(x, y)`` chunks in file order (after a complete, kept first pass: in a new
        seeded order when shuffling)."""
        if self.kept and self.kept[-1] is None:
            parts = self.kept[:-1]
            if self.shuffle:
                parts = [parts[i] for i in np.random.default_rng([self.seed, epoch, 1]).permutation(len(parts))]
            yield from parts
            return
        self.kept.clear()
        for y, x, _ in streaming.iter_chunks(self.fmt.path, self.rows, chunksize=self.chunksize, max_rows=self.max_rows,
                                             threads=self.threads, post=self._post, fmt=self.fmt):
            if self.cache:
                self.kept.append((x, y))
            yield x, y
        if self.cache:
            self.kept.append(None)

    def batches(self, epoch: int | None = None):
        """The batches of one epoch (the next one when ``epoch`` is None); epoch ``e`` uses ``(seed, e)``."""
        if epoch is None:
            with self._lock:
                epoch = next(self._epochs)
        if self.stream is not None:
            yield from self.stream.batches(epoch)
            return
        rng = np.random.default_rng([self.seed, epoch, 2]) if self.shuffle else None
        try:
            yield from cut_batches(self._in_order(epoch), self.batch_size, rng, window_rows=self.window_rows)
        except DataError as exc:
            self.pending.record(exc)
            raise

    def dataset(self, prefetch: bool = True):
        """A ``tf.data.Dataset`` of ``(x, y)`` batches, a new epoch at every iteration (the
        cardinality set where :attr:`n_batches` is known)."""
        import tensorflow as tf

        sig = (tf.TensorSpec((None, self.n_features), tf.float32), tf.TensorSpec((None,), tf.float32))
        return epoch_dataset(self.batches, sig, self.n_batches, prefetch=None if prefetch else 0)

    def surface(self):
        """Context manager: a failure of this stream's dataset raises the kept :class:`DataError`."""
        return PendingError.surface(self.pending)


def _read_at(path, offset: int, size: int) -> bytes:
    """``size`` bytes of ``path`` from ``offset`` (where ``os.pread`` is missing)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)
