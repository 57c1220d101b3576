"""The layout of the jet_ssl HDF5 files: its constants, :func:`inspect_jet_file` (the checks
every reader makes before it reads an image) and :func:`read_targets` of a labelled file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..h5 import hdf5_errors

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


def open_jet_file(path):
    """The jet file ``path`` opened read-only with h5py; :class:`DataError` when it is missing,
    a directory or unreadable."""
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
    with open_jet_file(path) as f, hdf5_errors(path, "a readable HDF5 file of jet images"):
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
    with open_jet_file(path) as f, hdf5_errors(path, "a readable HDF5 file of labelled jets"):
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
