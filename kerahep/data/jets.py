"""Streaming reader of the jet_ssl HDF5 files into ``tf.data``.

The files (their real layout, as the README's jet_ssl section gives it):

* ``Dataset_Specific_Unlabelled.h5``: ``jet`` ``(N, 125, 125, 8)`` float32;
* ``Dataset_Specific_labelled_full_only_for_2i.h5``: ``jet`` and the targets ``Y`` (0 QCD,
  1 top), ``m`` and ``pT`` (GeV), which may be stored 2-D ``(N, 1)`` and are reshaped here.

A jet image is 500 kB, so the 60,000-jet file is 30 GB: :class:`JetStream` never loads a
file. It reads *chunk-aligned* slices (whole HDF5 chunks, so each compressed chunk is
decompressed exactly once per pass), blocks of a few MB at a time, in a shuffled block
order each epoch, and feeds a bounded shuffle buffer, ``batch`` and ``prefetch``. Peak
memory is set by the block size, the shuffle buffer and the prefetch depth, not by the
file size. Every block is checked for NaN and infinities as it is read.

Decompression is the reader's main cost (about 0.5 ms of CPU per jet through h5py, which
competes with training on a small machine). For the usual layout (float32, whole images
per chunk, gzip as the only filter) the stream reads the compressed chunks themselves
(``read_direct_chunk``) and inflates them with the fastest zlib at hand: ``zlib_ng`` (a
dependency; about seven times the standard zlib's speed on these sparse images, a third
of h5py's reader CPU in all), else ``isal``, else :mod:`zlib` (then about h5py's cost).
Any other layout goes through h5py as usual.

The channels are, in order: track pT, dz, d0 (pT-weighted), ECAL, HCAL, pixel layers 1-3.

Example::

    info = inspect_jet_file("Dataset_Specific_labelled_full_only_for_2i.h5", labelled=True)
    targets = read_targets(info.path)
    stream = JetStream([(info.path, None)], targets=targets)
    ds = stream.dataset(batch_size=64, shuffle=True, seed=1)   # (jet, {"y", "m", "pt"})
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .h5 import hdf5_errors

JET_KEY = "jet"
TARGET_KEYS = ("Y", "m", "pT")
#: names of the target outputs in datasets and models
OUTPUTS = {"Y": "y", "m": "m", "pT": "pt"}
JET_SHAPE = (125, 125, 8)
CHANNELS = ("track_pt", "track_dz", "track_d0", "ecal", "hcal", "pixel_layer1", "pixel_layer2", "pixel_layer3")
#: bytes per read when the file has no chunking to align to
DEFAULT_BLOCK_BYTES = 16 * 2 ** 20


@dataclass(frozen=True)
class JetFileInfo:
    """What :func:`inspect_jet_file` learned about a file without reading the images."""

    path: Path
    n: int
    shape: tuple
    chunk_rows: int | None
    compression: str | None
    labelled: bool
    keys: tuple = field(default_factory=tuple)

    @property
    def jet_bytes(self) -> int:
        return int(np.prod(self.shape)) * 4


def _open(path):
    import h5py

    path = Path(path)
    if not path.exists():
        raise DataError(path, "an HDF5 file of jet images", "no such file")
    if path.is_dir():
        raise DataError(path, "an HDF5 file of jet images", "a directory")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(path, "an HDF5 file of jet images", f"an unreadable file ({exc})") from None


def inspect_jet_file(path, labelled: bool | None = None, key: str = JET_KEY, image_shape=JET_SHAPE,
                     check_first_chunk: bool = True) -> JetFileInfo:
    """Check a jet file's layout and return its size and chunking (reads at most one chunk).

    Args:
        path: the HDF5 file.
        labelled: True: the targets ``Y``, ``m``, ``pT`` must be there; False: not needed;
            None: detect (labelled when ``Y`` is present).
        key: the dataset of images.
        image_shape: expected shape of one image ``(height, width, channels)``.
        check_first_chunk: read the first chunk and fail early if it holds NaN or infinities.

    Raises:
        DataError: missing or unreadable file, missing key, wrong shape, channel count or
            dtype, an empty file, targets of the wrong shape or length, NaN in the first chunk.
    """
    path = Path(path)
    with _open(path) as f, hdf5_errors(path, "a readable HDF5 file of jet images"):
        keys = tuple(sorted(f.keys()))
        if key not in f:
            raise DataError(path, f"a dataset {key!r} of jet images {tuple(image_shape)}",
                            f"keys {list(keys)}" if keys else "no datasets")
        ds = f[key]
        if not hasattr(ds, "shape"):
            raise DataError(path, f"{key!r} to be a dataset", "a group")
        shape = tuple(ds.shape)
        if len(shape) != 1 + len(image_shape):
            raise DataError(path, f"{key!r} of shape (N, {', '.join(map(str, image_shape))})", f"shape {shape}")
        if shape[-1] != image_shape[-1]:
            raise DataError(path, f"{image_shape[-1]} channels in {key!r} ({', '.join(CHANNELS)})"
                            if image_shape[-1] == len(CHANNELS) else f"{image_shape[-1]} channels in {key!r}",
                            f"{shape[-1]} channels (shape {shape})")
        if shape[1:] != tuple(image_shape):
            raise DataError(path, f"{key!r} images of {image_shape[0]}x{image_shape[1]} pixels (shape (N, "
                            f"{', '.join(map(str, image_shape))}))", f"shape {shape}")
        if ds.dtype.kind != "f":
            raise DataError(path, f"floating-point {key!r}", f"dtype {ds.dtype}")
        n = shape[0]
        if n == 0:
            raise DataError(path, f"at least one jet in {key!r}", "an empty dataset")
        chunk_rows = int(ds.chunks[0]) if ds.chunks else None
        has_labels = "Y" in f
        if labelled is None:
            labelled = has_labels
        if labelled:
            missing = [k for k in TARGET_KEYS if k not in f]
            if missing:
                raise DataError(path, f"the targets {list(TARGET_KEYS)} beside {key!r} in a labelled file",
                                f"keys {list(keys)} (missing {missing})")
            for k in TARGET_KEYS:
                _target_shape_ok(path, k, f[k].shape, n, key)
        if check_first_chunk:
            rows = min(n, chunk_rows or 1)
            first = ds[0:rows]
            if not np.isfinite(first).all():
                bad = int(np.flatnonzero(~np.isfinite(first).reshape(rows, -1).all(axis=1))[0])
                raise DataError(path, f"finite values in {key!r}", f"NaN or infinity in jet {bad}")
        return JetFileInfo(path, int(n), tuple(shape[1:]), chunk_rows, ds.compression, bool(labelled), keys)


def _target_shape_ok(path, k, shape, n, key):
    shape = tuple(shape)
    if len(shape) == 0 or len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise DataError(path, f"{k!r} of shape (N,) or (N, 1)", f"shape {shape}")
    if shape[0] != n:
        raise DataError(path, f"as many entries in {k!r} as jets in {key!r} ({n})", f"{shape[0]} entries in {k!r}")


def read_targets(path, key: str = JET_KEY) -> dict:
    """The targets of a labelled file as 1-D float32 arrays ``{"Y", "m", "pT"}`` (2-D ones reshaped).

    Raises:
        DataError: a missing target, a shape other than ``(N,)``/``(N, 1)``, a length that
            differs from ``jet``'s, NaN or infinity, or labels other than 0 and 1.
    """
    path = Path(path)
    with _open(path) as f, hdf5_errors(path, "a readable HDF5 file of labelled jets"):
        if key not in f:
            raise DataError(path, f"a dataset {key!r} beside the targets", f"keys {sorted(f.keys())}")
        n = f[key].shape[0]
        out = {}
        for k in TARGET_KEYS:
            if k not in f:
                raise DataError(path, f"the targets {list(TARGET_KEYS)} in a labelled file",
                                f"keys {sorted(f.keys())} (missing {k!r})")
            _target_shape_ok(path, k, f[k].shape, n, key)
            arr = np.asarray(f[k][...], dtype=np.float64).reshape(-1)
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                raise DataError(path, f"finite values in {k!r}", f"{bad.size} NaN or infinite, the first at row {bad[0]}")
            out[k] = arr.astype(np.float32)
    y = out["Y"]
    odd = np.flatnonzero((y != 0) & (y != 1))
    if odd.size:
        raise DataError(path, "labels 0 (QCD) or 1 (top) in 'Y'",
                        f"{odd.size} other values, e.g. {float(y[odd[0]])!r} at row {odd[0]}")
    return out


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
                    files[src] = _open(info.path)
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
