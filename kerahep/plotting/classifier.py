"""Figures of binary classifiers: ROC, efficiency against rejection, reliability, score
histograms and the confusion matrix, with the pure functions that give their numbers
(:func:`score_curves`, :func:`score_bins`, :func:`confusion_cells`, ...)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from sklearn import metrics as skm

from . import style
from .style import distinct_colours, experiment_label, label_text, use_style

_AUC_IN_LABEL = re.compile(r"\s*\(AUC [^)]*\)")


def roc_label(name, auc: float) -> str:
    """Legend entry of a ROC curve: its name (an AUC it already carries dropped) and its AUC, once."""
    return f"{_AUC_IN_LABEL.sub('', str(name)).strip()} (AUC {auc:.4f})"


def roc_curve(y_true, score, path, label: str = "model", curves: dict | None = None, weights=None):
    """ROC curve(s) with AUC in the legend; ``curves`` adds {name: (y, score)} pairs.

    With ``weights`` (per event of ``y_true``, negative ones allowed) the main curve is the
    weighted ROC curve and its AUC :func:`kerahep.evaluation.weighted_roc_auc`; the axes say so.
    """
    from ..evaluation import weighted_roc_auc

    use_style()
    fig, ax = plt.subplots()
    all_curves = {label: (y_true, score, weights)}
    all_curves.update({k: (v[0], v[1], None) for k, v in (curves or {}).items()})
    for name, (y, s, w) in all_curves.items():
        y = np.asarray(y).astype(int).ravel()
        if len(np.unique(y)) < 2:
            continue
        s = np.asarray(s).ravel()
        if w is None:
            fpr, tpr, _ = skm.roc_curve(y, s)
            auc = skm.auc(fpr, tpr)
        else:
            w = np.asarray(w, np.float64).ravel()
            fpr, tpr, _ = skm.roc_curve(y, s, sample_weight=w, drop_intermediate=False)
            auc = weighted_roc_auc(y, s, w)
        ax.plot(fpr, tpr, label=roc_label(name, auc))
    if not ax.lines:  # no curve could be drawn: say why instead of leaving empty axes
        ax.text(0.5, 0.5, "no ROC curve: the events are all of one class", ha="center", va="center",
                transform=ax.transAxes, fontsize=14)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    weighted = " (weighted)" if weights is not None else ""
    ax.set_xlabel("False positive rate" + weighted)
    ax.set_ylabel("True positive rate" + weighted)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="lower right", fontsize=12)
    experiment_label(ax)
    return style.save_figure(fig, path)


def efficiency_rejection(y_true, score, path, weights=None, label: str = "model", n_boot: int = 100,
                         seed: int = 0, class_names=("background", "signal")):
    """Background rejection (1 / background efficiency, log scale) against signal efficiency
    (class 1 is the signal), with the bootstrap band (68%,
    :func:`kerahep.evaluation.rejection_band`, weighted with ``weights``) and the working
    points at signal efficiencies 0.5, 0.7, 0.9 marked."""
    from .. import evaluation as ev

    use_style()
    fig, ax = plt.subplots()
    y = np.asarray(y_true).astype(int).ravel()
    if len(np.unique(y)) == 2:
        curve = ev.efficiency_rejection(y, score, weights)
        band = ev.rejection_band(y, score, weights, n_boot=n_boot, seed=seed)
        fin = np.isfinite(curve["background_rejection"])
        ax.plot(curve["signal_efficiency"][fin], curve["background_rejection"][fin], label=label,
                marker="." if fin.sum() < 30 else None)
        free = float(curve["signal_efficiency"][~fin].max())  # up to here no background passes
        if free > 0:
            ax.axvline(free, color="grey", ls=":", lw=1)
            ax.text(0.03, 0.05, f"no background passes up to signal efficiency {free:.3g}:\n"
                    "rejection infinite there (not drawn)", transform=ax.transAxes, fontsize=11)
        ok = np.isfinite(band["low"]) & np.isfinite(band["high"]) & np.isfinite(band["background_rejection"])
        if ok.any():
            ax.fill_between(band["signal_efficiency"][ok], band["low"][ok], band["high"][ok], alpha=0.3,
                            label="68% bootstrap band")
        points = [p for p in ev.working_points(y, score, weights)["at_signal_efficiency"]
                  if np.isfinite(p["background_rejection"])]
        ax.plot([p["signal_efficiency"] for p in points], [p["background_rejection"] for p in points], "o",
                color="black", label="working points (50, 70, 90%)")
        if fin.any() and np.nanmin(curve["background_rejection"][fin]) > 0:
            ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=12)
    else:
        ax.text(0.5, 0.5, "no curve: the events are all of one class", ha="center", va="center",
                transform=ax.transAxes, fontsize=14)
    weighted = " (weighted)" if weights is not None else ""
    ax.set_xlim(0, 1)
    sig, bkg = (f" ({n})" if n not in ("signal", "background") else "" for n in reversed(class_names[:2]))
    ax.set_xlabel(f"Signal{sig} efficiency{weighted}")
    ax.set_ylabel(f"Background{bkg} rejection (1 / efficiency){weighted}")
    experiment_label(ax)
    return style.save_figure(fig, path)


def reliability(y_true, score, path, weights=None, bins: int = 10, label: str = "model"):
    """Reliability diagram: the (weighted) fraction of class 1 per score bin against the bin's
    mean score, with binomial error bars and the diagonal; ECE and Brier score in the legend
    (:func:`kerahep.evaluation.calibration`)."""
    from ..evaluation import calibration

    use_style()
    cal = calibration(y_true, score, weights, bins)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    if "note" in cal:
        ax.text(0.5, 0.5, f"no reliability diagram: {cal['note']}", ha="center", va="center",
                transform=ax.transAxes, fontsize=13)
    else:
        ax.errorbar(cal["mean_score"], cal["fraction_positive"], yerr=cal["error"], fmt="o", capsize=3,
                    label=f"{label} (ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f})")
    return finish_reliability(fig, ax, path, weights, legend="best")


def finish_reliability(fig, ax, path, weights=None, legend: str = "best"):
    """The axes, labels, legend and experiment label of a reliability diagram, then the figure
    written (:func:`reliability`, :func:`kerahep.plotting.uncertainty.reliability_comparison`)."""
    weighted = " (weighted)" if weights is not None else ""
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("Mean predicted probability in the bin")
    ax.set_ylabel("Fraction of positives" + weighted)
    ax.legend(loc=legend, fontsize=12)
    experiment_label(ax)
    return style.save_figure(fig, path)


def classifier_views(y_true, score, plots_dir, weights=None, label: str = "model", seed: int = 0,
                     class_names=("background", "signal")) -> list:
    """The views every binary classifier report draws beside its ROC: ``eff_rejection.png``
    (:func:`efficiency_rejection`) and ``reliability.png`` (:func:`reliability`)."""
    plots_dir = Path(plots_dir)
    return [efficiency_rejection(y_true, score, plots_dir / "eff_rejection.png", weights=weights, label=label,
                                 seed=seed, class_names=class_names),
            reliability(y_true, score, plots_dir / "reliability.png", weights=weights, label=label)]


def score_bins(counts, lo: float = 0.0, hi: float = 1.0, fewest: int = 5, most: int = 50) -> np.ndarray:
    """Bin edges shared by every curve of a score histogram: about sqrt(N) bins over
    ``[lo, hi]``, N the median number of events per curve (``counts``), clipped to
    ``[fewest, most]``, so a curve of N events has about sqrt(N) per bin.

    Example:
        >>> len(score_bins([100, 400])) - 1, len(score_bins([3])) - 1, len(score_bins([10 ** 6])) - 1
        (16, 5, 50)
    """
    counts = [int(c) for c in counts if c > 0]
    n = float(np.median(counts)) if counts else 0.0
    k = int(np.clip(round(np.sqrt(n)), fewest, most))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, k + 1)


def unit_area_histogram(values, edges, weights=None) -> tuple:
    """``(heights, errors)``: the histogram of ``values`` normalised to unit area (by the sum
    of weights, or of their absolute values where that sum is not positive) and its
    statistical errors, sqrt(N) per bin (sqrt(sum w^2) with weights), scaled the same way."""
    values = np.asarray(values, float).ravel()
    w = np.ones(len(values)) if weights is None else np.asarray(weights, np.float64).ravel()
    h, _ = np.histogram(values, bins=edges, weights=w)
    h2, _ = np.histogram(values, bins=edges, weights=w ** 2)
    total = w.sum() if w.sum() > 0 else np.abs(w).sum()
    norm = (total if total > 0 else 1.0) * np.diff(edges)
    return h / norm, np.sqrt(h2) / norm


def score_curves(y_true, score, groups=None, class_names=("background", "signal"), weights=None,
                 bins=None) -> list[dict]:
    """The curves :func:`score_distributions` draws, one per class or per group (sample).

    Each: ``name``, ``target`` (its class; a group's majority), ``n`` (events), ``sum_w``,
    ``edges`` (shared by all, :func:`score_bins` unless ``bins`` is given), ``values`` (unit
    area), ``errors`` (statistical), ``color`` (one per curve, none shared) and ``linestyle``
    (signal solid, background dashed).
    """
    score = np.asarray(score, float).ravel()
    y = np.asarray(y_true).astype(int).ravel()
    if groups is None:
        masks = [(class_names[c], c, y == c) for c in (0, 1)]
    else:
        g = np.asarray(groups).astype(str).ravel()
        masks = [(str(n), int(round(float(y[g == n].mean()))), g == n) for n in np.unique(g)]
    masks = [m for m in masks if m[2].any()]
    lo, hi = (0.0, 1.0) if is_probability(score) else (float(score.min()), float(score.max())) if score.size \
        else (0.0, 1.0)
    if bins is None:
        edges = score_bins([int(m.sum()) for *_, m in masks], lo, hi)
    else:
        edges = np.linspace(lo, hi, int(bins) + 1) if np.isscalar(bins) else np.asarray(bins, float)
    w = None if weights is None else np.asarray(weights, np.float64).ravel()
    out = []
    for (name, target, m), colour in zip(masks, distinct_colours(len(masks))):
        values, errors = unit_area_histogram(score[m], edges, None if w is None else w[m])
        out.append({"name": name, "target": target, "n": int(m.sum()),
                    "sum_w": float(m.sum()) if w is None else float(w[m].sum()), "edges": edges,
                    "values": values, "errors": errors, "color": colour, "linestyle": "-" if target == 1 else "--"})
    return out


def is_probability(score) -> bool:
    score = np.asarray(score)
    return bool(score.size and score.min() >= 0 and score.max() <= 1)


def score_distributions(y_true, score, path, groups=None, class_names=("background", "signal"), bins=None,
                        weights=None):
    """Score histograms per class, or per group (for example the process) when ``groups`` is given.

    Unit area, with statistical error bars, on bins that fit the number of events
    (:func:`score_curves`); the x axis names whose probability the score is (the second
    class, ``P(signal)``). With ``weights`` (one per event, negative ones allowed) the
    histograms are weighted with sqrt(sum w^2) errors; the legend (outside the axes) gives
    entries and sum of weights.
    """
    use_style()
    curves = score_curves(y_true, score, groups, class_names, weights, bins)
    fig, ax = plt.subplots()
    for c in curves:
        label = f"{c['name']} ({c['n']})" if weights is None else f"{c['name']} ({c['n']}, sum w {c['sum_w']:.3g})"
        hep.histplot(c["values"], c["edges"], yerr=c["errors"], ax=ax, label=label, color=c["color"],
                     linestyle=c["linestyle"])
    ax.set_xlabel(f"Predicted P({class_names[1]})" if is_probability(score) else "Classifier score")
    ax.set_ylabel("Normalised entries" if weights is None else "Normalised weighted entries")
    ax.set_yscale("log")
    if curves:
        title = f"solid: {class_names[1]}, dashed: {class_names[0]}" if groups is not None else None
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=11, title=title,
                  title_fontsize=11)
    experiment_label(ax)
    return style.save_figure(fig, path)


def confusion_cells(cm) -> tuple[np.ndarray, list[list[str]]]:
    """The fractions and the cell texts :func:`confusion_matrix` draws.

    ``cm`` may hold sums of event weights (rows true, columns predicted): fractions are
    each cell over its row's sum whatever that sum's size (weighted sums are often below
    one), a row that sums to zero gets NaN and no fraction, and non-integer sums are
    written with three significant digits instead of being truncated to integers.
    """
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(rows != 0, cm / np.where(rows != 0, rows, 1), np.nan)
    integral = bool(np.all(np.isclose(cm, np.round(cm))))
    texts = [[(f"{int(round(c))}" if integral else f"{c:.3g}") + ("" if np.isnan(f) else f"\n{f:.2f}")
              for c, f in zip(crow, frow)] for crow, frow in zip(cm, norm)]
    return norm, texts


def confusion_matrix(cm, path, class_names=("background", "signal"), title: str | None = None):
    """Confusion matrix, normalised per true class, with the counts (or sums of weights) annotated."""
    use_style()
    norm, texts = confusion_cells(cm)
    weighted = any("." in t.split("\n")[0] for row in texts for t in row)
    fig, ax = plt.subplots()
    im = ax.imshow(np.nan_to_num(norm), cmap="Blues", vmin=0, vmax=1)
    names = list(class_names)[: norm.shape[0]]
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_yticks(range(len(names)), names)
    for i, row in enumerate(texts):
        for j, text in enumerate(row):
            ax.text(j, i, text, ha="center", va="center",
                    color="white" if np.nan_to_num(norm[i, j]) > 0.5 else "black", fontsize=12)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title("\n".join(t for t in (label_text(), title) if t), fontsize=14)
    fig.colorbar(im, ax=ax, label="fraction of the true class" + (" (weighted)" if weighted else ""))
    return style.save_figure(fig, path)
