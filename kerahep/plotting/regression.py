"""Figures of regressions: prediction against truth and the relative resolution."""

from __future__ import annotations

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from matplotlib.colors import LogNorm

from . import style
from .style import experiment_label, use_style


def pred_bins(n: int, fewest: int = 5, most: int = 50) -> int:
    """Bins per axis of a true-against-predicted histogram of ``n`` entries: about
    sqrt(n / 10), clipped to ``[fewest, most]`` (a sparse sample gets coarse bins)."""
    return int(np.clip(round(np.sqrt(max(int(n), 0) / 10.0)), fewest, most))


def true_vs_pred(y_true, y_pred, path, name: str = "value", unit: str = "GeV", bins: int | None = None,
                 entries: str = "entries"):
    """2-D histogram of prediction against truth with the diagonal: :func:`pred_bins` bins
    and a log colour scale from one entry (empty bins blank), fit for sparse samples."""
    use_style()
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    lo = float(min(y_true.min(), y_pred.min())) if y_true.size else 0.0
    hi = float(max(y_true.max(), y_pred.max())) if y_true.size else 1.0
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    fig, ax = plt.subplots()
    k = pred_bins(len(y_true)) if bins is None else int(bins)
    h = ax.hist2d(y_true, y_pred, bins=k, range=[[lo, hi], [lo, hi]], cmap="viridis", cmin=1, norm=LogNorm(vmin=1))
    fig.colorbar(h[3], ax=ax, label=f"{entries} per bin")
    ax.plot([lo, hi], [lo, hi], color="red", lw=1)
    ax.set_xlabel(f"true {name} [{unit}]")
    ax.set_ylabel(f"predicted {name} [{unit}]")
    experiment_label(ax)
    return style.save_figure(fig, path)


def resolution_summary(y_true, y_pred, limit: float = 1.0) -> dict:
    """Relative residuals ``(pred - true) / true`` (a true 0 divides by 1): ``rel``, ``n``,
    their ``mean`` and ``std`` over every entry, and how many lie ``below`` -limit or
    ``above`` +limit (outside the drawn range)."""
    y_true = np.asarray(y_true, dtype=float).ravel()
    rel = (np.asarray(y_pred, dtype=float).ravel() - y_true) / np.where(y_true == 0, 1, y_true)
    return {"rel": rel, "n": int(rel.size), "mean": float(rel.mean()) if rel.size else float("nan"),
            "std": float(rel.std()) if rel.size else float("nan"), "limit": float(limit),
            "below": int((rel < -limit).sum()), "above": int((rel > limit).sum())}


def resolution(y_true, y_pred, path, name: str = "value", unit: str = "GeV", bins: int | None = None,
               limit: float = 1.0):
    """Histogram of the relative residual in ``[-limit, limit]`` with sqrt(N) errors; the mean
    and spread are of every entry, and the figure says how many lie outside (not drawn)."""
    use_style()
    s = resolution_summary(y_true, y_pred, limit)
    k = int(np.clip(round(np.sqrt(s["n"])), 10, 60)) if bins is None else int(bins)
    fig, ax = plt.subplots()
    h, e = np.histogram(s["rel"], bins=k, range=(-limit, limit))
    hep.histplot(h, e, yerr=np.sqrt(h), ax=ax, label=f"all {s['n']}: mean {s['mean']:+.3f}, std {s['std']:.3f}")
    if s["below"] or s["above"]:
        ax.text(0.97, 0.80, f"outside $\\pm${limit:g}, not drawn:\n{s['below']} below, {s['above']} above",
                transform=ax.transAxes, ha="right", va="top", fontsize=12)
    ax.set_xlabel(f"({name}_pred - {name}_true) / {name}_true")
    ax.set_ylabel("entries")
    ax.legend(fontsize=12, loc="upper left")
    experiment_label(ax)
    return style.save_figure(fig, path)
