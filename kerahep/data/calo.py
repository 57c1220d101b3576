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
  sample at a time), taking the rows of the wanted split from each, interleaving the
  files in proportion so that every stretch of the stream holds both classes, then
  shuffling in a buffer, batching and prefetching; each epoch reads the chunks in a new
  seeded order and yields every sample of the split exactly once;
* or, when asked and when it fits in memory, reads the split once (chunk by chunk) into
  arrays and serves shuffled batches from them.

Example:
    >>> reader = CaloReader(["SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5",      # doctest: +SKIP
    ...                      "SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5"], seed=1)
    >>> train = reader.dataset("train", batch_size=256, shuffle=True)      # doctest: +SKIP
    >>> x, y = next(iter(train))                                            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, user_os_errors
from .h5 import hdf5_errors
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
    """

    path: Path
    n: int
    chunk_rows: int
    labels: np.ndarray
    role: int | None
    compression: str | None = None
    chunked: bool = True

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
                        X.chunks is not None)
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


@dataclass
class _Pending:
    error: DataError | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


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

    Raises:
        DataError: see :func:`inspect_file`.
    """

    def __init__(self, paths, split=(0.7, 0.15, 0.15), seed: int = 0, max_events: int | None = None,
                 block_rows: int | None = None, roles=None):
        paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not paths:
            raise DataError("(no files)", "at least one HDF5 file of calorimeter crops", "an empty list of paths")
        roles = list(roles) if roles is not None else ["auto"] * len(paths)
        if len(roles) != len(paths):
            raise DataError(paths[0], f"one role per file ({len(paths)})", f"{len(roles)} roles")
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
        self._pending = _Pending()

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
    def plan(self, split: str, epoch: int = 0, shuffle: bool = False) -> list[tuple[int, int, np.ndarray]]:
        """The reads of one epoch: ``(file, chunk, rows in that chunk)`` in stream order.

        Chunks holding no row of ``split`` are skipped. With ``shuffle`` the chunk order
        inside each file is a seeded permutation per epoch. Files are interleaved so that
        each has emitted about the same fraction of its rows at every point of the stream.
        """
        rng = np.random.default_rng([self.seed, int(epoch), 7])
        per_file = []
        for fi, (f, rows) in enumerate(zip(self.files, self.rows_by_file(split))):
            chunk_of = rows // f.chunk_rows
            chunks = []
            for c in np.unique(chunk_of):
                chunks.append((fi, int(c), rows[chunk_of == c]))
            if shuffle and chunks:
                chunks = [chunks[i] for i in rng.permutation(len(chunks))]
            per_file.append(chunks)
        totals = [max(sum(len(r) for _, _, r in ch), 1) for ch in per_file]
        done = [0] * len(per_file)
        pos = [0] * len(per_file)
        out = []
        while True:
            live = [i for i in range(len(per_file)) if pos[i] < len(per_file[i])]
            if not live:
                break
            i = min(live, key=lambda k: (done[k] / totals[k], k))
            item = per_file[i][pos[i]]
            out.append(item)
            done[i] += len(item[2])
            pos[i] += 1
        return out

    def _read_plan(self, plan):
        """Yield ``(x, y)`` blocks for ``plan`` reading each HDF5 chunk once, checking for NaN."""
        import h5py

        handles = {}
        try:
            for fi, c, rows in plan:
                f = self.files[fi]
                start, stop = f.chunk_bounds(c)
                try:
                    with hdf5_errors(f.path, "a readable HDF5 file of calorimeter crops"):
                        if fi not in handles:
                            handles[fi] = h5py.File(f.path, "r")
                        block = handles[fi]["X"][start:stop]
                except DataError as exc:
                    with self._pending.lock:
                        self._pending.error = exc
                    raise
                try:
                    check_finite(block, f.path, start)  # the whole chunk: a bad crop is bad in any split
                except DataError as exc:
                    with self._pending.lock:
                        self._pending.error = exc
                    raise
                x = block if len(rows) == stop - start else block[rows - start]
                yield np.ascontiguousarray(x, dtype=np.float32), f.labels[rows].astype(np.float32)
        finally:
            for h in handles.values():
                h.close()

    def read(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Read ``split`` into arrays ``(X, y)``, chunk by chunk; row ``k`` is ``indices(split)[k]``."""
        idx = self.indices(split)
        X = np.empty((len(idx),) + CROP_SHAPE, dtype=np.float32)
        y = np.empty((len(idx),), dtype=np.float32)
        plan = self.plan(split, shuffle=False)
        for (fi, _, rows), (x, lab) in zip(plan, self._read_plan(plan)):
            at = np.searchsorted(idx, self.offsets[fi] + rows)
            X[at] = x
            y[at] = lab
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

        Args:
            split: ``train``, ``val`` or ``test``.
            batch_size: batch size (the last batch may be smaller).
            shuffle: new order each epoch (chunk order, then a shuffle buffer).
            cache: read the split into memory once when it fits (:meth:`fits_in_memory`);
                otherwise stream.
            shuffle_buffer: size of the shuffle buffer when streaming.
            repeat: repeat forever (for ``steps_per_epoch`` caps).
            mixup_alpha: MixUp (``keras.layers.MixUp``) on training batches; 0 turns it off.
                MixUp mixes the labels too, so it lives here and not in the model.
            prefetch: batches to prefetch (default: autotune).

        Returns:
            The dataset, with its cardinality (number of batches) set.
        """
        import tensorflow as tf

        n = self.size(split)
        if n == 0:
            return None
        autotune = tf.data.AUTOTUNE
        n_batches = -(-n // int(batch_size))
        in_memory = bool(cache) and self.fits_in_memory(split)
        if in_memory:
            X, y = self.read(split)

            def gather(i):  # NumPy gather: the arrays are not copied into a second (tensor) buffer
                return X[i], y[i]

            def gather_tf(i):
                xb, yb = tf.numpy_function(gather, [i], (tf.float32, tf.float32), stateful=False)
                return tf.ensure_shape(xb, (None,) + CROP_SHAPE), tf.ensure_shape(yb, (None,))

            ds = tf.data.Dataset.range(n)
            if shuffle:
                ds = ds.shuffle(n, seed=self.seed, reshuffle_each_iteration=True)
            ds = ds.batch(int(batch_size)).map(gather_tf, num_parallel_calls=autotune)
        else:
            epochs = itertools.count()
            lock = threading.Lock()

            def blocks():
                with lock:
                    epoch = next(epochs)
                yield from self._read_plan(self.plan(split, epoch=epoch, shuffle=shuffle))

            sig = (tf.TensorSpec((None,) + CROP_SHAPE, tf.float32), tf.TensorSpec((None,), tf.float32))
            ds = tf.data.Dataset.from_generator(blocks, output_signature=sig).unbatch()
            if shuffle:
                ds = ds.shuffle(min(int(shuffle_buffer), n), seed=self.seed, reshuffle_each_iteration=True)
            ds = ds.batch(int(batch_size))
        ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
        if mixup_alpha and mixup_alpha > 0:
            import keras

            mix = keras.layers.MixUp(alpha=float(mixup_alpha), seed=self.seed)

            def _mix(x, lab):
                out = mix({"images": x, "labels": tf.reshape(lab, (-1, 1))}, training=True)
                return out["images"], tf.reshape(out["labels"], (-1,))

            ds = ds.map(_mix, num_parallel_calls=autotune)
        if repeat:
            ds = ds.repeat()
        return ds.prefetch(autotune if prefetch is None else prefetch)

    # ------------------------------------------------------------------ errors
    def pending_error(self) -> DataError | None:
        """The DataError a stream met while reading (tf.data wraps it in its own error)."""
        return self._pending.error

    @contextlib.contextmanager
    def data_errors(self):
        """Turn an error of a stream that met bad data back into the reader's DataError."""
        try:
            yield
        except DataError:
            raise
        except Exception as exc:
            err = self.pending_error()
            if err is not None:
                raise err from exc
            raise
