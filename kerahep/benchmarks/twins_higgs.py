"""twins_higgs: the higgs_mae rows of the twin fidelity report (issue 19).

What is matched is where the separation sits at the size of the real rows in
``../shared/realdata/higgs/`` (``binary.train``, 7000 events; ``binary.test``, 500):

* ``gbt_all28_auc``: ROC AUC of gradient-boosted trees (scikit-learn
  ``HistGradientBoostingClassifier``, :data:`TREE_PARAMS`, one thread) trained on all 28
  stored columns of the 7000 training events, scored on the 500 test events;
* ``gbt_low21_auc``: the same trees on the 21 low-level columns only (azimuths as stored);
* ``gbt_gap_auc``: the first minus the second, the separation the seven masses add;
* full report only: ``transformer_low_auc``, the higgs_mae task's classifier (the
  pre-trained, fine-tuned Transformer, ``model.keras``) on the low-level features, trained
  with the ``realdata_small`` preset (its 85/15 train/validation split of the 7000 events)
  and scored on the 500; and ``gbt_all28_minus_transformer``, trees on 28 minus that
  Transformer.

The real side is computed from the files when they are present (the trees in every report,
the Transformer in the full one) and otherwise taken from the values recorded in
:data:`REAL`, which the rows then say; with ``KERAHEP_REQUIRE_REALDATA=1`` absent files
raise :class:`~kerahep.errors.DataError` instead. The twin side is the twin of
:mod:`kerahep.data.synthetic.higgs` with its default physics, generated at the same sizes
(7000 training, 500 test events, balanced classes): the tree rows are the mean over
:data:`TWIN_SEEDS` independent twins of that size (their spread is in the notes), the
Transformer one twin (seed :data:`TWIN_SEEDS` [0]). Tolerance :data:`AUC_TOLERANCE`
(absolute) on every row. With 500 test events each AUC carries a statistical spread of
about +-0.02 (the twins' spread over seeds shows it), so a difference near the tolerance is
not significant.

Use::

    from kerahep.benchmarks.twins_higgs import higgs_mae_rows
    rows = higgs_mae_rows(Path("/tmp/twins"), quick=True)   # trees only, seconds
    rows = higgs_mae_rows(Path("/tmp/twins"), quick=False)  # + two Transformer trainings, minutes
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import Row, closeness_row
from ..errors import DataError

TASK = "higgs_mae"
TRAIN_FILE, TEST_FILE = "binary.train", "binary.test"
#: the sizes of the real files, and of the twins compared with them
N_TRAIN, N_TEST = 7000, 500
AUC_TOLERANCE = 0.03
#: seeds of the twins whose tree AUCs are averaged (the first also trains the Transformer)
TWIN_SEEDS = (20140602, 1, 2, 3, 4, 5, 6, 7, 8, 9)
#: the trees of every row (the task's own baseline settings with ``realdata_small``)
TREE_PARAMS = {"max_iter": 300, "early_stopping": True, "validation_fraction": 0.1, "random_state": 0}
#: the Transformer of the task: its ``realdata_small`` preset, without the comparison baselines
TRANSFORMER_PRESET = "realdata_small"
TRANSFORMER_OVERRIDES = ("run.verbose=0", "model.compare_scratch=false", "model.compare_gbt=false")

_RECORDED = "recorded from ../shared/realdata/higgs (binary.train -> binary.test), 2026-12-03"
#: real values, used when the files are absent: key -> (value, unit, how it was measured)
REAL = {
    "gbt_all28_auc": (0.835, "AUC", f"trees on 28 columns, {_RECORDED}"),
    "gbt_low21_auc": (0.664, "AUC", f"trees on 21 low-level columns, {_RECORDED}"),
    "gbt_gap_auc": (0.171, "AUC", f"trees 28 minus trees 21, {_RECORDED}"),
    "transformer_low_auc": (0.723, "AUC", f"higgs_mae realdata_small fine-tuned Transformer, {_RECORDED}"),
    "gbt_all28_minus_transformer": (0.112, "AUC", f"trees 28 minus the Transformer on low, {_RECORDED}"),
}
NAMES = {
    "gbt_all28_auc": "trees on all 28 features (7000 train / 500 test)",
    "gbt_low21_auc": "trees on the 21 low-level features",
    "gbt_gap_auc": "trees 28 minus trees 21 (what the masses add)",
    "transformer_low_auc": "higgs_mae Transformer on the low-level features",
    "gbt_all28_minus_transformer": "trees on 28 minus the Transformer on low-level",
}


def realdata_root() -> Path:
    """``$KERAHEP_REALDATA/higgs`` or ``../shared/realdata/higgs`` beside the checkout."""
    from ..tasks.higgs_mae.config import realdata_dir

    return realdata_dir() / "higgs"


def real_files(root=None) -> tuple[Path, Path]:
    """``(binary.train, binary.test)`` under ``root`` (default :func:`realdata_root`).

    Raises:
        DataError: naming the first file that is absent.
    """
    root = Path(root) if root is not None else realdata_root()
    paths = (root / TRAIN_FILE, root / TEST_FILE)
    for p in paths:
        if not p.is_file():
            raise DataError(p, f"the real HIGGS rows ({TRAIN_FILE}: {N_TRAIN} events, {TEST_FILE}: {N_TEST})",
                            "no such file")
    return paths


def tree_aucs(raw_train, y_train, raw_test, y_test) -> dict:
    """``{"gbt_all28_auc", "gbt_low21_auc", "gbt_gap_auc"}`` of trees (:data:`TREE_PARAMS`) on
    the 28 stored columns and on the first 21 (low-level), trained and scored as given."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    out = {}
    for key, cols in (("gbt_all28_auc", slice(None)), ("gbt_low21_auc", slice(0, 21))):
        clf = HistGradientBoostingClassifier(**TREE_PARAMS)
        with threadpool_limits(1):  # OpenMP on a small shared CPU is much faster with one thread
            clf.fit(np.asarray(raw_train)[:, cols], y_train)
            score = clf.predict_proba(np.asarray(raw_test)[:, cols])[:, 1]
        out[key] = float(roc_auc_score(y_test, score))
    out["gbt_gap_auc"] = out["gbt_all28_auc"] - out["gbt_low21_auc"]
    return out


def twin_split(seed: int, n_train: int = N_TRAIN, n_test: int = N_TEST, **params) -> tuple:
    """``(raw_train, y_train, raw_test, y_test)`` of a twin (default physics unless ``params``)
    of ``n_train + n_test`` events, balanced classes, shuffled."""
    from ..data.synthetic.higgs import generate

    n = n_train + n_test
    ev = generate((n + 1) // 2, seed=seed, **params)
    raw, y = ev["raw"][:n], ev["label"][:n]
    return raw[:n_train], y[:n_train], raw[n_train:], y[n_train:]


def real_trees(root=None) -> dict:
    """:func:`tree_aucs` on the real rows (``binary.train`` -> ``binary.test``)."""
    from ..data.higgs import read_higgs

    train, test = real_files(root)
    x_tr, y_tr = read_higgs(train, features="raw")
    x_te, y_te = read_higgs(test, features="raw")
    return tree_aucs(x_tr, y_tr, x_te, y_te)


def twin_trees(seeds=TWIN_SEEDS, n_train: int = N_TRAIN, n_test: int = N_TEST, **params) -> dict:
    """Per key: ``(mean, standard deviation, per-seed values)`` of :func:`tree_aucs` over twins."""
    per = [tree_aucs(*twin_split(s, n_train, n_test, **params)) for s in seeds]
    return {k: (float(np.mean([p[k] for p in per])), float(np.std([p[k] for p in per])), [p[k] for p in per])
            for k in per[0]}


def transformer_auc(train_path, test_path, workdir, overrides=()) -> float:
    """Test ROC AUC of the higgs_mae classifier trained with :data:`TRANSFORMER_PRESET` on
    ``train_path`` (split 85/15 into training and validation) and scored on ``test_path``;
    the run goes under ``workdir``."""
    from ..registry import get_task
    from ..training import train

    workdir = Path(workdir)
    cfg = get_task(TASK).preset(TRANSFORMER_PRESET).override([
        *TRANSFORMER_OVERRIDES, f"data.paths=('{train_path}', '{test_path}')",
        f"run.output_dir='{workdir / 'results'}'", f"data.data_dir='{workdir / 'data'}'", *overrides])
    return float(train(cfg).metrics["test"]["roc_auc"])


def twin_transformer_auc(workdir, seed: int = TWIN_SEEDS[0], overrides=(), **params) -> float:
    """:func:`transformer_auc` on a twin of the real files' sizes written under ``workdir``."""
    from ..data.higgs import write_higgs

    workdir = Path(workdir)
    x_tr, y_tr, x_te, y_te = twin_split(seed, **params)
    train = write_higgs(workdir / "twin" / TRAIN_FILE, y_tr, x_tr)
    test = write_higgs(workdir / "twin" / TEST_FILE, y_te, x_te)
    return transformer_auc(train, test, workdir / "twin_run", overrides)


def _row(key: str, real: float, real_source: str, twin: float, notes: str = "", **extra) -> Row:
    """One row (absolute tolerance :data:`AUC_TOLERANCE`, :func:`kerahep.benchmarks.closeness_row`)."""
    return closeness_row(TASK, NAMES[key], real, twin, REAL[key][1], real_source, AUC_TOLERANCE, notes=notes, **extra)


def real_values(workdir: Path, quick: bool, root=None) -> tuple[dict, str]:
    """``({key: value}, source)``: computed from the real files when present (the Transformer
    only when not ``quick``), else :data:`REAL` as recorded. Absent files with
    ``KERAHEP_REQUIRE_REALDATA=1``: the :class:`DataError` of :func:`real_files`."""
    try:
        train, test = real_files(root)
    except DataError:
        if os.environ.get("KERAHEP_REQUIRE_REALDATA") == "1":
            raise
        return {k: v[0] for k, v in REAL.items()}, "recorded (the real files are absent)"
    values = real_trees(Path(train).parent)
    if not quick:
        values["transformer_low_auc"] = transformer_auc(train, test, Path(workdir) / "real_run")
        values["gbt_all28_minus_transformer"] = values["gbt_all28_auc"] - values["transformer_low_auc"]
    return values, f"computed from {Path(train).parent}"


def higgs_mae_rows(workdir: Path, quick: bool, root=None, seeds=TWIN_SEEDS) -> list[Row]:
    """The rows of the module docstring; the runs and twin files go under ``workdir``.

    ``root``: folder of the real files (default :func:`realdata_root`); ``seeds``: the twins
    averaged for the tree rows.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    real, how = real_values(workdir, quick, root)
    twin = twin_trees(seeds)
    rows = []
    for key in ("gbt_all28_auc", "gbt_low21_auc", "gbt_gap_auc"):
        mean, sd, per = twin[key]
        src = REAL[key][2] if how.startswith("recorded") else f"{how} ({TRAIN_FILE} -> {TEST_FILE})"
        rows.append(_row(key, real[key], src, mean,
                         notes=(f"twin: mean of {len(per)} twins of {N_TRAIN}/{N_TEST} events, sd {sd:.3f} "
                                f"(500 test events: spread about +-0.02)"),
                         twin_values=per, twin_sd=sd, twin_seeds=list(seeds)))
    if not quick:
        t_auc = twin_transformer_auc(workdir, seed=seeds[0])
        t_gbt = tree_aucs(*twin_split(seeds[0]))["gbt_all28_auc"]
        for key, value, note in (
                ("transformer_low_auc", t_auc, f"one twin (seed {seeds[0]}) of {N_TRAIN}/{N_TEST} events, "
                                               f"preset {TRANSFORMER_PRESET}"),
                ("gbt_all28_minus_transformer", t_gbt - t_auc, f"trees and Transformer on the same twin "
                                                                f"(seed {seeds[0]})")):
            src = REAL[key][2] if how.startswith("recorded") or key not in real else f"{how}"
            rows.append(_row(key, real[key], src, value, notes=note))
    return rows
