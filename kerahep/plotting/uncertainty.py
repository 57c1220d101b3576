"""Figures of calibration and per-event uncertainty: reliability before and after
calibration, a deep ensemble's spread against its score, and its AUC against its members',
with the pure functions that give their numbers (:func:`spread_profile`, :func:`reliability_series`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from . import style
from .classifier import finish_reliability
from .style import distinct_colours, experiment_label, use_style


def reliability_series(y_true, scores: dict, weights=None, bins: int = 10) -> list[dict]:
    """The curves :func:`reliability_comparison` draws: per named score, the reliability bins
    of :func:`kerahep.evaluation.calibration` (``mean_score``, ``fraction_positive``,
    ``error``, ``ece``, ``brier``, ``note`` when they are no probabilities) and its ``name``."""
    from ..evaluation import calibration

    return [{"name": str(name), **calibration(y_true, s, weights, bins)} for name, s in scores.items()]


def reliability_comparison(y_true, scores: dict, path, weights=None, bins: int = 10):
    """Reliability diagram of several scores of the same events (``{name: score}``: before and
    after calibration), each with its ECE and Brier score in the legend, and the diagonal."""
    use_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    series = reliability_series(y_true, scores, weights, bins)
    for s, colour, marker in zip(series, distinct_colours(len(series)), "osD^v<>"):
        if "note" in s:
            ax.plot([], [], " ", label=f"{s['name']}: {s['note']}")
            continue
        ax.errorbar(s["mean_score"], s["fraction_positive"], yerr=s["error"], fmt=marker, color=colour, capsize=3,
                    label=f"{s['name']} (ECE {s['ece']:.3f}, Brier {s['brier']:.3f})")
    return finish_reliability(fig, ax, path, weights, legend="upper left")


def spread_profile(score, spread, bins: int = 10, edges=None) -> dict:
    """Mean spread per score bin: ``edges`` (``bins`` equal bins on [0, 1] for probabilities,
    else on the scores' range, unless ``edges`` are given; left-closed, the last closed),
    ``n`` (events per bin), ``mean`` and ``std`` of the spread in each (NaN in empty bins)."""
    s = np.asarray(score, np.float64).ravel()
    d = np.asarray(spread, np.float64).ravel()
    if edges is None:
        prob = bool(s.size and s.min() >= 0 and s.max() <= 1)
        lo, hi = (0.0, 1.0) if prob or not s.size else (float(s.min()), float(s.max()))
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, int(bins) + 1)
    edges = np.asarray(edges, np.float64)
    k = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, k - 1)
    n = np.bincount(idx, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, np.bincount(idx, d, k) / n, np.nan)
        std = np.sqrt(np.maximum(np.where(n > 0, np.bincount(idx, d ** 2, k) / n, np.nan) - mean ** 2, 0.0))
    return {"edges": edges, "n": n, "mean": mean, "std": std}


def spread_vs_score(score, spread, path, y=None, class_names=("background", "signal"), bins: int = 10):
    """A deep ensemble's per-event spread against its mean score: the events as a 2-D
    histogram (log colour scale of entries) and the mean spread per score bin
    (:func:`spread_profile`, error bars the standard deviation of the spread in the bin), for
    all events and, when ``y`` is given, per class (on the same bins)."""
    use_style()
    s, d = np.asarray(score, np.float64).ravel(), np.asarray(spread, np.float64).ravel()
    fig, ax = plt.subplots()
    if s.size:
        edges = spread_profile(s, d, bins)["edges"]
        top = float(d.max()) if d.max() > 0 else 1.0
        h = ax.hist2d(s, d, bins=[np.linspace(edges[0], edges[-1], 41), np.linspace(0, top, 31)], cmap="Greys",
                      norm=LogNorm(), cmin=1)
        fig.colorbar(h[3], ax=ax, label="events")
        groups = [("all events", np.ones(len(s), bool), "o-")]
        if y is not None:
            yy = np.asarray(y).astype(int).ravel()
            groups += [(class_names[k], yy == k, "s--") for k in (0, 1) if (yy == k).any()]
        centres = 0.5 * (edges[1:] + edges[:-1])
        for (name, m, fmt), colour in zip(groups, distinct_colours(len(groups))):
            p = spread_profile(s[m], d[m], edges=edges)
            ax.errorbar(centres, p["mean"], yerr=p["std"], fmt=fmt, color=colour, capsize=3,
                        label=f"mean spread, {name}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.3, 1.0), borderaxespad=0, fontsize=11)
    else:
        ax.text(0.5, 0.5, "no events", ha="center", va="center", transform=ax.transAxes, fontsize=14)
    ax.set_xlabel(f"Ensemble mean P({class_names[1]})")
    ax.set_ylabel("Spread (std over the members)")
    experiment_label(ax)
    return style.save_figure(fig, path)


def ensemble_aucs(member_aucs, ensemble_auc: float, path, weighted: bool = False, seeds=None):
    """Each member's test AUC (points, labelled with their ``seeds`` when given) against the
    ensemble's (a line)."""
    use_style()
    aucs = np.asarray(member_aucs, np.float64)
    fig, ax = plt.subplots()
    x = np.arange(1, len(aucs) + 1)
    ax.plot(x, aucs, "o", color="black", label="members")
    ax.axhline(ensemble_auc, color=distinct_colours(1)[0], label=f"ensemble (AUC {ensemble_auc:.4f})")
    ax.set_xticks(x, [f"{i}\n(seed {s})" for i, s in zip(x, seeds)] if seeds is not None else [str(i) for i in x])
    ax.set_xlim(0.5, len(aucs) + 0.5)
    ax.set_xlabel("Member")
    ax.set_ylabel("Test ROC AUC" + (" (weighted)" if weighted else ""))
    finite = np.concatenate([aucs[np.isfinite(aucs)], [ensemble_auc] if np.isfinite(ensemble_auc) else []])
    if finite.size:
        pad = max(0.005, 0.2 * float(finite.max() - finite.min()))
        ax.set_ylim(float(finite.min()) - pad, float(finite.max()) + 2 * pad)
    ax.legend(loc="upper right", fontsize=12)
    experiment_label(ax)
    return style.save_figure(fig, path)
