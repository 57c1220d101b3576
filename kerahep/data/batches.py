"""Whole batches assembled in NumPy, for every streamed reader: ``tf.data`` only wraps and prefetches.

A streamed reader describes an epoch as a *plan* of chunks (:class:`Chunk`: rows
``[start, stop)`` of one source file, optionally only some of them) and gives a loader that
decodes one chunk into arrays. :class:`BatchStream` then, per epoch:

1. orders the chunks: with ``shuffle``, a seeded permutation of each source's chunks, the
   sources interleaved in proportion (:func:`interleave`), so that every stretch of the
   stream holds every file (and, where files are classes, every class);
2. cuts that order into *mixing windows* of at least ``window_rows`` rows and a chunk of
   every source, and draws a seeded permutation of each window's rows;
3. decodes the chunks on a :class:`concurrent.futures.ThreadPoolExecutor` of
   ``decode_threads`` threads (default ``os.cpu_count()``, :func:`decode_threads`), each
   thread placing its chunk's rows straight at their permuted places in the window's
   buffer while the chunk is still in cache (the buffers, aligned and reused once nothing
   refers to them: :mod:`kerahep.data.windows`); the loaders work where the GIL is released
   (zlib-ng inflating chunks read with ``read_direct_chunk``, NumPy copying memory maps);
4. hands out the windows in order as whole batches (views of the buffer; a batch across a
   window boundary is joined from both), so only the last batch of an epoch may be smaller.
   ``tf.data`` gets the windows whole (:meth:`BatchStream.blocks`) and cuts the same batches
   with ``rebatch``: its per-element Python call (``from_generator``) costs more than
   decoding a batch of small maps, so it is paid once per window, not once per batch.

A loader may return its chunk as consecutive pieces (an iterator of tuples of arrays), each
placed, and cast to the fields' dtypes, before the next is read: a chunk then goes from the
file into its permuted rows of the window in one pass through the cache (hcal_dqm's float64
maps land as float32 without a full-size float64 copy in between).

Every row of the plan comes out exactly once per epoch, in a new order each epoch, the
same order for the same seed. ``cache=True`` keeps the decoded chunks after their first
epoch, so later epochs are served from memory (still reshuffled). A
:class:`~kerahep.errors.DataError` raised while decoding is kept in the stream's
:class:`PendingError` (``tf.data`` wraps what a generator raises in its own error;
:meth:`PendingError.surface` turns it back). :func:`epoch_dataset` is the ``tf.data`` side:
``from_generator`` with batch-shaped signatures, the cardinality asserted, ``prefetch``.

Example:
    >>> import numpy as np
    >>> data = np.arange(10)
    >>> chunks = [Chunk(0, s, min(s + 4, 10)) for s in range(0, 10, 4)]
    >>> stream = BatchStream(chunks, lambda c: (data[c.start:c.stop],), batch_size=4, shuffle=True, seed=1)
    >>> sorted(np.concatenate([b[0] for b in stream.batches(epoch=0)]).tolist()) == list(range(10))
    True
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .decoding import Chunk, PendingError, as_arrays, as_tuple, decode_threads, load_in_order, thread_pool
from .windows import Buffers, Window, aligned_empty, spec

#: batches ``tf.data`` prefetches after a stream (:func:`epoch_dataset`; autotuning is off)
PREFETCH = 2

__all__ = ["BatchStream", "Chunk", "PendingError", "aligned_empty", "cut_batches", "decode_threads", "epoch_dataset",
           "interleave", "load_in_order", "no_autotune", "thread_pool"]


def interleave(chunks: Sequence[Chunk], rng: np.random.Generator | None = None) -> list[int]:
    """Indices of ``chunks`` in stream order: each source's chunks (permuted with ``rng`` when given)
    interleaved so that every source has delivered about the same fraction of its rows at every
    point of the stream.

    Example:
        >>> [i for i in interleave([Chunk(0, 0, 2), Chunk(0, 2, 4), Chunk(1, 0, 4)])]
        [0, 2, 1]
    """
    sources = sorted({c.source for c in chunks})
    per = {s: [i for i, c in enumerate(chunks) if c.source == s] for s in sources}
    if rng is not None:
        per = {s: [idx[k] for k in rng.permutation(len(idx))] for s, idx in per.items()}
    totals = {s: max(sum(chunks[i].size for i in idx), 1) for s, idx in per.items()}
    done, pos, out = dict.fromkeys(sources, 0), dict.fromkeys(sources, 0), []
    while len(out) < len(chunks):
        s = min((s for s in sources if pos[s] < len(per[s])), key=lambda k: (done[k] / totals[k], k))
        i = per[s][pos[s]]
        out.append(i)
        done[s] += chunks[i].size
        pos[s] += 1
    return out


class _Batcher:
    """Cuts a stream of filled windows (tuples of arrays) into batches of ``batch_size`` rows: views
    inside a window, one joined batch across a window boundary; only the last may be smaller."""

    def __init__(self, batch_size: int, drop_remainder: bool = False):
        self.bs, self.drop = int(batch_size), bool(drop_remainder)
        self.tail: list[tuple] = []
        self.tail_rows = 0

    def feed(self, fields: tuple) -> Iterator[tuple]:
        n, s, bs = len(fields[0]), 0, self.bs
        if self.tail_rows:
            need = bs - self.tail_rows
            if n < need:
                self.tail.append(fields)
                self.tail_rows += n
                return
            yield _join(self.tail + [tuple(f[:need] for f in fields)])
            self.tail, self.tail_rows, s = [], 0, need
        while s + bs <= n:
            yield tuple(f[s:s + bs] for f in fields)
            s += bs
        if s < n:
            self.tail, self.tail_rows = [tuple(f[s:] for f in fields)], n - s

    def finish(self) -> Iterator[tuple]:
        if self.tail_rows and not self.drop:
            yield _join(self.tail)
        self.tail, self.tail_rows = [], 0


def _join(parts: list[tuple]) -> tuple:
    if len(parts) == 1:
        return parts[0]
    out = []
    for f in zip(*parts):
        buf = aligned_empty((sum(len(a) for a in f),) + f[0].shape[1:], f[0].dtype)
        out.append(np.concatenate(f, out=buf))
    return tuple(out)


def cut_batches(parts: Iterable[tuple], batch_size: int, rng: np.random.Generator | None = None,
                window_rows: int = 0, drop_remainder: bool = False) -> Iterator[tuple]:
    """Whole batches from a sequential stream of decoded parts (tuples of arrays with equal first dimensions).

    Parts are gathered into windows of at least ``window_rows`` rows; with ``rng`` the rows of a
    window are placed in a random order (one scatter per part), then the windows are cut into
    batches of ``batch_size``, a batch crossing a window boundary joined from both; only the
    last batch may be smaller (dropped with ``drop_remainder``). For sources read in order
    (a CSV text); :class:`BatchStream` does the same for plans of chunks, on threads.
    """
    batcher = _Batcher(batch_size, drop_remainder)
    window, rows = [], 0
    for part in itertools.chain(parts, [None]):
        if part is not None:
            window.append(part)
            rows += len(part[0])
            if rows < max(int(window_rows), int(batch_size), 1):
                continue
        if window:
            w = Window.allocate(rows, spec(window[0]), rng)
            at = 0
            for p in window:
                w.place(at, p)
                at += len(p[0])
            window, rows = [], 0
            yield from batcher.feed(w.bufs)
    yield from batcher.finish()


class BatchStream:
    """Whole, shuffled batches over a plan of chunks (see the module docstring).

    Args:
        chunks: the plan (:class:`Chunk`), in file order.
        load: ``load(chunk) -> tuple of arrays`` (first dimension ``chunk.size``), called on the
            decoding threads; or None when ``opener`` is given.
        opener: ``opener()`` is a context manager giving ``load`` for one epoch (files opened
            once and shared by the threads).
        batch_size: rows per batch.
        shuffle: new chunk order and row order every epoch (seeded); False: plan order.
        seed: seed of the orders (epoch ``e`` uses ``(seed, e)``).
        window_rows: rows mixed at a time when shuffling (memory: about three windows, or
            more when a window holds fewer chunks than there are threads).
        drop_remainder: drop the last, smaller batch.
        threads: decoding threads (None: :func:`decode_threads`).
        cache: keep decoded chunks after their first epoch (data that fit in memory).
        pending: where errors met while decoding are kept (a new one by default).
        fields: ``[(row shape, dtype), ...]`` of what ``load`` returns (None: learnt by
            loading the first chunk once).
        interleave_files: without ``shuffle`` too, interleave the sources in proportion
            (every stretch of an evaluation stream holds every file); False: plan order.
    """

    def __init__(self, chunks: Sequence[Chunk], load: Callable | None = None, *, opener=None, batch_size: int,
                 shuffle: bool = False, seed=0, window_rows: int = 4096, drop_remainder: bool = False,
                 threads: int | None = None, cache: bool = False, pending: PendingError | None = None, fields=None,
                 interleave_files: bool = False):
        if (load is None) == (opener is None):
            raise TypeError("BatchStream needs exactly one of load and opener")
        if int(batch_size) < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.chunks = list(chunks)
        self.opener = opener or (lambda: contextlib.nullcontext(load))
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.window_rows = max(1, int(window_rows))
        self.drop_remainder = bool(drop_remainder)
        self.threads = decode_threads(threads)
        self.cache = {} if cache else None
        self.pending = pending if pending is not None else PendingError()
        self.fields = None if fields is None else [(tuple(s), np.dtype(d)) for s, d in fields]
        self.interleave_files = bool(interleave_files)
        self.n = int(sum(c.size for c in self.chunks))
        self._epochs = itertools.count()
        self._lock = threading.Lock()
        self._buffers = Buffers()

    @property
    def n_batches(self) -> int:
        return self.n // self.batch_size if self.drop_remainder else -(-self.n // self.batch_size)

    def order(self, epoch: int = 0) -> list[int]:
        """Chunk indices of epoch ``epoch`` in stream order."""
        if not self.shuffle:
            return interleave(self.chunks) if self.interleave_files else list(range(len(self.chunks)))
        return interleave(self.chunks, np.random.default_rng(self._seed(epoch, 1)))

    def _seed(self, epoch: int, stream: int) -> list[int]:
        seed = list(self.seed) if isinstance(self.seed, (tuple, list)) else [int(self.seed)]
        return [int(s) for s in seed] + [int(epoch), stream]

    def windows(self, order: Sequence[int]) -> list[list[int]]:
        """``order`` cut into mixing windows: at least ``window_rows`` rows (a batch in plan order) and,
        when shuffling, a chunk of every source."""
        rows_min = self.window_rows if self.shuffle else self.batch_size
        parts_min = len({c.source for c in self.chunks}) if self.shuffle else 1
        out, cur, rows = [], [], 0
        for i in order:
            cur.append(i)
            rows += self.chunks[i].size
            if rows >= rows_min and len(cur) >= parts_min:
                out.append(cur)
                cur, rows = [], 0
        return out + ([cur] if cur else [])

    def batches(self, epoch: int | None = None) -> Iterator[tuple]:
        """The batches of one epoch (the next one when ``epoch`` is None), as tuples of arrays."""
        batcher = _Batcher(self.batch_size, self.drop_remainder)
        with contextlib.closing(self.blocks(epoch)) as windows:  # an epoch left early stops its decoding now
            for window in windows:
                yield from batcher.feed(window)
        yield from batcher.finish()

    def blocks(self, epoch: int | None = None) -> Iterator[tuple]:
        """The filled mixing windows of one epoch (the next one when ``epoch`` is None), in order, as
        tuples of arrays: the epoch's rows in the order of :meth:`batches`, not yet cut into batches
        (what :meth:`dataset` hands ``tf.data``, which cuts them with ``rebatch``)."""
        if epoch is None:
            with self._lock:
                epoch = next(self._epochs)
        order = self.order(epoch)
        rng = np.random.default_rng(self._seed(epoch, 2)) if self.shuffle else None
        cached = self.cache is not None and all(i in self.cache for i in order)
        try:
            with (contextlib.nullcontext(None) if cached else self.opener()) as load, thread_pool(self.threads) as pool:
                yield from self._filled(iter(self.windows(order)), load, pool, rng)
        except DataError as exc:
            self.pending.record(exc)
            raise

    def _filled(self, plan: Iterator[list[int]], load, pool, rng) -> Iterator[tuple]:
        """Fill the windows of ``plan`` on ``pool`` (two windows, or enough chunks for every thread,
        ahead) and yield their buffers in order."""
        ahead, probed, buffers = deque(), {}, self._buffers
        plan = iter(plan)
        if self.fields is None:  # learn the fields from the first chunk, decoded once (on the pool)
            first = next(plan, None)
            if first is None:
                return
            probed[first[0]] = pool.submit(lambda c: as_arrays(load(c)), self.chunks[first[0]]).result()
            self.fields = spec(probed[first[0]])
            plan = itertools.chain([first], plan)
        buffers.keep = 2 * len(self.fields)  # two windows kept free (a buffer per field each)
        # rows held ahead: two windows, or more while the threads lack chunks, up to a chunk per thread
        cap = max(2 * self.window_rows, (self.threads + 1) * max((c.size for c in self.chunks), default=1))
        while True:
            while len(ahead) < 2 or (sum(len(w.bufs[0]) for w, _ in ahead) < cap
                                     and sum(not f.done() for _, fs in ahead for f in fs) <= self.threads):
                indices = next(plan, None)
                if indices is None:
                    break
                window = Window.allocate(sum(self.chunks[i].size for i in indices), self.fields, rng, buffers)
                starts = np.cumsum([0] + [self.chunks[i].size for i in indices[:-1]])
                ahead.append((window, [pool.submit(self._fill, load, i, window, int(at), probed.pop(i, None))
                                       for i, at in zip(indices, starts)]))
            if not ahead:
                break
            window, futures = ahead.popleft()
            for f in futures:
                f.result()
            yield window.bufs

    def _fill(self, load, i: int, window: Window, at: int, arrays: tuple | None = None) -> None:
        """Decode chunk ``i`` (unless cached or given) and place its rows in ``window`` (a decoding thread).

        ``load`` returns a tuple of arrays, or an iterator of such tuples (consecutive pieces of
        the chunk's rows, each placed, and cast to the fields' dtypes, before the next is asked
        for, so that a loader may read every piece into the same small buffer)."""
        chunk = self.chunks[i]
        if arrays is None and self.cache is not None:
            arrays = self.cache.get(i)
        if arrays is None:
            out = load(chunk)
            if isinstance(out, (tuple, np.ndarray)):
                arrays = as_tuple(out)
            else:
                done = 0
                for piece in out:
                    piece = as_tuple(piece)
                    window.place(at + done, piece)
                    done += len(piece[0])
                if done != chunk.size:
                    raise ValueError(f"the loader gave {done} rows for a chunk of {chunk.size} "
                                     f"(source {chunk.source}, rows {chunk.start}-{chunk.stop - 1})")
                if self.cache is not None:
                    self.cache[i] = window.rows(at, done)
                return
        if self.cache is not None:
            self.cache[i] = arrays
        window.place(at, arrays)

    def dataset(self, signature, pack: Callable | None = None, prefetch: int | None = None):
        """A ``tf.data.Dataset`` of the batches, a new epoch at every iteration, cardinality set
        (see :func:`epoch_dataset`).

        ``tf.data`` gets the filled windows (:meth:`blocks`) and cuts them into the batches of
        :meth:`batches` with ``rebatch`` (in C++), so its Python call per element, the costliest
        step of a streamed batch, happens once per window instead of once per batch. ``pack``
        is therefore given blocks of any number of rows and must work row by row.
        """
        return epoch_dataset(self.blocks, signature, self.n_batches, pack, prefetch, rebatch=self.batch_size,
                             drop_remainder=self.drop_remainder)

    def surface(self):
        """Context manager: a failure of this stream's dataset raises the kept :class:`DataError`."""
        return PendingError.surface(self.pending)


def epoch_dataset(batches_of_epoch: Callable[[], Iterable[tuple]], signature, n_batches: int | None = None,
                  pack: Callable | None = None, prefetch: int | None = None, rebatch: int | None = None,
                  drop_remainder: bool = False):
    """Wrap a source of whole batches in ``tf.data``: ``from_generator`` with batch-shaped
    signatures, the cardinality asserted, autotuning off, prefetching; nothing else per element.

    Args:
        batches_of_epoch: called once per iteration of the dataset (an epoch); yields batches.
        signature: the ``output_signature`` of one batch (batch-shaped ``tf.TensorSpec`` s).
        n_batches: batches per epoch, asserted (None: unknown).
        pack: turns what ``batches_of_epoch`` yields into ``signature``'s structure (default:
            as yielded; the one array of a one-field batch when ``signature`` is one spec).
        prefetch: batches prefetched (None: :data:`PREFETCH`; 0: none). Autotuning is off
            (:func:`no_autotune`), for this dataset and those built on it.
        rebatch: when given, ``batches_of_epoch`` yields blocks of rows of any size, in stream
            order, and ``tf.data`` cuts them into batches of ``rebatch`` rows across block
            boundaries (``Dataset.rebatch``: only the last batch smaller, or dropped with
            ``drop_remainder``), one Python call per block instead of one per batch.
        drop_remainder: with ``rebatch``, drop the last, smaller batch.
    """
    import tensorflow as tf

    if pack is None and not isinstance(signature, (tuple, list)):
        def pack(batch):  # one field: the batch is its array, not a tuple of one
            return batch[0]

    def gen():
        for batch in batches_of_epoch():
            yield pack(batch) if pack is not None else batch

    ds = tf.data.Dataset.from_generator(gen, output_signature=signature)
    if rebatch is not None:
        ds = ds.rebatch(int(rebatch), drop_remainder=bool(drop_remainder))
    if n_batches is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(int(n_batches)))
    ds = ds.with_options(no_autotune())
    if prefetch == 0:
        return ds
    return ds.prefetch(PREFETCH if prefetch is None else int(prefetch))


def no_autotune():
    """``tf.data.Options`` with autotuning off, for the pipelines whose work is done in NumPy.

    ``tf.data``'s autotuner (on by default) ends an epoch late: after the last batch, the
    iterator waits on the tuner's thread, for about half as long as the epoch took in
    some epochs (measured: 0.46 s after a 2 s epoch, 0.12 s after 0.18 s, 20-45 ms after
    25 ms; none with autotuning off), in ``model.fit`` too. These pipelines have nothing for it
    to tune: the decoding runs on kerahep's own threads, and ``tf.data`` only prefetches a
    fixed :data:`PREFETCH` batches (the stream already holds two windows ahead). Options
    reach every dataset built on top (a ``map`` with ``AUTOTUNE`` then runs on one thread per
    core).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options
