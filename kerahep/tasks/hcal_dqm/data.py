"""hcal_dqm data: run files (one class each) to block-split, memory-mapped ``tf.data`` splits.

The files are given (``data.paths`` or ``evaluate --data``) or the synthetic twin is
written under ``<data_dir>/synthetic/hcal_dqm`` (:func:`make_synthetic`); the reader is
:mod:`kerahep.data.hcal`. Scoring files with a trained model labels each run with the
class the model learnt for it (:func:`classes_of`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...config import Config
from ...data.hcal import HcalRuns
from ...errors import DataError
from ..base import Inputs, TaskData

log = logging.getLogger("kerahep")

SPLITS = ("train", "val", "test")


@dataclass
class HcalInputs(TaskData):
    """The datasets of an hcal_dqm run, with the opened runs the models and report read.

    Attributes:
        runs: the memory-mapped runs (one class each, :meth:`HcalRuns.class_of`).
        segments: ``(run, start, stop)`` lumisection ranges of train, validation and test.
        anomalies: ``{run name: {lumisection: record}}`` of injected anomalies (twin or a
            folder holding ``anomalies.json``), or None.
        twin_dir: the synthetic twin's folder when the data are the twin, else None.
        n_classes: classes of the model (runs it was trained on).
        label_mode: ``binary`` (two classes) or ``categorical``.
    """

    runs: HcalRuns = field(default_factory=HcalRuns)
    segments: list = field(default_factory=lambda: [[], [], []])
    anomalies: dict | None = None
    twin_dir: str | None = None
    n_classes: int = 2
    label_mode: str = "binary"

    @property
    def names(self) -> list[str]:
        """Run names, in file order."""
        return self.runs.names


def twin_dir(task_name: str, config: Config) -> Path:
    """The folder of the synthetic twin."""
    return Path(config.data.data_dir) / "synthetic" / task_name


def make_synthetic(task_name: str, config: Config) -> list:
    """Write the twin (if missing or made with other parameters) and return its run files."""
    from ...data.synthetic.hcal import ensure_twin

    d = config.data
    twin = ensure_twin(twin_dir(task_name, config), n_lumisections=d.synthetic_events, n_runs=d.n_runs,
                       separation=d.separation, anomaly_fraction=d.anomaly_fraction, seed=config.run.seed)
    return [Path(p) for p in twin["paths"]]


def expected_classes(config: Config) -> int:
    """Classes of the model of ``config``: one per configured file, else per twin run."""
    d = config.data
    return len(d.paths) if d.paths and not d.force_synthetic else d.n_runs


def training_runs(config: Config) -> list[str]:
    """The run names the model of ``config`` was trained on, in class order."""
    from ...data import hcal

    d = config.data
    if d.paths and not d.force_synthetic:
        return [hcal.run_name(p) for p in d.paths]
    from ...data.synthetic.hcal import run_numbers

    return [f"Run{n}" for n in run_numbers(d.n_runs)]


def classes_of(config: Config, runs: HcalRuns, files) -> list[int]:
    """Class of each scored file: that of the training run with the same name, so files
    given in another order (or one run alone) keep the labels the model learnt; files of
    runs the model never saw are labelled by position, as when training.

    Raises:
        DataError: known and unknown runs mixed.
    """
    trained = training_runs(config)
    known = [n in trained for n in runs.names]
    if all(known):
        classes = [trained.index(n) for n in runs.names]
        if classes != list(range(len(classes))):
            log.info("hcal_dqm: scoring %s with the classes the model learnt for them: %s", runs.names,
                     dict(zip(runs.names, classes)))
        return classes
    if any(known):
        i = known.index(False)
        raise DataError(files[i], f"a run the model was trained on ({', '.join(trained)}) like the other files "
                                  f"given, or only new runs (labelled by position)", f"run {runs.names[i]}")
    return list(range(runs.n_classes))


def load_truth(folder, names) -> dict | None:
    """The injected anomalies recorded in ``folder`` (``anomalies.json``) for any of the runs ``names``."""
    from ...data.synthetic.hcal import ANOMALIES_FILE, load_anomalies

    folder = Path(folder)
    if not (folder / ANOMALIES_FILE).exists():
        return None
    try:
        truth = load_anomalies(folder)
    except (ValueError, KeyError, OSError):
        return None
    return truth if any(n in truth for n in names) else None


def open_checked(config: Config, files, for_evaluation: bool) -> HcalRuns:
    """Open the run files and check their number against the model's classes (labels set for scoring)."""
    from ...data import hcal

    d = config.data
    classes = expected_classes(config)
    runs = hcal.open_runs(files, max_events=d.max_events, validate=d.scan_values,
                          min_runs=1 if for_evaluation else 2)
    if runs.n_classes > classes or (not for_evaluation and runs.n_classes != classes):
        raise DataError(files[-1], f"{classes} run files (one per class of the model)", f"{runs.n_classes}")
    if for_evaluation:
        runs.classes = classes_of(config, runs, files)
    return runs


def describe(config: Config, runs: HcalRuns, segments, for_evaluation: bool) -> dict:
    """What ``metrics.json["data"]`` records of the split runs."""
    from ...data import hcal

    d = config.data
    names = runs.names
    per_class = {s: {names[r]: int(sum(b - a for rr, a, b in seg if rr == r)) for r in range(runs.n_classes)}
                 for s, seg in zip(SPLITS, segments)}
    return {
        "n_train": hcal.count(segments[0]), "n_val": hcal.count(segments[1]), "n_test": hcal.count(segments[2]),
        "runs": names, "classes": per_class, "map_shape": list(runs.shape),
        "split": "independent sample (every lumisection in test)" if for_evaluation
        else f"contiguous blocks of lumisections ({d.n_blocks} per run)",
        "files": runs.summary() if d.scan_values else {r.name: {"path": str(r.path), "lumisections": len(r)}
                                                      for r in runs.runs},
    }


def load_inputs(task_name: str, config: Config, inputs: Inputs, for_evaluation: bool = False) -> HcalInputs:
    """The datasets of ``inputs`` (see :meth:`kerahep.tasks.base.Task.load_data`)."""
    from ...artifacts import read_json
    from ...data import hcal

    d = config.data
    files = inputs.files
    runs = open_checked(config, files, for_evaluation)
    if for_evaluation:
        segments = [[], [], [(r, 0, n) for r, n in enumerate(runs.sizes)]]
    else:
        segments = hcal.split_segments(runs.sizes, d.split, n_blocks=d.n_blocks, seed=config.run.seed)
    classes = expected_classes(config)
    label_mode = "binary" if classes == 2 else "categorical"
    cache = bool(d.cache) and hcal.fits_in_memory(sum(runs.sizes), runs.shape)
    common = {"chunk_size": d.chunk_size, "label_mode": label_mode, "shuffle_buffer": d.shuffle_buffer,
              "num_classes": classes, "decode_threads": d.decode_threads}
    bs = config.training.batch_size
    train = hcal.make_dataset(runs, segments[0], bs, training=True, seed=config.run.seed, cache=cache, **common)
    val = hcal.make_dataset(runs, segments[1], bs, cache=cache, **common)
    test = hcal.make_dataset(runs, segments[2], bs, **common)
    info = describe(config, runs, segments, for_evaluation)
    twin = twin_dir(task_name, config) if inputs.synthetic else None
    if twin is not None:
        meta = read_json(twin / "twin.json")
        info["twin"] = {k: meta[k] for k in ("params", "oracle_auc", "oracle_auc_pairs", "n_anomalies")}
        anomalies = load_truth(twin, runs.names)
    else:
        anomalies = load_truth(files[0].parent, runs.names) if len({f.parent for f in files}) == 1 else None
    class_weight = None
    if config.training.class_weight and info["n_train"]:
        from ...evaluation import class_weights

        class_weight = class_weights(np.concatenate([np.full(b - a, r) for r, a, b in segments[0]]))
    return HcalInputs(train=train, val=val, test=test, source=inputs.source, paths=[str(f) for f in files],
                      info=info, class_weight=class_weight, runs=runs, segments=segments, anomalies=anomalies,
                      twin_dir=str(twin) if twin is not None else None, n_classes=classes, label_mode=label_mode)


def adapt_maps(config: Config, data: HcalInputs) -> np.ndarray:
    """Training maps (test maps when scoring only) to adapt the per-cell standardisation to."""
    from ...data import hcal

    seg = data.segments[0] if hcal.count(data.segments[0]) else data.segments[2]
    return hcal.sample_maps(data.runs, seg, config.data.adapt_samples)


def mean_occupancy(runs: HcalRuns) -> np.ndarray:
    """Mean map over the runs (their scanned mean maps, else the first 500 lumisections of each)."""
    maps = [r.mean_map for r in runs.runs if r.mean_map is not None]
    if maps:
        return np.mean(maps, axis=0)
    return np.mean([np.asarray(r.array[: min(len(r), 500)], dtype=np.float64).mean(axis=0) for r in runs.runs], axis=0)


def run_means(runs: HcalRuns) -> list:
    """Mean map of each run (scanned, else of its first 500 lumisections)."""
    return [r.mean_map if r.mean_map is not None else np.asarray(r.array[: min(len(r), 500)]).mean(axis=0)
            for r in runs.runs]
