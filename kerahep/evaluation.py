"""Metrics on scikit-learn: ROC AUC with a bootstrap interval, classification report,
confusion matrix, regression scores, and prediction over a ``tf.data`` dataset."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def predict_dataset(model, dataset, output: int | str | None = None):
    """Run ``model`` over a batched dataset of ``(x, y[, w])``; return (y_true, y_pred).

    Args:
        model: a Keras model.
        dataset: batched ``tf.data.Dataset``.
        output: for multi-output models, the output (index or name) to return.

    Returns:
        ``y_true`` and ``y_pred`` as NumPy arrays, ``y_pred`` squeezed to 1-D for a single unit.
    """
    ys, ps = [], []
    for batch in dataset:
        x, y = batch[0], batch[1]
        p = model(x, training=False)
        if isinstance(p, dict):
            p = p[output] if output is not None else next(iter(p.values()))
        elif isinstance(p, (list, tuple)):
            p = p[output or 0]
        ys.append(_np(y))
        ps.append(_np(p).astype(np.float32))
    y_true = np.concatenate(ys) if ys else np.zeros((0,))
    y_pred = np.concatenate(ps) if ps else np.zeros((0,))
    if y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred[:, 0]
    if y_true.ndim == 2 and y_true.shape[1] == 1:
        y_true = y_true[:, 0]
    return y_true, y_pred


def _np(t):
    if isinstance(t, dict):
        return {k: _np(v) for k, v in t.items()}
    import keras

    return np.asarray(keras.ops.convert_to_numpy(t))


def roc_auc_with_ci(y_true, score, n_boot: int = 200, cl: float = 0.68, seed: int = 0):
    """ROC AUC and a bootstrap interval.

    Args:
        y_true: 0/1 labels.
        score: classifier scores.
        n_boot: bootstrap resamples.
        cl: central coverage of the interval (0.68: one sigma).

    Returns:
        ``(auc, low, high)``.
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if len(np.unique(y_true)) < 2:
        return float("nan"), float("nan"), float("nan")
    auc = skm.roc_auc_score(y_true, score)
    rng = np.random.default_rng(seed)
    boots = []
    n = len(y_true)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if y_true[idx].min() == y_true[idx].max():
            continue
        boots.append(skm.roc_auc_score(y_true[idx], score[idx]))
    if not boots:
        return float(auc), float("nan"), float("nan")
    lo, hi = np.quantile(boots, [(1 - cl) / 2, 1 - (1 - cl) / 2])
    return float(auc), float(lo), float(hi)


def binary_report(y_true, score, threshold: float = 0.5, n_boot: int = 200, seed: int = 0,
                  class_names=("background", "signal")) -> dict:
    """Test metrics of a binary classifier.

    Returns:
        dict with ``roc_auc``, ``roc_auc_ci`` ([low, high], 68% bootstrap), ``accuracy``,
        ``threshold``, ``n``, ``confusion_matrix`` (rows true, columns predicted) and the
        scikit-learn ``classification_report`` as a dict.
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    pred = (score >= threshold).astype(int)
    auc, lo, hi = roc_auc_with_ci(y_true, score, n_boot=n_boot, seed=seed)
    return {
        "roc_auc": auc,
        "roc_auc_ci": [lo, hi],
        "accuracy": float(skm.accuracy_score(y_true, pred)) if len(y_true) else float("nan"),
        "threshold": float(threshold),
        "n": int(len(y_true)),
        "confusion_matrix": skm.confusion_matrix(y_true, pred, labels=[0, 1]).tolist(),
        "classification_report": skm.classification_report(
            y_true, pred, labels=[0, 1], target_names=list(class_names), output_dict=True, zero_division=0),
    }


def multiclass_report(y_true, proba, class_names=None, n_boot: int = 200, seed: int = 0) -> dict:
    """Accuracy, one-vs-rest AUC (macro; binary AUC for two classes) and confusion matrix."""
    y_true = np.asarray(y_true).astype(int).ravel()
    proba = np.asarray(proba, dtype=np.float64)
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if k == 2:
        auc, lo, hi = roc_auc_with_ci(y_true, proba[:, 1], n_boot=n_boot, seed=seed)
    else:
        auc = float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=list(range(k))))
        lo = hi = float("nan")
    return {
        "roc_auc": auc,
        "roc_auc_ci": [lo, hi],
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "n": int(len(y_true)),
        "confusion_matrix": skm.confusion_matrix(y_true, pred, labels=list(range(k))).tolist(),
        "classification_report": skm.classification_report(
            y_true, pred, labels=list(range(k)), target_names=names, output_dict=True, zero_division=0),
    }


def regression_report(y_true, y_pred) -> dict:
    """MSE, MAE, R^2 and the mean and spread of the relative residual."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    rel = (y_pred - y_true) / np.where(y_true == 0, 1.0, y_true)
    return {
        "mse": float(skm.mean_squared_error(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
        "bias_rel": float(np.mean(rel)),
        "resolution_rel": float(np.std(rel)),
        "n": int(len(y_true)),
    }


def class_weights(labels) -> dict:
    """``{class: n / (k * n_class)}`` (balanced), as for ``model.fit(class_weight=...)``."""
    labels = np.asarray(labels).astype(int).ravel()
    classes, counts = np.unique(labels, return_counts=True)
    n, k = len(labels), len(classes)
    return {int(c): float(n / (k * m)) for c, m in zip(classes, counts)}


# ------------------------------------------------------------------ run evaluation
def resolve_run(run: str | None = None, task: str | None = None, output_dir: str = "results"):
    """The run directory to evaluate: ``run``, else the task's LATEST, else the newest of all."""
    from pathlib import Path

    from .errors import KerahepError
    from .training import latest_run

    if run:
        p = Path(run)
        if not (p / "config.json").exists():
            raise KerahepError(f"{p}: expected a run directory with config.json, found none")
        return p
    root = Path(output_dir)
    if task:
        from .io import check_name

        check_name(task, "task name")
        p = latest_run(root / task)
        if p is None:
            raise KerahepError(f"{root / task}: no complete run of task {task!r} (LATEST missing); train one first")
        return p
    runs = [latest_run(d) for d in root.iterdir() if d.is_dir()] if root.exists() else []
    runs = [r for r in runs if r is not None]
    if not runs:
        raise KerahepError(f"{root}: no complete runs found; run python -m scripts.train --task NAME first")
    return max(runs, key=lambda r: (r / "metrics.json").stat().st_mtime if (r / "metrics.json").exists() else 0)


def evaluate_run(run_dir, data_paths=None, unsafe_load: bool = False) -> dict:
    """Reload a run's models (safe mode) and recompute its test metrics and plots.

    Without ``data_paths`` the run's own test split is rebuilt from its configuration and
    the results go to ``<run>/evaluation.json`` and ``<run>/plots/``. With ``data_paths`` the
    files are scored in full as an independent sample (same reader and checks as training)
    into ``<run>/external/<id>/``; the run's training metrics are never touched.

    Rebuilding the test split selects events by seed and position in the input files, so
    it is only the run's test split if the files are the ones the run was trained on.
    Training records a fingerprint of them in ``metrics.json["data"]["fingerprint"]``
    (source, split sizes and per file its resolved path, size and mtime; no content hash,
    see :mod:`kerahep.data.fingerprint`; stamped synthetic twins are compared by size and
    parameter stamp, since a regenerated identical twin has a new mtime). Before anything
    is written, the fingerprint of the freshly loaded data is compared with it; a
    difference (a file re-prepared or replaced, a real file now read where the run used
    the synthetic twin) raises :class:`~kerahep.errors.DataError`. To score new files,
    pass them as ``data_paths`` (``python -m scripts.evaluate --data FILES``): they are
    then an independent sample. Runs recorded before fingerprints existed are evaluated
    with a logged warning that their data could not be checked.

    Raises:
        DataError: the input files differ from those the run was trained on (nothing is
            written then).

    Returns:
        dict with ``run_dir``, ``output`` (where results went) and ``test`` metrics.
    """
    import datetime as _dt
    import secrets
    from pathlib import Path

    from .config import Config
    from .io import load_model, read_json, write_json
    from .registry import get_task
    from .training import RunContext, _plain

    run_dir = Path(run_dir)
    cfg = Config.from_dict(read_json(run_dir / "config.json"))
    task = get_task(cfg.task)
    models = {}
    for name in task.artifacts:
        path = run_dir / f"{name}.keras"
        if path.exists():
            models[name] = load_model(path, safe_mode=not unsafe_load)
    if "model" not in models:
        from .errors import KerahepError

        raise KerahepError(f"{run_dir}: expected model.keras, found none (did the run finish?)")
    data = task.load_data(cfg, paths=list(data_paths) if data_paths else None, for_evaluation=bool(data_paths))
    if not data_paths:
        _check_same_data(run_dir, data)  # before anything is written into the run
    if data_paths:
        out = run_dir / "external" / f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    else:
        out = run_dir
    out.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(cfg, task, data, out)
    test = _plain(task.evaluate(ctx, models, data))
    result = {"task": cfg.task, "run_dir": str(run_dir), "data": data.describe(), "test": test,
              "independent_sample": bool(data_paths)}
    write_json(out / ("evaluation.json" if not data_paths else "metrics.json"), result)
    result["output"] = str(out)
    return result


def _check_same_data(run_dir, data) -> None:
    """Refuse to rebuild ``run_dir``'s test split from data other than it was trained on."""
    import logging

    from .data.fingerprint import compare_fingerprints, data_fingerprint
    from .errors import DataError
    from .io import read_json

    log = logging.getLogger(__name__)
    metrics_path = run_dir / "metrics.json"
    try:
        recorded = (read_json(metrics_path).get("data") or {}).get("fingerprint") if metrics_path.exists() else None
    except ValueError:
        recorded = None
    if not recorded:
        log.warning("%s: no data fingerprint recorded (run made before fingerprints); cannot check that "
                    "%s are the files it was trained on: if they changed since, the rebuilt test split "
                    "may hold other events, including training events", run_dir,
                    ", ".join(str(p) for p in data.paths) or "the inputs")
        return
    diff = compare_fingerprints(recorded, data_fingerprint(data))
    if diff is not None:
        path, expected, found = diff
        raise DataError(
            path, expected,
            f"{found}. The input data of run {run_dir} changed since training, so its test split "
            "cannot be rebuilt (the same indices would select other events, training events "
            "among them); nothing was written. Restore the original files, or score the new "
            "files as an independent sample: python -m scripts.evaluate --run "
            f"{run_dir} --data FILES")
