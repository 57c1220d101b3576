"""Metrics on scikit-learn: ROC AUC with a bootstrap interval, classification report,
confusion matrix, regression scores. The prediction loop over a ``tf.data`` dataset,
:func:`predict_dataset`, lives in :mod:`kerahep.scoring` and is re-exported here."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from .scoring import predict_dataset  # noqa: F401 - the one prediction loop, re-exported


def bootstrap_indices(y_true, n_boot: int, seed: int = 0):
    """Yield ``n_boot`` bootstrap resamples (index arrays) of the events, skipping those of one class.

    The one resampling of kerahep's intervals: :func:`roc_auc_with_ci` and
    :func:`paired_auc_difference_ci` both draw from it, so the same seed gives the same
    resamples in both.
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    rng = np.random.default_rng(seed)
    n = len(y_true)
    for _ in range(int(n_boot)):
        idx = rng.integers(0, n, n)
        if y_true[idx].min() == y_true[idx].max():
            continue
        yield idx


def _central(values, cl: float) -> tuple:
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - cl) / 2, 1 - (1 - cl) / 2])
    return float(lo), float(hi)


def weighted_roc_auc(y_true, score, weights=None) -> float:
    """ROC AUC, with per-event weights (negative ones allowed) when given.

    Without weights this is scikit-learn's ``roc_auc_score``. With weights, the ROC curve
    comes from scikit-learn's ``roc_curve(sample_weight=...)`` and is integrated by the
    trapezoid rule in threshold order: the weighted Mann-Whitney statistic
    ``sum_ij w_i w_j [s_i > s_j] / (W_sig W_bkg)`` (ties count one half). ``roc_auc_score``
    refuses negative weights, because the curve is then not monotonic, but the integral is
    still the probability-like quantity that weighted Monte Carlo estimates.

    Returns:
        The AUC, or NaN when a class is missing (or its weights sum to zero).
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if weights is None:
        return float(skm.roc_auc_score(y_true, score))
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w[y_true == 1].sum() == 0 or w[y_true == 0].sum() == 0:
        return float("nan")
    fpr, tpr, _ = skm.roc_curve(y_true, score, sample_weight=w, drop_intermediate=False)
    return float(np.trapezoid(tpr, fpr))


def effective_sample_size(weights) -> float:
    """``(sum w)^2 / sum w^2``: the number of unweighted events with the same statistical power."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    sq = float((w ** 2).sum())
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


def roc_auc_with_ci(y_true, score, n_boot: int = 200, cl: float = 0.68, seed: int = 0, weights=None):
    """ROC AUC and a bootstrap interval.

    Args:
        y_true: 0/1 labels.
        score: classifier scores.
        n_boot: bootstrap resamples (0: no interval).
        cl: central coverage of the interval (0.68: one sigma).
        weights: per-event weights (None: unweighted); the bootstrap resamples events,
            each carrying its weight.

    Returns:
        ``(auc, low, high)``; NaN where a class is missing (and for the interval without resamples).
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if len(np.unique(y_true)) < 2:
        return float("nan"), float("nan"), float("nan")
    auc = weighted_roc_auc(y_true, score, w)
    boots = [weighted_roc_auc(y_true[idx], score[idx], None if w is None else w[idx])
             for idx in bootstrap_indices(y_true, n_boot, seed)]
    boots = [b for b in boots if np.isfinite(b)]
    lo, hi = _central(boots, cl)
    return float(auc), lo, hi


def paired_auc_difference_ci(labels, score_a, score_b, n_boot: int = 300, cl: float = 0.68, seed: int = 0,
                             weights=None) -> list:
    """Central ``cl`` interval of ``AUC(a) - AUC(b)`` from paired bootstrap resamples of the same events.

    Resampling the events once for both scores keeps their correlation, so the interval
    is much narrower than the two AUC intervals side by side: whether a model reaches a
    baseline on the same test set is read from it.
    """
    labels = np.asarray(labels).astype(int).ravel()
    a, b = np.asarray(score_a, np.float64).ravel(), np.asarray(score_b, np.float64).ravel()
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    diffs = [weighted_roc_auc(labels[idx], a[idx], None if w is None else w[idx])
             - weighted_roc_auc(labels[idx], b[idx], None if w is None else w[idx])
             for idx in bootstrap_indices(labels, n_boot, seed)]
    return list(_central([d for d in diffs if np.isfinite(d)], cl))


def working_points(y_true, score, weights=None, thresholds=(0.5,), signal_efficiencies=(0.5, 0.7, 0.9)) -> dict:
    """Weighted signal efficiency and background rejection at score thresholds, and the
    threshold and background rejection at fixed signal efficiencies.

    ``background_rejection`` is ``1 / background_efficiency`` (inf when no background passes).
    The threshold at a signal efficiency is the highest signal score at which the efficiency,
    counted from the top, reaches the target (with negative weights it need not grow
    monotonically), or the lowest signal score when it never does.
    """
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    ws, wb = w[y == 1].sum(), w[y == 0].sum()

    def at(t):
        eff_s = float(w[(y == 1) & (s >= t)].sum() / ws) if ws else float("nan")
        eff_b = float(w[(y == 0) & (s >= t)].sum() / wb) if wb else float("nan")
        rej = float("inf") if eff_b == 0 else (1.0 / eff_b if np.isfinite(eff_b) else float("nan"))
        return {"threshold": float(t), "signal_efficiency": eff_s, "background_efficiency": eff_b,
                "background_rejection": rej}

    out = {"at_threshold": [at(t) for t in thresholds], "at_signal_efficiency": []}
    if ws:
        sig = np.argsort(-s[y == 1], kind="stable")
        cum = np.cumsum(w[y == 1][sig]) / ws
        for target in signal_efficiencies:
            reached = np.flatnonzero(cum >= target - 1e-12)  # not searchsorted: cum need not be sorted
            k = int(reached[0]) if len(reached) else len(sig) - 1
            out["at_signal_efficiency"].append({"target": float(target), **at(float(s[y == 1][sig][k]))})
    return out


def efficiency_rejection(y_true, score, weights=None) -> dict:
    """Signal efficiency, background efficiency and background rejection at every threshold.

    The ROC curve of scikit-learn (``sample_weight``, every threshold kept), read as HEP
    does: ``background_rejection`` is ``1 / background_efficiency`` (inf where no
    background passes). Arrays in order of decreasing ``thresholds`` (the first is inf).
    """
    y, s, w = _arrays(y_true, score, weights)
    fpr, tpr, thr = skm.roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    with np.errstate(divide="ignore"):
        rej = np.where(fpr > 0, 1.0 / np.where(fpr > 0, fpr, 1.0), np.inf)
    return {"signal_efficiency": tpr, "background_efficiency": fpr, "background_rejection": rej, "thresholds": thr}


def _background_at(y, s, w, efficiencies):
    """Background efficiency at the signal ``efficiencies``, linear between ROC points (with
    negative weights on the running maximum of the signal efficiency)."""
    fpr, tpr, _ = skm.roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    return np.interp(efficiencies, np.maximum.accumulate(tpr), fpr)


def rejection_band(y_true, score, weights=None, efficiencies=None, n_boot: int = 100, cl: float = 0.68,
                   seed: int = 0) -> dict:
    """Background rejection at signal ``efficiencies`` (default 0.01..1) with a bootstrap band.

    The band is the central ``cl`` interval over :func:`bootstrap_indices` resamples (each
    event keeps its weight) of the background efficiency, inverted (so ``low``/``high`` of
    the rejection are ``1 / high``/``1 / low`` of the efficiency; inf where it is 0).

    Returns:
        ``{"signal_efficiency", "background_rejection", "low", "high"}`` arrays (NaN without
        both classes; ``low``/``high`` NaN without resamples).
    """
    y, s, w = _arrays(y_true, score, weights)
    grid = np.linspace(0.01, 1.0, 100) if efficiencies is None else np.asarray(efficiencies, np.float64)
    nan = np.full(len(grid), np.nan)
    if len(np.unique(y)) < 2:
        return {"signal_efficiency": grid, "background_rejection": nan, "low": nan, "high": nan}
    eff_b = _background_at(y, s, w, grid)
    boots = [_background_at(y[i], s[i], None if w is None else w[i], grid) for i in bootstrap_indices(y, n_boot, seed)]
    lo, hi = (np.quantile(boots, [(1 - cl) / 2, 1 - (1 - cl) / 2], axis=0) if boots else (nan, nan))
    return {"signal_efficiency": grid, "background_rejection": _inverse(eff_b), "low": _inverse(hi),
            "high": _inverse(lo)}


def _inverse(eff):
    eff = np.asarray(eff, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(eff == 0, np.inf, 1.0 / eff)


def _arrays(y_true, score, weights):
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    return y, s, None if weights is None else np.asarray(weights, dtype=np.float64).ravel()


def calibration(y_true, score, weights=None, bins: int = 10) -> dict:
    """Expected calibration error, Brier score and the numbers of the reliability diagram.

    ``bins`` equal-width bins on [0, 1] (left-closed, the last one closed). Per bin:
    ``n`` (events), ``sum_w`` (sum of weights; the events without weights),
    ``mean_score``, ``fraction_positive`` (weighted fraction of class 1) and ``error``
    (binomial, ``sqrt(f (1 - f) / n_eff)`` with ``n_eff = (sum w)^2 / sum w^2``); NaN in
    bins whose sum of weights is not positive. ``ece`` is ``sum_b W_b |f_b - mean_b| / sum_b
    W_b`` over those bins; ``brier`` is scikit-learn's ``brier_score_loss`` with
    ``sample_weight``. Scores outside [0, 1] are no probabilities: ``ece`` and ``brier`` are
    then NaN and ``note`` says why.
    """
    y, p, w = _arrays(y_true, score, weights)
    w = np.ones_like(p) if w is None else w
    bins = int(bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    if not len(p) or not (np.all(np.isfinite(p)) and p.min() >= 0 and p.max() <= 1):
        nan = np.full(bins, np.nan)
        return {"ece": float("nan"), "brier": float("nan"), "edges": edges, "n": np.zeros(bins, int),
                "sum_w": np.zeros(bins), "mean_score": nan, "fraction_positive": nan, "error": nan,
                "note": "no events" if not len(p) else "the scores are not probabilities (outside [0, 1])"}
    idx = np.minimum((p * bins).astype(int), bins - 1)
    sum_w, sum_w2 = np.bincount(idx, w, bins), np.bincount(idx, w ** 2, bins)
    ok = sum_w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(ok, np.bincount(idx, w * p, bins) / sum_w, np.nan)
        frac = np.where(ok, np.bincount(idx, w * y, bins) / sum_w, np.nan)
        err = np.sqrt(frac * (1 - frac) / np.where(ok, sum_w ** 2 / sum_w2, np.nan))
    total = sum_w[ok].sum()
    ece = float((sum_w[ok] * np.abs(frac[ok] - mean[ok])).sum() / total) if total > 0 else float("nan")
    brier = float(skm.brier_score_loss(y, p, sample_weight=w, labels=[0, 1])) if w.sum() != 0 else float("nan")
    return {"ece": ece, "brier": brier, "edges": edges, "n": np.bincount(idx, minlength=bins), "sum_w": sum_w,
            "mean_score": mean, "fraction_positive": frac, "error": err}


def binary_report(y_true, score, threshold: float = 0.5, n_boot: int = 200, seed: int = 0,
                  class_names=("background", "signal"), weights=None) -> dict:
    """Test metrics of a binary classifier, weighted when ``weights`` are given.

    Returns:
        dict with ``roc_auc``, ``roc_auc_ci`` ([low, high], 68% bootstrap), ``accuracy``,
        ``threshold``, ``n``, ``confusion_matrix`` (rows true, columns predicted; sums of
        weights when weighted) and the scikit-learn ``classification_report`` as a dict.
        ``working_points``: the signal efficiency, background efficiency, rejection and
        threshold at the threshold and at fixed signal efficiencies (:func:`working_points`);
        ``ece`` and ``brier``: the calibration of the score (:func:`calibration`; with
        ``calibration_note`` when the scores are no probabilities). With weights also
        ``weighted``: true, and the sum of weights and the effective sample size per class.
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    pred = (score >= threshold).astype(int)
    auc, lo, hi = roc_auc_with_ci(y_true, score, n_boot=n_boot, seed=seed, weights=w)
    report = {
        "roc_auc": auc,
        "roc_auc_ci": [lo, hi],
        "accuracy": float(skm.accuracy_score(y_true, pred, sample_weight=w)) if len(y_true) else float("nan"),
        "threshold": float(threshold),
        "n": int(len(y_true)),
        "confusion_matrix": skm.confusion_matrix(y_true, pred, labels=[0, 1], sample_weight=w).tolist(),
        "classification_report": skm.classification_report(
            y_true, pred, labels=[0, 1], target_names=list(class_names), output_dict=True, zero_division=0,
            sample_weight=w),
        "working_points": working_points(y_true, score, w, thresholds=(threshold,)),
    }
    cal = calibration(y_true, score, w)
    report.update({"ece": cal["ece"], "brier": cal["brier"]}, **({"calibration_note": cal["note"]}
                                                                  if "note" in cal else {}))
    present = np.unique(y_true)
    if len(y_true) and len(present) < 2:  # an independent sample of one class: what can be computed
        only = class_names[int(present[0])] if int(present[0]) < len(class_names) else str(int(present[0]))
        ww = np.ones(len(y_true)) if w is None else w
        report["roc_auc_note"] = (f"all {len(y_true)} events are {only} (class {int(present[0])}): the ROC AUC "
                                  "needs events of both classes, so it is absent (NaN)")
        report["selected_fraction"] = float(ww[pred == 1].sum() / ww.sum()) if ww.sum() else float("nan")
    if w is not None:
        report["weighted"] = True
        report["sum_of_weights"] = {name: float(w[y_true == k].sum()) for k, name in enumerate(class_names)}
        report["effective_events"] = {name: effective_sample_size(w[y_true == k]) for k, name in enumerate(class_names)}
        report["negative_weight_fraction"] = float((w < 0).mean()) if len(w) else 0.0
    return report


def multiclass_report(y_true, proba, class_names=None, n_boot: int = 200, seed: int = 0) -> dict:
    """Accuracy, one-vs-rest AUC (macro; binary AUC for two classes), confusion matrix, the
    top-class calibration ``ece`` (:func:`calibration` of the highest probability against
    whether it is the true class) and ``brier``, the mean over events of
    ``sum_k (p_k - [y = k])^2`` (Brier's multi-class score, in [0, 2])."""
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
        "ece": calibration((pred == y_true).astype(int), proba.max(axis=1) if len(proba) else proba)["ece"],
        "ece_of": "top-class confidence",
        "brier": float(np.mean(np.sum((proba - np.eye(k)[y_true]) ** 2, axis=1))) if len(y_true) else float("nan"),
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


def class_weights(labels, weights=None) -> dict:
    """``{class: W / (k * W_class)}`` (balanced), as for ``model.fit(class_weight=...)``.

    ``W`` are counts without ``weights`` and sums of the event weights with them, so a
    weighted sample is balanced by what it represents, not by its number of entries.
    """
    labels = np.asarray(labels).astype(int).ravel()
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    classes = np.unique(labels)
    sums = {int(c): float(w[labels == c].sum()) for c in classes}
    total, k = float(sum(sums.values())), len(classes)
    return {c: float(total / (k * m)) if m > 0 else 1.0 for c, m in sums.items()}


def __getattr__(name):
    """``evaluate_run`` and ``resolve_run`` moved to :mod:`kerahep.training` (old path, one release)."""
    if name in ("evaluate_run", "resolve_run"):
        import warnings

        from . import training

        warnings.warn(f"kerahep.evaluation.{name} moved to kerahep.training.{name}", DeprecationWarning, stacklevel=2)
        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
