"""electron_photon predict: score crop files (``X``, and ``y`` when present) chunk by chunk.

Each input is one HDF5 file of calorimeter crops, ``X`` (N, 32, 32, 2) float32 (energy,
time), as training reads them (:mod:`kerahep.data.calo`); ``y`` is optional. The file is
checked before anything is scored: with ``y`` by the training reader's own
:func:`~kerahep.data.calo.inspect_file` (the shape and dtype of ``X``, labels 0/1 that
agree with the file's name, the first chunk finite); without ``y`` by :func:`check_crops`,
the same checks of ``X``. Every chunk is checked for NaN as it is read
(:func:`~kerahep.data.calo.check_finite`, the training stream's check), and goes to the
model as float32, unchanged: the crops' preprocessing (the energy ``log1p``) is a layer of
the saved model.

Columns of every chunk:

* ``index`` (int64): the row of ``X``;
* ``score`` (float32): the model's sigmoid output, P(electron), electron being ``y = 1``
  as in the report (:func:`kerahep.evaluation.binary_report` with classes photon, electron);
* ``score_spread`` (float32), for a deep ensemble (``training.ensemble=N``) only: the spread
  of its members' scores (``score`` is then their mean);
* ``y`` (float32, 0 photon / 1 electron): the file's labels, only when it has ``y``;
* ``embedding`` (float32, (n, d)) with ``run.embedding``: the output of the model's
  ``embedding`` layer, the layer the report's t-SNE shows (the penultimate dense layer
  of the ResNet-15 family, before the ``score`` unit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.calo import CROP_SHAPE, check_finite, inspect_file
from ...data.h5 import hdf5_errors
from ...errors import DataError
from ...models.ensemble import has_spread

#: the layer whose output is the ``embedding`` column (the one the report's t-SNE shows)
EMBEDDING_LAYER = "embedding"
#: the most bytes of crops read at once (4096 crops of 8 kB) unless one HDF5 chunk is more (9960 crops
#: in the real files), whatever ``run.chunk_size`` allows
MAX_CHUNK_BYTES = 32 * 2 ** 20
_EXPECTED = "an HDF5 file of calorimeter crops"
_READABLE = "a readable HDF5 file of calorimeter crops"


def check_crops(path) -> tuple[int, int | None, bool]:
    """Check the layout of a crop file without reading it: ``(rows, HDF5 chunk rows, has y)``.

    The checks of :func:`kerahep.data.calo.inspect_file` that do not need ``y``: an existing
    HDF5 file, a dataset ``X`` of shape (N, 32, 32, 2) and a floating-point type; and, when
    the file has ``y``, its shape and length. An empty ``X`` is allowed here (its output is
    empty).

    Raises:
        DataError: naming the file, what was expected and what was found.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise DataError(path, "an existing HDF5 file of calorimeter crops", "no such file")
    if path.is_dir():
        raise DataError(path, _EXPECTED, "a directory")
    if not h5py.is_hdf5(path):
        raise DataError(path, _EXPECTED, "a file that is not HDF5")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(path, "a readable HDF5 file", f"an unreadable file ({exc})") from None
    with f, hdf5_errors(path, _READABLE):
        keys = sorted(f.keys())
        if "X" not in f or not isinstance(f["X"], h5py.Dataset):
            raise DataError(path, "a dataset 'X' (N, 32, 32, 2) of crops (energy, time); 'y' (N,) optional",
                            f"no dataset 'X' (keys: {', '.join(keys) or 'none'})")
        X = f["X"]
        if X.ndim != 4 or tuple(X.shape[1:]) != CROP_SHAPE:
            raise DataError(path, f"'X' of shape (N, {', '.join(map(str, CROP_SHAPE))})", f"'X' of shape {X.shape}")
        if X.dtype.kind != "f":
            raise DataError(path, "'X' of a floating-point type (float32)", f"'X' of dtype {X.dtype}")
        has_y = "y" in f
        if has_y:
            y = f["y"]
            if not isinstance(y, h5py.Dataset) or not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
                raise DataError(path, "'y' of shape (N,) or (N, 1)", f"'y' of shape {getattr(y, 'shape', 'a group')}")
            if y.shape[0] != X.shape[0]:
                raise DataError(path, f"as many labels as crops ({X.shape[0]})", f"'y' with {y.shape[0]} entries")
        return int(X.shape[0]), (int(X.chunks[0]) if X.chunks is not None else None), has_y


def chunk_rows(run, hdf5_chunk_rows: int | None) -> int:
    """Rows per read: at most ``run.chunk_size``, and at most :data:`MAX_CHUNK_BYTES` of crops
    or one HDF5 chunk if that is more; whole HDF5 chunks when ``run.chunk_size`` allows."""
    cap = max(MAX_CHUNK_BYTES // (int(np.prod(CROP_SHAPE)) * 4), hdf5_chunk_rows or 0)
    rows = max(1, min(int(run.chunk_size), cap))
    if hdf5_chunk_rows and rows >= hdf5_chunk_rows:
        rows -= rows % hdf5_chunk_rows  # each compressed chunk decompressed once
    return rows


def embedding_model(model):
    """``model`` with two outputs: ``score`` and the output of its ``embedding`` layer."""
    import keras

    from ...errors import KerahepError

    try:
        layer = model.get_layer(EMBEDDING_LAYER)
    except ValueError:
        raise KerahepError(f"model {model.name!r} has no layer {EMBEDDING_LAYER!r} to take the embedding from; "
                           f"layers: {', '.join(lyr.name for lyr in model.layers)}") from None
    return keras.Model(model.input, {"score": model.output, "embedding": layer.output}, name=f"{model.name}_embed")


def predict_file(run, path):
    """Yield the columns of ``path``, chunk by chunk (see the module docstring).

    Raises:
        DataError: the file is not a crop file (before the first chunk), or a chunk holds
            NaN or cannot be read (when it is reached).
    """
    import h5py

    path = Path(path)
    n, hdf5_rows, has_y = check_crops(path)
    labels = None
    if has_y and n:
        labels = inspect_file(path).labels  # the training reader's label checks (0/1, the file's role)
    elif n:
        with hdf5_errors(path, _READABLE), h5py.File(path, "r") as f:
            first = f["X"][: min(n, hdf5_rows or 1)]
        check_finite(first, path, 0)
    scorer = embedding_model(run.models["model"]) if run.embedding else None
    step = chunk_rows(run, hdf5_rows)
    with hdf5_errors(path, _READABLE):
        f = h5py.File(path, "r")
    with f:
        for start in range(0, max(n, 1), step):
            stop = min(n, start + step)
            with hdf5_errors(path, f"readable rows {start}-{stop - 1} of 'X'"):
                block = f["X"][start:stop]
            check_finite(block, path, start)
            x = np.ascontiguousarray(block, dtype=np.float32)
            yield _columns(run, scorer, x, start, labels[start:stop] if labels is not None else None, has_y)


def _columns(run, scorer, x, start: int, labels, has_y: bool) -> dict:
    out = {"index": np.arange(start, start + len(x), dtype=np.int64)}
    if scorer is None and has_spread(run.models["model"]):  # a deep ensemble: mean and spread
        pred = run.score(x, output="all") if len(x) else {}
        out["score"] = _as_1d(pred["output_0"]) if len(x) else np.zeros(0, np.float32)
        out["score_spread"] = _as_1d(pred["output_1"]) if len(x) else np.zeros(0, np.float32)
    elif scorer is None:
        out["score"] = _as_1d(run.score(x)) if len(x) else np.zeros(0, np.float32)
    else:
        from ...scoring import score

        pred = score(scorer, x, batch_size=run.batch_size, output="all") if len(x) else {}
        out["score"] = _as_1d(pred["score"]) if len(x) else np.zeros(0, np.float32)
        dim = int(scorer.output["embedding"].shape[-1])
        emb = np.asarray(pred["embedding"], np.float32) if len(x) else np.zeros((0, dim), np.float32)
        out["embedding"] = emb.reshape(len(x), dim)
    if has_y:
        out["y"] = (labels if labels is not None else np.zeros(0)).astype(np.float32)
    return out


def _as_1d(a) -> np.ndarray:
    return np.asarray(a, np.float32).reshape(-1)
