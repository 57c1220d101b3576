""":class:`JetStream`: chunk-aligned streaming of jet images (and targets) into ``tf.data``,
:func:`surface_errors` for the errors ``tf.data`` wraps, and :func:`channel_scales`."""

from __future__ import annotations

import contextlib

import numpy as np

from ...errors import DataError
from ..batches import BatchStream, Chunk, PendingError, decode_threads, load_in_order
from ..decoding import selected_pieces
from ..h5 import direct_chunk_reader, hdf5_errors
from .files import DEFAULT_BLOCK_BYTES, JET_KEY, JET_SHAPE, OUTPUTS, inspect_jet_file, open_jet_file
from .reads import plan_reads


class JetStream:
    """Chunk-aligned streaming of jet images (and targets) from one or more HDF5 files.

    Args:
        sources: ``[(path, indices), ...]``: the rows to read from each file (sorted; None:
            all). Positions count through the sources in order.
        targets: optional ``{"Y", "m", "pT"}`` arrays, one entry per selected row (in
            position order).
        key: the dataset of images.
        block_bytes: size of one read when a file is not chunked, and the most read per
            block when it is (always whole chunks, at least one).
        check_finite: raise :class:`DataError` for a block holding NaN or infinity.
        direct_chunks: inflate the stored chunks directly when the layout allows
            (:func:`direct_chunk_reader`); False: always read through h5py.
        read_threads: threads reading and inflating blocks (None: one per CPU core,
            :func:`kerahep.data.batches.decode_threads`; ``data.decode_threads``).

    The first :class:`DataError` raised while streaming is kept in :attr:`pending`
    (:attr:`error`); :func:`surface_errors` re-raises it when ``tf.data`` has wrapped it.
    """

    def __init__(self, sources, targets: dict | None = None, key: str = JET_KEY, image_shape=JET_SHAPE,
                 block_bytes: int = DEFAULT_BLOCK_BYTES, check_finite: bool = True, direct_chunks: bool = True,
                 read_threads: int | None = None):
        self.key = key
        self.direct_chunks = direct_chunks
        self.read_threads = decode_threads(read_threads)
        self.image_shape = tuple(image_shape)
        self.check_finite = check_finite
        self.pending = PendingError()
        jet_bytes = int(np.prod(self.image_shape)) * 4
        self.sources = []
        self.plans = []
        offset = 0
        for path, indices in sources:
            info = inspect_jet_file(path, labelled=False, key=key, image_shape=image_shape, check_first_chunk=False)
            idx = np.arange(info.n) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
            if idx.size and (idx[0] < 0 or idx[-1] >= info.n):
                raise DataError(path, f"row indices within 0..{info.n - 1}", f"{idx[0]}..{idx[-1]}")
            block_rows = max(1, block_bytes // jet_bytes)
            plan = plan_reads(idx, info.n, info.chunk_rows, block_rows)
            self.sources.append((info, idx))
            self.plans.extend((len(self.sources) - 1, a, b, p + offset, o) for a, b, p, o in plan)
            offset += idx.size
        self.n = offset
        if targets is not None:
            for k, v in targets.items():
                if len(v) != self.n:
                    where = ", ".join(str(info.path) for info, _ in self.sources) or "(no files)"
                    raise DataError(where, f"one {k!r} target per selected jet ({self.n})", f"{len(v)} entries")
            self.targets = {k: np.asarray(v, np.float32) for k, v in targets.items()}
        else:
            self.targets = None

    @property
    def paths(self) -> list:
        return [info.path for info, _ in self.sources]

    def __len__(self) -> int:
        return self.n

    @property
    def error(self) -> DataError | None:
        """The first :class:`DataError` met while streaming (None when there was none)."""
        return self.pending.error

    # ------------------------------------------------------------------ blocks
    def chunks(self) -> list:
        """The reads of the stream in file order, one :class:`~kerahep.data.batches.Chunk` per block
        (``take``: the wanted rows' offsets in the block, ``key``: their positions)."""
        return [Chunk(src, a, b, off, pos) for src, a, b, pos, off in self.plans]

    @contextlib.contextmanager
    def _opened(self):
        """The files opened for one pass; gives ``load(chunk) -> (jets, positions)`` for the decoding threads.

        A file moved, replaced or damaged since inspection raises a DataError naming it (kept
        for :func:`surface_errors`), not a bare OSError from h5py."""
        files, readers = {}, {}
        try:
            for src, (info, _) in enumerate(self.sources):
                files[src] = open_jet_file(info.path)
                with hdf5_errors(info.path, f"a readable dataset {self.key!r} of jet images"):
                    ds = files[src][self.key]
                    direct = direct_chunk_reader(ds) if self.direct_chunks else None
                readers[src] = direct or (lambda a, b, ds=ds: ds[a:b])
            yield lambda chunk: self._load(readers, chunk)
        finally:
            for f in files.values():
                f.close()

    def iter_blocks(self, shuffle: bool = False, seed=0, threads: int | None = None):
        """Yield ``(jets, positions)`` block by block (blocks in a seeded random order if ``shuffle``).

        The next blocks are read and inflated ahead on ``threads`` threads (default
        ``read_threads``; zlib-ng releases the GIL), ``threads + 1`` blocks in flight.
        """
        chunks = self.chunks()
        order = np.random.default_rng(seed).permutation(len(chunks)) if shuffle else range(len(chunks))
        threads = self.read_threads if threads is None else int(threads)
        rows = max((c.size for c in chunks), default=1)
        yield from load_in_order(chunks, order, self._opened, threads, rows, self.pending)

    def _load(self, readers, chunk):
        """Read, select and check one block: ``(jets, positions)``, or, when the direct chunk reader
        reads it, the same as pieces, one stored chunk at a time (:meth:`_pieces`)."""
        src, start, stop, off = chunk.source, chunk.start, chunk.stop, chunk.take
        info = self.sources[src][0]
        pieces = getattr(readers[src], "pieces", None)
        if pieces is not None:
            return self._pieces(info, pieces, chunk)
        with hdf5_errors(info.path, f"readable rows {start}-{stop - 1} of {self.key!r}"):
            block = self._read(readers[src], start, stop)
        jets = block if (len(off) == stop - start) else block[off]
        self._check(info, jets, start + off)
        return jets.astype(np.float32, copy=False), chunk.key

    def _pieces(self, info, pieces, chunk):
        """The block of ``chunk`` stored chunk by stored chunk: each inflated, selected and checked
        (the selected jets only), then placed by the stream while it is in the CPU cache, without
        first joining the block into one array of up to ``block_bytes`` (new memory the kernel must
        fault in and zero, then a second copy of every jet): :func:`~kerahep.data.decoding.selected_pieces`."""
        start, stop = chunk.start, chunk.stop
        yield from selected_pieces(self._read(pieces, start, stop), chunk, info.path,  # the reads of one block
                                   f"readable rows {start}-{stop - 1} of {self.key!r}",
                                   check_rows=lambda jets, rows: self._check(info, jets, rows))

    def _check(self, info, jets: np.ndarray, rows: np.ndarray) -> None:
        """Refuse NaN or infinity in ``jets`` (file rows ``rows``), naming the first bad jet's row."""
        if self.check_finite:
            # a jet's sum is NaN or infinite exactly when one of its pixels is (finite
            # float32 deposits of a physical size cannot overflow); half the cost of isfinite
            good = np.isfinite(jets.sum(axis=tuple(range(1, jets.ndim))))
            if not good.all():
                row = int(rows[np.flatnonzero(~good)[0]])
                raise DataError(info.path, f"finite values in {self.key!r}", f"NaN or infinity in jet {row}")

    @staticmethod
    def _read(reader, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (chunk-aligned) of the image dataset through ``reader``."""
        return reader(start, stop)

    def read_all(self, limit: int | None = None) -> np.ndarray:
        """The selected jets in position order as one array (for small selections only)."""
        n = self.n if limit is None else min(self.n, int(limit))
        out = np.empty((n,) + self.image_shape, np.float32)
        for jets, pos in self.iter_blocks():
            keep = pos < n
            out[pos[keep]] = jets[keep]
        return out

    # ----------------------------------------------------------------- tf.data
    def dataset(self, batch_size: int, shuffle: bool = False, seed: int = 0, shuffle_buffer: int = 256,
                drop_remainder: bool = False, with_targets: bool = True, cache: bool = False,
                threads: int | None = None):
        """A batched, prefetched ``tf.data.Dataset`` of ``jet`` (and ``{"y", "m", "pt"}`` targets).

        Whole batches come from :class:`kerahep.data.batches.BatchStream` (blocks inflated on
        ``threads`` threads, jets mixed in NumPy; ``tf.data`` only wraps and prefetches).

        Args:
            batch_size: jets per batch.
            shuffle: shuffle the block order (a new order each epoch) and the jets of a
                mixing window of ``shuffle_buffer`` jets.
            seed: the shuffles are a function of the seed and the epoch.
            shuffle_buffer: jets mixed at a time (each 500 kB for the real images; about
                three windows are in memory).
            drop_remainder: drop the last incomplete batch (contrastive training wants full
                batches).
            with_targets: yield ``(jet, targets)`` (needs ``targets``); else ``jet`` alone.
            cache: keep the decoded jets in memory after the first epoch (small selections).
            threads: decoding threads (default ``read_threads``).
        """
        import tensorflow as tf

        with_targets = with_targets and self.targets is not None
        keys = list(self.targets) if with_targets else []
        jet_spec = tf.TensorSpec((None,) + self.image_shape, tf.float32)
        stream = BatchStream(self.chunks(), opener=self._opened, batch_size=batch_size, shuffle=shuffle, seed=seed,
                             window_rows=max(1, int(shuffle_buffer)), drop_remainder=drop_remainder,
                             threads=self.read_threads if threads is None else threads, cache=cache,
                             pending=self.pending, fields=[(self.image_shape, np.float32), ((), np.int64)])
        if with_targets:
            spec = (jet_spec, {OUTPUTS.get(k, k): tf.TensorSpec((None, 1), tf.float32) for k in keys})

            def pack(batch):
                jets, pos = batch
                return jets, {OUTPUTS.get(k, k): self.targets[k][pos].reshape(-1, 1) for k in keys}
        else:
            spec = jet_spec

            def pack(batch):
                return batch[0]

        return stream.dataset(spec, pack=pack)


@contextlib.contextmanager
def surface_errors(*streams):
    """Re-raise a :class:`DataError` met inside ``tf.data`` as itself, not as a TensorFlow error."""
    with PendingError.surface(*[None if s is None else s.pending for s in streams]):
        yield


def channel_scales(stream: JetStream, max_jets: int = 256, quantile: float = 0.5) -> list:
    """Per-channel scales for :class:`~kerahep.layers.ChannelScale`: a quantile of the non-zero ``|x|``.

    Reads at most ``max_jets`` jets (the first blocks). A channel that is zero throughout gets 1.
    """
    seen = 0
    values = [[] for _ in range(stream.image_shape[-1])]
    for jets, _ in stream.iter_blocks():
        take = jets[: max(0, max_jets - seen)]
        seen += len(take)
        flat = np.abs(take.reshape(-1, take.shape[-1]))
        for c in range(flat.shape[1]):
            nz = flat[:, c][flat[:, c] > 0]
            if nz.size:
                values[c].append(nz)
        if seen >= max_jets:
            break
    out = []
    for v in values:
        v = np.concatenate(v) if v else np.zeros(0)
        out.append(float(np.quantile(v, quantile)) if v.size and np.quantile(v, quantile) > 0 else 1.0)
    return out
