"""Streaming reader of calorimeter crop files (``X`` (N, 32, 32, 2), ``y`` (N,)) into ``tf.data``.

The electron/photon data come as two HDF5 files, one per class, each with ``X``
(N, 32, 32, 2) float32 (hit energy and time) and ``y`` (N,) float32, compressed and
chunked along the sample axis; one file holding both classes works too. The reader:

* checks each file up front: it exists and is HDF5, ``X`` and ``y`` are there with the
  right shapes, ``y`` is 0/1 and agrees with the file's role (a file named ``*Photon*``
  holds only 0, ``*Electron*`` only 1), and the first chunk of ``X`` is finite;
  every later chunk is checked for NaN as it is read. Mistakes raise
  :class:`~kerahep.errors.DataError` naming the file, what was expected and what was found;
* splits on indices only (``y`` is read, ``X`` is not): a seeded stratified split,
  70/15/15 by default or 80/20 (train/test), disjoint, each class in proportion;
* streams an epoch by reading whole HDF5 chunks (one decompression per chunk, never one
  sample at a time; gzip chunks are read with ``read_direct_chunk`` and inflated with
  zlib-ng on ``decode_threads`` threads), taking the rows of the wanted split from each,
  interleaving the files in proportion so that every stretch of the stream holds both
  classes, mixing the rows of a window of chunks in NumPy and handing ``tf.data`` whole
  batches (:mod:`kerahep.data.batches`); each epoch reads the chunks in a new seeded order
  and yields every sample of the split exactly once;
* or, when asked and when it fits in memory, keeps the decoded split after the first
  epoch and serves reshuffled batches from it.

Example:
    >>> reader = CaloReader(["SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5",      # doctest: +SKIP
    ...                      "SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5"], seed=1)
    >>> train = reader.dataset("train", batch_size=256, shuffle=True)      # doctest: +SKIP
    >>> x, y = next(iter(train))                                            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, user_os_errors
from . import batches
from .decoding import selected_pieces
from .h5 import direct_chunk_reader, hdf5_errors
from .splits import stratified_split

CROP_SHAPE = (32, 32, 2)
CLASS_NAMES = ("photon", "electron")
#: rows read at a time from a contiguous (unchunked) dataset
DEFAULT_BLOCK_ROWS = 1024


def file_role(path) -> int | None:
    """The class a file holds by its name: 0 for ``*photon*``, 1 for ``*electron*``, else None."""
    name = Path(path).name.lower()
    has_p, has_e = "photon" in name, "electron" in name
    if has_p == has_e:
        return None
    return 0 if has_p else 1


@dataclass
class CaloFile:
    """One checked input file.

    Attributes:
        path: the file.
        n: rows used (all, or the first ``max_events``).
        chunk_rows: rows per read (the HDF5 chunk rows of ``X``, or a block for contiguous data).
        labels: ``y`` of the used rows as int8.
        role: 0 or 1 for a one-class file, None for a file holding both classes.
        compression: the HDF5 filter of ``X`` (None when uncompressed).
        h5_rows: the HDF5 chunk rows of ``X`` (None when contiguous); reads of whole HDF5
            chunks inflate them directly (:func:`kerahep.data.h5.direct_chunk_reader`).
    """

    path: Path
    n: int
    chunk_rows: int
    labels: np.ndarray
    role: int | None
    compression: str | None = None
    h5_rows: int | None = None

    def chunk_bounds(self, c: int) -> tuple[int, int]:
        start = c * self.chunk_rows
        return start, min(self.n, start + self.chunk_rows)

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk_rows)


def _fmt_values(values, counts) -> str:
    return ", ".join(f"{v:g} x{c}" for v, c in zip(values, counts))


def inspect_file(path, role: int | None = "auto", max_events: int | None = None,
                 block_rows: int | None = None, shape=CROP_SHAPE, check_first_chunk: bool = True) -> CaloFile:
    """Check one crop file and return its description (reads ``y`` and one chunk of ``X``).

    Args:
        path: the HDF5 file.
        role: expected class of every row (0 or 1), None for a file with both classes,
            ``"auto"`` from the file name (:func:`file_role`).
        max_events: use only the first ``max_events`` rows.
        block_rows: rows per read (default: the HDF5 chunk rows, or 1024 when contiguous).
        shape: expected shape of one crop.
        check_first_chunk: read the first chunk and refuse NaN or infinite values.

    Raises:
        DataError: missing or unreadable file, missing ``X`` or ``y``, wrong shape or
            dtype, labels other than 0/1 or contradicting the file's role, NaN.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise DataError(path, "an existing HDF5 file of calorimeter crops", "no such file")
    if path.is_dir():
        raise DataError(path, "an HDF5 file of calorimeter crops", "a directory")
    with user_os_errors("an HDF5 file of calorimeter crops that kerahep may read", path):
        with open(path, "rb"):  # an unreadable file is refused as such, not as "not HDF5"
            pass
        is_hdf5 = h5py.is_hdf5(path)
    if not is_hdf5:
        raise DataError(path, "an HDF5 file of calorimeter crops", "a file that is not HDF5")
    if role == "auto":
        role = file_role(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(path, "a readable HDF5 file", f"an unreadable file ({exc})") from None
    with f, hdf5_errors(path, "a readable HDF5 file of calorimeter crops"):
        keys = sorted(f.keys())
        for key in ("X", "y"):
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise DataError(path, "datasets 'X' (N, 32, 32, 2) and 'y' (N,)",
                                f"no dataset {key!r} (keys: {', '.join(keys) or 'none'})")
        X, y = f["X"], f["y"]
        if X.ndim != 4 or tuple(X.shape[1:]) != tuple(shape):
            raise DataError(path, f"'X' of shape (N, {', '.join(map(str, shape))})", f"'X' of shape {X.shape}")
        if X.dtype.kind != "f":
            raise DataError(path, "'X' of a floating-point type (float32)", f"'X' of dtype {X.dtype}")
        if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
            raise DataError(path, "'y' of shape (N,) or (N, 1)", f"'y' of shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise DataError(path, f"as many labels as crops ({X.shape[0]})", f"'y' with {y.shape[0]} entries")
        n = int(X.shape[0]) if max_events is None else min(int(X.shape[0]), int(max_events))
        if n == 0:
            raise DataError(path, "at least one crop", "an empty 'X'")
        labels = np.asarray(y[:n], dtype=np.float64).reshape(-1)
        values, counts = np.unique(labels, return_counts=True)
        if not np.isfinite(labels).all() or not set(values.tolist()) <= {0.0, 1.0}:
            raise DataError(path, "'y' values 0 (photon) or 1 (electron)", f"'y' values {_fmt_values(values, counts)}")
        if role is not None and (values != role).any():
            raise DataError(path, f"'y' all {float(role):g} (a {CLASS_NAMES[role]} file, from its name)",
                            f"'y' values {_fmt_values(values, counts)}")
        if block_rows:
            rows = int(block_rows)
        elif X.chunks is not None:
            rows = int(X.chunks[0])
        else:
            rows = DEFAULT_BLOCK_ROWS
        info = CaloFile(path, n, max(1, min(rows, n)), labels.astype(np.int8), role, X.compression,
                        int(X.chunks[0]) if X.chunks is not None else None)
        if check_first_chunk:
            start, stop = info.chunk_bounds(0)
            check_finite(X[start:stop], path, start)
    return info


def check_finite(block: np.ndarray, path, start: int = 0) -> None:
    """Raise DataError when ``block`` (rows from ``start``) holds NaN or infinite values."""
    bad = ~np.isfinite(block)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(block), -1).any(axis=1)) + start
        raise DataError(path, "finite values in 'X'",
                        f"NaN or infinite values in {len(rows)} crop(s), first at row {int(rows[0])}")


class CaloReader:
    """Seeded split and ``tf.data`` streams over calorimeter crop files.

    Args:
        paths: one file holding both classes, or one file per class (any number).
        split: fractions ``(train, val, test)`` or ``(train, test)``; None puts every crop in
            ``test`` (an independent evaluation sample).
        seed: seed of the split and of the epoch order.
        max_events: use only the first ``max_events`` crops of each file.
        block_rows: rows per read (default: each file's HDF5 chunk rows).
        roles: class of each file (0, 1 or None for both); default from the file names.
        decode_threads: threads decoding chunks (None: one per CPU core,
            :func:`kerahep.data.batches.decode_threads`).

    Raises:
        DataError: see :func:`inspect_file`.
    """

    def __init__(self, paths, split=(0.7, 0.15, 0.15), seed: int = 0, max_events: int | None = None,
                 block_rows: int | None = None, roles=None, decode_threads: int | None = None):
        paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not paths:
            raise DataError("(no files)", "at least one HDF5 file of calorimeter crops", "an empty list of paths")
        roles = list(roles) if roles is not None else ["auto"] * len(paths)
        if len(roles) != len(paths):
            raise DataError(paths[0], f"one role per file ({len(paths)})", f"{len(roles)} roles")
        self.decode_threads = batches.decode_threads(decode_threads)
        self.files = [inspect_file(p, r, max_events, block_rows) for p, r in zip(paths, roles)]
        self.seed = int(seed)
        self.offsets = np.cumsum([0] + [f.n for f in self.files])
        self.labels = np.concatenate([f.labels for f in self.files])
        if split is None:
            self.split_names = ("test",)
            parts = [np.arange(len(self.labels))]
        else:
            split = tuple(float(s) for s in split)
            self.split_names = ("train", "val", "test") if len(split) == 3 else ("train", "test")
            parts = stratified_split(self.labels, split, seed=self.seed)
        self.splits = dict(zip(self.split_names, parts))
        self._pending = batches.PendingError()

    # ------------------------------------------------------------------ indices
    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]

    def indices(self, split: str) -> np.ndarray:
        """Global indices (files concatenated in order) of ``split``; empty if absent."""
        return self.splits.get(split, np.zeros(0, dtype=np.int64))

    def size(self, split: str) -> int:
        return int(len(self.indices(split)))

    def class_counts(self, split: str) -> dict:
        lab = self.labels[self.indices(split)]
        return {name: int((lab == c).sum()) for c, name in enumerate(CLASS_NAMES)}

    def rows_by_file(self, split: str) -> list[np.ndarray]:
        """Row indices of ``split`` inside each file (sorted)."""
        idx = self.indices(split)
        return [idx[(idx >= lo) & (idx < hi)] - lo for lo, hi in zip(self.offsets[:-1], self.offsets[1:])]

    # --------------------------------------------------------------------- plan
    def chunks(self, split: str) -> list[batches.Chunk]:
        """The reads of ``split`` in file order: one :class:`~kerahep.data.batches.Chunk` per block of
        ``chunk_rows`` holding rows of the split (its labels as ``key``); blocks without any are skipped."""
        out = []
        for fi, (f, rows) in enumerate(zip(self.files, self.rows_by_file(split))):
            chunk_of = rows // f.chunk_rows  # sorted, as the rows are
            ids, first = np.unique(chunk_of, return_index=True)
            for c, mine in zip(ids, np.split(rows, first[1:])):
                start, stop = f.chunk_bounds(int(c))
                take = None if len(mine) == stop - start else mine - start
                out.append(batches.Chunk(fi, start, stop, take, f.labels[mine].astype(np.float32)))
        return out

    def plan(self, split: str, epoch: int = 0, shuffle: bool = False) -> list[tuple[int, int, np.ndarray]]:
        """The reads of one epoch: ``(file, chunk, rows in that chunk)`` in stream order.

        Chunks holding no row of ``split`` are skipped. With ``shuffle`` the chunk order
        inside each file is a seeded permutation per epoch, the order the stream of
        :meth:`dataset` reads. Files are interleaved so that each has emitted about the same
        fraction of its rows at every point of the stream (:func:`kerahep.data.batches.interleave`).
        """
        chunks = self.chunks(split)
        order = batches.BatchStream(chunks, lambda c: (), batch_size=1, shuffle=shuffle, seed=self.seed,
                                    interleave_files=True).order(epoch)
        return [(chunks[i].source, chunks[i].start // self.files[chunks[i].source].chunk_rows,
                 np.arange(chunks[i].start, chunks[i].stop) if chunks[i].take is None
                 else chunks[i].start + chunks[i].take) for i in order]

    @contextlib.contextmanager
    def _opened(self):
        """The files opened for one pass; gives ``load(chunk) -> (x, y)`` for the decoding threads."""
        import h5py

        handles, readers = [], []
        try:
            for f in self.files:
                with hdf5_errors(f.path, "a readable HDF5 file of calorimeter crops"):
                    handles.append(h5py.File(f.path, "r"))
                    X = handles[-1]["X"]
                    aligned = f.h5_rows and f.chunk_rows % f.h5_rows == 0
                    readers.append((aligned and direct_chunk_reader(X)) or (lambda a, b, X=X: X[a:b]))
            yield lambda chunk: self._load(readers[chunk.source], chunk)
        finally:
            for h in handles:
                h.close()

    def _load(self, reader, chunk: batches.Chunk):
        """Read one block (one decompression per HDF5 chunk), check it for NaN, keep the split's rows:
        ``(x, y)``, or, through the direct chunk reader, the same as pieces (:meth:`_pieces`)."""
        f = self.files[chunk.source]
        pieces = getattr(reader, "pieces", None)
        if pieces is not None:
            return self._pieces(f.path, pieces, chunk)
        with hdf5_errors(f.path, "a readable HDF5 file of calorimeter crops"):
            block = self.read_block(reader, chunk.start, chunk.stop)
        self._check(block, f.path, chunk.start)
        x = block if chunk.take is None else block[chunk.take]
        return np.asarray(x, dtype=np.float32), chunk.key

    def _pieces(self, path, pieces, chunk: batches.Chunk):
        """The rows of ``chunk`` stored chunk by stored chunk, each inflated, checked, and placed by the
        stream before the next is inflated (no joined copy of a multi-chunk block); every stored chunk
        is checked whole, before the split's rows are taken (:func:`~kerahep.data.decoding.selected_pieces`)."""
        yield from selected_pieces(self.read_block(pieces, chunk.start, chunk.stop), chunk, path,
                                   "a readable HDF5 file of calorimeter crops",
                                   check_block=lambda block, first: self._check(block, path, first))

    @staticmethod
    def _check(block: np.ndarray, path, start: int) -> None:
        """Refuse NaN or infinity in ``block`` (rows from ``start`` of ``path``), naming the first bad crop."""
        with np.errstate(over="ignore", invalid="ignore"):
            total = block.sum()
        if not np.isfinite(total):  # NaN or inf somewhere, or an overflow: the exact check says which
            check_finite(block, path, start)  # the whole block: a bad crop is bad in any split

    @staticmethod
    def read_block(reader, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``X`` (whole HDF5 chunks) through ``reader``."""
        return reader(start, stop)

    def read(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Read ``split`` into arrays ``(X, y)``, chunk by chunk; row ``k`` is ``indices(split)[k]``."""
        chunks = self.chunks(split)  # file order, rows sorted: the order of indices(split)
        X = np.empty((self.size(split),) + CROP_SHAPE, dtype=np.float32)
        y = np.empty((self.size(split),), dtype=np.float32)
        at = 0
        for x, lab in batches.load_in_order(chunks, range(len(chunks)), self._opened, self.decode_threads,
                                            4 * max(f.chunk_rows for f in self.files), self._pending):
            X[at:at + len(x)] = x
            y[at:at + len(x)] = lab
            at += len(x)
        return X, y

    def fits_in_memory(self, split: str, fraction: float = 0.5) -> bool:
        """True when ``split`` takes less than ``fraction`` of the available memory."""
        import psutil

        need = self.size(split) * int(np.prod(CROP_SHAPE)) * 4
        return need < fraction * psutil.virtual_memory().available

    # ------------------------------------------------------------------ tf.data
    def dataset(self, split: str, batch_size: int = 256, shuffle: bool = False, cache: bool = False,
                shuffle_buffer: int = 10000, repeat: bool = False, mixup_alpha: float = 0.0,
                prefetch: int | None = None):
        """A batched ``tf.data.Dataset`` of ``(x, y)`` for ``split``.

        Whole batches come from :class:`kerahep.data.batches.BatchStream`: chunks decoded on
        ``decode_threads`` threads, their rows mixed in NumPy, ``tf.data`` only wrapping and
        prefetching.

        Args:
            split: ``train``, ``val`` or ``test``.
            batch_size: batch size (the last batch may be smaller).
            shuffle: new order each epoch (chunk order, then the rows of a mixing window).
            cache: keep the decoded split in memory after the first epoch when it fits
                (:meth:`fits_in_memory`); otherwise stream every epoch.
            shuffle_buffer: crops mixed at a time when streaming (the mixing window).
            repeat: repeat forever (for ``steps_per_epoch`` caps).
            mixup_alpha: MixUp (``keras.layers.MixUp``) on training batches; 0 turns it off.
                MixUp mixes the labels too, so it lives here and not in the model.
            prefetch: batches to prefetch (default: :data:`kerahep.data.batches.PREFETCH`; tf.data's
                autotuning is off, :func:`kerahep.data.batches.no_autotune`).

        Returns:
            The dataset, with its cardinality (number of batches) set.
        """
        import tensorflow as tf

        n = self.size(split)
        if n == 0:
            return None
        stream = batches.BatchStream(self.chunks(split), opener=self._opened, batch_size=batch_size, shuffle=shuffle,
                                     seed=self.seed, window_rows=min(int(shuffle_buffer), n),
                                     threads=self.decode_threads, cache=bool(cache) and self.fits_in_memory(split),
                                     pending=self._pending, fields=[(CROP_SHAPE, np.float32), ((), np.float32)],
                                     interleave_files=True)
        sig = (tf.TensorSpec((None,) + CROP_SHAPE, tf.float32), tf.TensorSpec((None,), tf.float32))
        ds = stream.dataset(sig, prefetch=0)
        if mixup_alpha and mixup_alpha > 0:
            import keras

            mix = keras.layers.MixUp(alpha=float(mixup_alpha), seed=self.seed)

            def _mix(x, lab):
                out = mix({"images": x, "labels": tf.reshape(lab, (-1, 1))}, training=True)
                return out["images"], tf.reshape(out["labels"], (-1,))

            ds = ds.map(_mix, num_parallel_calls=tf.data.AUTOTUNE)
        if repeat:
            ds = ds.repeat()
        return ds.prefetch(batches.PREFETCH if prefetch is None else prefetch)

    # ------------------------------------------------------------------ errors
    def pending_error(self) -> DataError | None:
        """The DataError a stream met while reading (tf.data wraps it in its own error)."""
        return self._pending.error

    def data_errors(self):
        """Context manager: an error of a stream that met bad data is raised as the reader's DataError."""
        return batches.PendingError.surface(self._pending, clear=False)
