"""jet_ssl predict: score jet-image files (``jet``, and the targets when present) chunk by chunk.

Each input is one HDF5 file of jet images, ``jet`` (N, 125, 125, 8) float32, as training
reads them (:mod:`kerahep.data.jets`). The file is checked by the training reader's own
:func:`~kerahep.data.jets.inspect_jet_file` before anything is scored (the key, the shape,
the 8 channels, the dtype, the first chunk finite; in a file with ``Y`` the targets ``Y``,
``m``, ``pT`` and their shapes), the targets by :func:`~kerahep.data.jets.read_targets`
(finite, ``Y`` 0 or 1), and the jets are read by one :class:`~kerahep.data.jets.JetStream`
over the file (chunk-aligned reads, every block checked for NaN; the next blocks read and
inflated on its threads while one is scored, :func:`block_rows`: the ``threads + 1``
blocks in flight hold at most :func:`chunk_rows` jets, unless one HDF5 chunk is more) and
go to the model as float32, unchanged: the channel scaling is a layer of the saved model.

The scores are those of ``model.keras``, the model the report scores (``model.export`` at
the largest label fraction: encoder and heads), through
:func:`kerahep.evaluation.predict_dataset` as in the report. Its regression heads end in a
``Rescaling`` layer (``mean + std * z`` with the training subset's target statistics), so
the model itself answers in GeV: the report's ``m`` and ``pt`` are its outputs as they are,
and so are the columns here.

Columns of every chunk:

* ``index`` (int64): the row of ``jet``;
* ``score`` (float32): the class head ``y``, P(top) (top is ``Y = 1``, QCD ``Y = 0``);
* ``m_pred``, ``pt_pred`` (float32, GeV): the mass and pT heads;
* ``y``, ``m``, ``pt`` (float32; GeV for ``m`` and ``pt``): the file's targets ``Y``,
  ``m``, ``pT`` under the names training gives them, only when the file is labelled;
* ``latent`` (float32, (n, d)) with ``run.embedding``: the output of ``encoder.keras``,
  the pre-trained (SimCLR) encoder whose latents the report's t-SNE shows. With
  ``model.export = "finetune"`` (the default) the heads of ``model.keras`` read the
  latents of its own fine-tuned copy of the encoder, not these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.jets import OUTPUTS, TARGET_KEYS, JetStream, inspect_jet_file, read_targets
from ...data.batches import decode_threads
from ...data.h5 import hdf5_errors
from ...errors import DataError, KerahepError

#: the model outputs -> their columns
PREDICTIONS = {"y": "score", "m": "m_pred", "pt": "pt_pred"}
#: the most bytes of jet images read at once (128 jets of 500 kB) unless one HDF5 chunk is more,
#: whatever ``run.chunk_size`` allows
MAX_CHUNK_BYTES = 64 * 2 ** 20


def check_jets(path) -> tuple:
    """``(rows, JetFileInfo or None, labelled)``: the training reader's checks of ``path``.

    An empty ``jet`` dataset, which the reader refuses after checking its shape, channels
    and dtype, is allowed here (``info`` None): its output is empty.

    Raises:
        DataError: naming the file, what was expected and what was found.
    """
    try:
        info = inspect_jet_file(path)
    except DataError as exc:
        if exc.found != "an empty dataset":
            raise
        import h5py

        with hdf5_errors(path, "a readable HDF5 file of jet images"), h5py.File(path, "r") as f:
            labelled = all(k in f for k in TARGET_KEYS)
        return 0, None, labelled
    return info.n, info, info.labelled


def chunk_rows(run, info) -> int:
    """Jets in memory at once: at most ``run.chunk_size``, and at most :data:`MAX_CHUNK_BYTES` of
    jets or one HDF5 chunk if that is more; whole HDF5 chunks when ``run.chunk_size`` allows."""
    rows = max(1, min(int(run.chunk_size), max(MAX_CHUNK_BYTES // info.jet_bytes, info.chunk_rows or 0)))
    if info.chunk_rows and rows >= info.chunk_rows:
        rows -= rows % info.chunk_rows  # each compressed chunk decompressed once
    return rows


def block_rows(run, info, threads: int) -> int:
    """Jets per read: the :func:`chunk_rows` in memory shared by the ``threads + 1`` blocks in
    flight (reading ahead while one is scored), whole HDF5 chunks, at least one."""
    rows = max(1, chunk_rows(run, info) // (int(threads) + 1))
    if info.chunk_rows:
        rows = max(info.chunk_rows, rows - rows % info.chunk_rows)
    return rows


def predict_file(run, path):
    """Yield the columns of ``path``, chunk by chunk (see the module docstring).

    Raises:
        DataError: the file is not a jet file (before the first chunk), or a block holds
            NaN or cannot be read (when it is reached).
        KerahepError: ``run.embedding`` for a run without ``encoder.keras``.
    """
    path = Path(path)
    n, info, labelled = check_jets(path)
    if run.embedding and "encoder" not in run.models:
        raise KerahepError(f"{run.run_dir}: the latent vector (--embedding) needs encoder.keras, which this run "
                           "does not have")
    targets = read_targets(path) if labelled and n else None
    if n == 0:
        yield empty_columns(run, labelled)
        return
    threads = decode_threads()
    stream = JetStream([(path, None)], block_bytes=block_rows(run, info, threads) * info.jet_bytes,
                       read_threads=threads)
    for jets, pos in stream.iter_blocks():  # file order; the next blocks inflate while this one is scored
        start, stop = int(pos[0]), int(pos[0]) + len(pos)
        yield columns(run, jets, start, {k: v[start:stop] for k, v in targets.items()} if targets else None)


def columns(run, jets: np.ndarray, start: int, targets: dict | None) -> dict:
    """The columns of the jets ``jets`` (rows ``start`` on) and their targets (``{"Y", "m", "pT"}`` or None)."""
    pred = run.score(jets, output="all")
    out = {"index": np.arange(start, start + len(jets), dtype=np.int64)}
    out.update({col: np.asarray(pred[key], np.float32).reshape(-1) for key, col in PREDICTIONS.items()})
    if targets is not None:
        out.update({OUTPUTS[k]: np.asarray(targets[k], np.float32).reshape(-1) for k in TARGET_KEYS})
    if run.embedding:
        z = np.asarray(run.score(jets, model="encoder"), np.float32)
        out["latent"] = z.reshape(len(jets), -1)
    return out


def empty_columns(run, labelled: bool) -> dict:
    """The columns with no row (an empty ``jet``), with their dtypes and the latent's width."""
    out = {"index": np.zeros(0, np.int64)}
    out.update({col: np.zeros(0, np.float32) for col in PREDICTIONS.values()})
    if labelled:
        out.update({OUTPUTS[k]: np.zeros(0, np.float32) for k in TARGET_KEYS})
    if run.embedding:
        out["latent"] = np.zeros((0, int(run.models["encoder"].output.shape[-1])), np.float32)
    return out
