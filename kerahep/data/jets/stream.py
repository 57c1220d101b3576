""":class:`JetStream`: chunk-aligned streaming of jet images (and targets) into ``tf.data``,
:func:`surface_errors` for the errors ``tf.data`` wraps, and :func:`channel_scales`."""

from __future__ import annotations

import contextlib
import math

import numpy as np

from ...errors import DataError
from ..h5 import hdf5_errors
from .files import DEFAULT_BLOCK_BYTES, JET_KEY, JET_SHAPE, OUTPUTS, inspect_jet_file, open_jet_file
from .reads import direct_chunk_reader, plan_reads


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
        read_threads: threads reading and inflating blocks ahead (None: a quarter of the
            CPU cores, at most 4; one on a small machine, where training needs the cores).

    The first :class:`DataError` raised while streaming is kept in :attr:`error`;
    :func:`surface_errors` re-raises it when ``tf.data`` has wrapped it.
    """

    def __init__(self, sources, targets: dict | None = None, key: str = JET_KEY, image_shape=JET_SHAPE,
                 block_bytes: int = DEFAULT_BLOCK_BYTES, check_finite: bool = True, direct_chunks: bool = True,
                 read_threads: int | None = None):
        import os

        self.key = key
        self.direct_chunks = direct_chunks
        self.read_threads = int(read_threads) if read_threads else max(1, min(4, (os.cpu_count() or 1) // 4))
        self.image_shape = tuple(image_shape)
        self.check_finite = check_finite
        self.error = None
        self._epoch = 0
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

    # ------------------------------------------------------------------ blocks
    def iter_blocks(self, shuffle: bool = False, seed: int = 0):
        """Yield ``(jets, positions)`` block by block (blocks in a seeded random order if ``shuffle``).

        With ``read_threads > 1`` the next blocks are read and inflated ahead in a small
        thread pool (zlib releases the GIL), at most ``2 * read_threads`` blocks in flight.
        """
        order = np.arange(len(self.plans))
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(self.plans))
        files, readers = {}, {}
        pool = None
        try:
            # a file moved, replaced or damaged since inspection: DataError naming it (kept in
            # self.error for surface_errors), not a bare OSError from h5py
            for src, (info, _) in enumerate(self.sources):
                if any(self.plans[i][0] == src for i in order):
                    files[src] = open_jet_file(info.path)
                    with hdf5_errors(info.path, f"a readable dataset {self.key!r} of jet images"):
                        ds = files[src][self.key]
                        direct = direct_chunk_reader(ds) if self.direct_chunks else None
                    readers[src] = direct or (lambda a, b, ds=ds: ds[a:b])
            if self.read_threads > 1 and len(order) > 1:
                from collections import deque
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(self.read_threads, thread_name_prefix="jet-reader")
                pending = deque()
                todo = iter(order)
                for i in todo:
                    pending.append(pool.submit(self._load, readers, int(i)))
                    if len(pending) >= 2 * self.read_threads:
                        break
                while pending:
                    jets, pos = pending.popleft().result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append(pool.submit(self._load, readers, int(nxt)))
                    yield jets, pos
            else:
                for i in order:
                    yield self._load(readers, int(i))
        except DataError as exc:
            self.error = exc
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            for f in files.values():
                f.close()

    def _load(self, readers, i: int):
        """Read, select and check the block of plan ``i``: ``(jets, positions)``."""
        src, start, stop, pos, off = self.plans[i]
        info = self.sources[src][0]
        with hdf5_errors(info.path, f"readable rows {start}-{stop - 1} of {self.key!r}"):
            block = self._read(readers[src], start, stop)
        jets = block if (len(off) == stop - start) else block[off]
        if self.check_finite:
            # a jet's sum is NaN or infinite exactly when one of its pixels is (finite
            # float32 deposits of a physical size cannot overflow); half the cost of isfinite
            good = np.isfinite(jets.sum(axis=tuple(range(1, jets.ndim))))
            if not good.all():
                row = start + int(off[np.flatnonzero(~good)[0]])
                raise DataError(info.path, f"finite values in {self.key!r}", f"NaN or infinity in jet {row}")
        return jets.astype(np.float32, copy=False), pos

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
                drop_remainder: bool = False, with_targets: bool = True, cache: bool = False):
        """A batched, prefetched ``tf.data.Dataset`` of ``jet`` (and ``{"y", "m", "pt"}`` targets).

        Args:
            batch_size: jets per batch.
            shuffle: shuffle the block order (a new order each epoch) and the jets in a
                buffer of ``shuffle_buffer`` jets.
            seed: the shuffles are a function of the seed and the epoch.
            shuffle_buffer: jets held for shuffling (each 500 kB for the real images).
            drop_remainder: drop the last incomplete batch (contrastive training wants full
                batches).
            with_targets: yield ``(jet, targets)`` (needs ``targets``); else ``jet`` alone.
            cache: keep the decoded jets in memory after the first epoch (small selections).
        """
        import tensorflow as tf

        with_targets = with_targets and self.targets is not None
        keys = list(self.targets) if with_targets else []
        jet_spec = tf.TensorSpec((None,) + self.image_shape, tf.float32)
        stream = self

        def gen():
            epoch = stream._epoch
            stream._epoch += 1
            for jets, pos in stream.iter_blocks(shuffle=shuffle, seed=(seed, epoch) if shuffle else 0):
                if with_targets:
                    yield jets, tuple(stream.targets[k][pos].reshape(-1, 1) for k in keys)
                else:
                    yield jets

        if with_targets:
            spec = (jet_spec, tuple(tf.TensorSpec((None, 1), tf.float32) for _ in keys))
        else:
            spec = jet_spec
        ds = tf.data.Dataset.from_generator(gen, output_signature=spec).unbatch()
        if with_targets:
            ds = ds.map(lambda x, t: (x, {OUTPUTS.get(k, k): v for k, v in zip(keys, t)}))
        if cache:
            ds = ds.cache()
        if shuffle:
            ds = ds.shuffle(max(1, int(shuffle_buffer)), seed=int(np.random.default_rng(seed).integers(2 ** 31)),
                            reshuffle_each_iteration=True)
        ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
        n_batches = self.n // batch_size if drop_remainder else math.ceil(self.n / batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
        return ds.prefetch(tf.data.AUTOTUNE)


@contextlib.contextmanager
def surface_errors(*streams):
    """Re-raise a :class:`DataError` met inside ``tf.data`` as itself, not as a TensorFlow error."""
    try:
        yield
    except DataError:
        raise
    except Exception:
        for s in streams:
            if s is not None and s.error is not None:
                err, s.error = s.error, None
                raise err from None
        raise


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
