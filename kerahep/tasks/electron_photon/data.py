"""electron_photon data: the two HDF5 crop files (or the synthetic twin) to batched ``tf.data`` splits.

:class:`kerahep.data.calo.CaloReader` checks the files, splits on indices (seeded,
stratified) and streams whole HDF5 chunks; :func:`load_inputs` turns its splits into an
:class:`ElectronPhotonInputs`. Without files the synthetic twin
(:mod:`kerahep.data.synthetic.electron_photon`) is written under
``<data_dir>/synthetic/electron_photon`` (:func:`make_synthetic`); when the test crops are
the twin's (built in, or given as files) its oracle AUC on those crops is recorded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ...artifacts import read_json
from ...config import Config
from ...data.calo import CaloReader
from ...errors import DataError
from ..base import Inputs, TaskData

log = logging.getLogger("kerahep")

#: the twin's own seed: the twin depends on its size only, not on the run seed
TWIN_SEED = 0


@dataclass
class ElectronPhotonInputs(TaskData):
    """The datasets of an electron_photon run, with the readers behind them.

    Attributes:
        reader: the reader of ``paths`` (training and validation splits, and the test split
            unless ``data.test_paths`` are given).
        test_reader: the reader of the test crops (``reader`` or that of ``data.test_paths``).
        test_split: the split of ``test_reader`` that is ``test``.

    The readers turn an error met while streaming (NaN in a later chunk, an unreadable
    chunk) back into their :class:`~kerahep.errors.DataError` (``reader.data_errors()``).
    """

    reader: CaloReader | None = None
    test_reader: CaloReader | None = None
    test_split: str = "test"


def twin_folder(config: Config) -> Path:
    """Where the synthetic twin of ``config`` lives."""
    return Path(config.data.data_dir) / "synthetic" / "electron_photon"


def twin_folder_of(paths) -> Path | None:
    """The folder of a synthetic twin when ``paths`` are its two files (twin.json and latents beside them)."""
    from ...data.synthetic import electron_photon as twin

    paths = [Path(p) for p in paths]
    folders = {p.resolve().parent for p in paths}
    if len(folders) != 1 or sorted(p.name for p in paths) != sorted(twin.FILES):
        return None
    folder = folders.pop()
    return folder if (folder / "twin.json").exists() and (folder / "latents.npz").exists() else None


def make_synthetic(config: Config) -> list:
    """Write the twin (``data.synthetic_events`` crops per class) unless it is current; its two files."""
    from ...data.synthetic import electron_photon as twin

    d = config.data
    folder = twin_folder(config)
    if not twin.twin_is_current(folder, d.synthetic_events, TWIN_SEED):
        log.warning("Making the synthetic electron/photon twin (%d crops per class) under %s",
                    d.synthetic_events, folder)
    twin.generate(folder, d.synthetic_events, seed=TWIN_SEED, show_progress=config.run.verbose > 0)
    return [folder / f for f in twin.FILES]


def load_inputs(config: Config, inputs: Inputs, for_evaluation: bool = False) -> ElectronPhotonInputs:
    """The datasets of ``inputs`` (see :meth:`kerahep.tasks.base.Task.load_data`)."""
    d, t = config.data, config.training
    files = inputs.files
    if for_evaluation:  # an independent sample, scored in full (no data.max_events cap)
        reader = CaloReader(files, split=None, seed=config.run.seed, max_events=None, block_rows=d.block_rows,
                            decode_threads=d.decode_threads)
        test_reader, test_split, train, val, info = reader, "test", None, None, {}
    else:
        reader, test_reader, test_split, train, val, info = training_splits(config, files)
    test = test_reader.dataset(test_split, t.batch_size, cache=False)
    info["n_test"] = test_reader.size(test_split)
    info["test_counts"] = test_reader.class_counts(test_split)
    info["split"] = list(d.split) if not for_evaluation else None
    info["chunk_rows"] = {f.path.name: f.chunk_rows for f in reader.files}
    info["cache"] = bool(d.cache)
    info.update(twin_info(test_reader, test_split))
    return ElectronPhotonInputs(train=train, val=val, test=test, source=inputs.source, paths=[str(p) for p in files],
                                info=info, reader=reader, test_reader=test_reader, test_split=test_split)


def training_splits(config: Config, files):
    """The readers and the training and validation datasets of a training run.

    Returns:
        ``(reader, test_reader, test_split, train, val, info)``: the test crops are the
        reader's ``test`` split, or every crop of ``data.test_paths``; ``info`` holds the
        split sizes and class counts.

    Raises:
        DataError: a file both in ``data.paths`` and ``data.test_paths``, or a training split
            without crops of one class.
    """
    d, t = config.data, config.training
    info: dict = {}
    reader = CaloReader(files, split=d.split, seed=config.run.seed, max_events=d.max_events, block_rows=d.block_rows,
                        decode_threads=d.decode_threads)
    two_way = len(reader.split_names) == 2
    if d.test_paths:
        same = {os.path.realpath(p) for p in map(str, files)} & {os.path.realpath(str(p)) for p in d.test_paths}
        if same:
            raise DataError(sorted(same)[0], "test files (data.test_paths) apart from the training files",
                            "a file given both in data.paths and in data.test_paths")
        test_reader = CaloReader(list(d.test_paths), split=None, seed=config.run.seed, max_events=d.max_events,
                                 block_rows=d.block_rows, decode_threads=d.decode_threads)
        val_split = "test" if two_way else "val"
        if not two_way:
            info["unused_in_file_test"] = reader.size("test")
    else:
        test_reader = reader
        val_split = None if two_way else "val"
    for c, n in reader.class_counts("train").items():
        if n == 0:
            raise DataError(", ".join(map(str, files)), "crops of both classes (photon y=0, electron y=1)",
                            f"no {c} crop in the training split")
    train = reader.dataset("train", t.batch_size, shuffle=True, cache=d.cache, shuffle_buffer=d.shuffle_buffer,
                           repeat=t.steps_per_epoch is not None, mixup_alpha=config.model.mixup)
    val = reader.dataset(val_split, t.batch_size, cache=d.cache) if val_split else None
    info["n_train"] = reader.size("train")
    info["n_val"] = reader.size(val_split) if val_split else 0
    info["train_counts"] = reader.class_counts("train")
    if val_split:
        info["val_counts"] = reader.class_counts(val_split)
    return reader, test_reader, "test", train, val, info


def twin_info(test_reader: CaloReader, test_split: str) -> dict:
    """When the test crops are the synthetic twin's: its folder, its oracle AUC and that on these crops."""
    from ...data.synthetic import electron_photon as twin

    folder = twin_folder_of(test_reader.paths)
    if folder is None:
        return {}
    info = {"oracle_auc": read_json(folder / "twin.json")["oracle_auc"], "twin": str(folder)}
    rows = dict(zip([p.name for p in test_reader.paths], test_reader.rows_by_file(test_split)))
    if all(len(rows.get(f, ())) for f in twin.FILES):
        info["oracle_auc_test"] = twin.oracle_auc(folder, rows[twin.PHOTON_FILE], rows[twin.ELECTRON_FILE])
    return info
