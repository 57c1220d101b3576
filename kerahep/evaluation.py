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


def __getattr__(name):
    """``evaluate_run`` and ``resolve_run`` moved to :mod:`kerahep.training` (old path, one release)."""
    if name in ("evaluate_run", "resolve_run"):
        import warnings

        from . import training

        warnings.warn(f"kerahep.evaluation.{name} moved to kerahep.training.{name}", DeprecationWarning, stacklevel=2)
        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
