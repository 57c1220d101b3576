"""What the streamed readers share below the batching (:mod:`kerahep.data.batches`): the number
of decoding threads (:func:`decode_threads`), one read of a plan (:class:`Chunk`), the error a
stream met while decoding (:class:`PendingError`), chunks decoded ahead, in order, on a
thread pool (:func:`load_in_order`) and the wanted rows of a chunk taken from its stored HDF5
chunks one at a time (:func:`selected_pieces`)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError
from .h5 import hdf5_errors


def decode_threads(threads: int | None = None) -> int:
    """Threads decoding chunks: ``threads`` when given, else ``os.cpu_count()`` (at least 1).

    Raises:
        ConfigError: ``threads`` below 1.
    """
    if threads is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(threads, bool) or int(threads) != threads or int(threads) < 1:
        raise ConfigError(f"data.decode_threads must be a positive integer or None (one per CPU core), got {threads!r}")
    return int(threads)


@dataclass(eq=False)
class Chunk:
    """One read of a plan: rows ``start:stop`` of source ``source``, of which ``take`` (offsets from
    ``start``; None: all) are used; ``key`` is whatever else the loader needs (a label, positions)."""

    source: int
    start: int
    stop: int
    take: np.ndarray | None = None
    key: object = None

    @property
    def size(self) -> int:
        """Rows the chunk contributes."""
        return int(self.stop - self.start) if self.take is None else int(len(self.take))


@dataclass
class PendingError:
    """The first :class:`DataError` a stream met while decoding, kept for the caller (thread-safe)."""

    error: DataError | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, exc: DataError) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc

    def pop(self) -> DataError | None:
        with self.lock:
            err, self.error = self.error, None
        return err

    @staticmethod
    @contextlib.contextmanager
    def surface(*pending: PendingError | None, clear: bool = True):
        """Re-raise a kept :class:`DataError` when the block fails with another error (``tf.data``'s)."""
        try:
            yield
        except DataError:
            raise
        except Exception as exc:
            for p in pending:
                err = None if p is None else (p.pop() if clear else p.error)
                if err is not None:
                    raise err from exc
            raise


def load_in_order(chunks: Sequence[Chunk], order: Iterable[int], opener, threads: int, ahead_rows: int,
                  pending: PendingError | None = None) -> Iterator[tuple]:
    """Yield the decoded arrays of ``chunks[i]`` for ``i`` in ``order``, decoded ahead on ``threads`` threads.

    Args:
        chunks: the plan.
        order: indices into ``chunks``.
        opener: ``opener()`` is a context manager giving ``load(chunk) -> tuple of arrays`` (open
            files shared by the threads), or an iterator of pieces (joined: :func:`as_arrays`).
        threads: decoding threads.
        ahead_rows: rows decoded ahead of the consumer (at least ``threads + 1`` chunks).
        pending: where a :class:`DataError` met while decoding is kept (it is re-raised too).
    """
    try:
        with opener() as load, thread_pool(threads) as pool:
            futures, rows_ahead = deque(), 0
            for i in order:
                while futures and rows_ahead >= ahead_rows and len(futures) > threads:
                    j, fut = futures.popleft()
                    rows_ahead -= chunks[j].size
                    yield fut.result()
                futures.append((i, pool.submit(lambda c: as_arrays(load(c)), chunks[i])))
                rows_ahead += chunks[i].size
            while futures:
                yield futures.popleft()[1].result()
    except DataError as exc:
        if pending is not None:
            pending.record(exc)
        raise


@contextlib.contextmanager
def thread_pool(threads: int):
    """A thread pool of ``threads`` decoding threads, shut down (pending work cancelled) on exit."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max(1, int(threads)), thread_name_prefix="kerahep-decode")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def as_tuple(out) -> tuple:
    """What a loader returned, as a tuple of arrays (one array: a tuple of one)."""
    return out if isinstance(out, tuple) else (out,)


def as_arrays(out) -> tuple:
    """What a loader returned as one tuple of whole arrays: a tuple of arrays, one array, or an
    iterator of such tuples (consecutive pieces of the chunk's rows, each copied before the next
    is asked for, since a loader may read every piece into the same buffer), joined."""
    if isinstance(out, (tuple, np.ndarray)):
        return as_tuple(out)
    pieces = [tuple(np.array(a) for a in as_tuple(p)) for p in out]
    return tuple(np.concatenate(f) for f in zip(*pieces))


def selected_pieces(items: Iterable[tuple[int, np.ndarray]], chunk: Chunk, path, what: str,
                    check_block: Callable[[np.ndarray, int], None] | None = None,
                    check_rows: Callable[[np.ndarray, np.ndarray], None] | None = None) -> Iterator[tuple]:
    """The wanted rows of ``chunk``, stored chunk by stored chunk: ``(rows as float32, their slice of chunk.key)``.

    ``items`` are the ``(first row, block)`` reads of ``chunk.start:chunk.stop`` one stored chunk
    at a time (``read.pieces`` of :func:`~kerahep.data.h5.direct_chunk_reader`), each read (inflated)
    under :func:`~kerahep.data.h5.hdf5_errors` ``(path, what)``. Of each block, the rows of
    ``chunk.take`` (offsets from ``chunk.start``; None: all) that fall in it are selected (the
    block itself when they are all of it); a block holding none of them yields nothing. Each
    piece is yielded before the next is read, so that the stream places it while it is in the
    CPU cache and a reader may inflate every piece into the same buffer.

    Args:
        items: the reads, ``(first row in the file, rows)``, in row order.
        chunk: the plan's read (:class:`Chunk`).
        path, what: the file and what was expected of it, for the error of a failed read.
        check_block: ``check_block(block, first)`` on every block as read, before the selection
            and whether or not any of its rows are wanted (a bad row is bad in any split).
        check_rows: ``check_rows(rows, file_rows)`` on the selected rows, ``file_rows`` their rows
            in the file.
    """
    start, take = chunk.start, chunk.take
    it = iter(items)
    while True:
        with hdf5_errors(path, what):
            item = next(it, None)
        if item is None:
            return
        first, block = item
        if check_block is not None:
            check_block(block, first)
        lo, hi = first - start, first - start + len(block)
        a, b = (lo, hi) if take is None else np.searchsorted(take, [lo, hi])
        if a == b:
            continue
        rows = block if b - a == len(block) else block[take[a:b] - lo]
        if check_rows is not None:
            check_rows(rows, first + np.arange(len(block)) if take is None else start + take[a:b])
        yield rows.astype(np.float32, copy=False), chunk.key[a:b]
