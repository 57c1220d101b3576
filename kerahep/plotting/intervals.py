"""AUC with its interval per model: a comparison table of several classifiers on the same
test events drawn as one figure (models on the vertical axis, the AUC with its bootstrap
interval as horizontal error bars), where the plot says more than the table beside it."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator

from . import style
from .style import experiment_label, use_style


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def auc_points(rows: dict) -> list[dict]:
    """The points of :func:`auc_intervals`: ``[{"model", "roc_auc", "low", "high"}]`` in the
    order of ``rows`` (``{model: {"roc_auc", "roc_auc_ci": [low, high]}}``, the comparison
    rows of a report). A model without a finite AUC is left out; ``low`` and ``high`` are
    None where it has no interval (an oracle's AUC, a missing or non-finite bound).

    Example:
        >>> auc_points({"a": {"roc_auc": 0.8, "roc_auc_ci": [0.78, 0.82]}, "b": {"roc_auc": None}})
        [{'model': 'a', 'roc_auc': 0.8, 'low': 0.78, 'high': 0.82}]
    """
    points = []
    for name, row in rows.items():
        auc = _finite((row or {}).get("roc_auc"))
        if auc is None:
            continue
        low, high = (list(row.get("roc_auc_ci") or []) + [None, None])[:2]
        low, high = _finite(low), _finite(high)
        if low is None or high is None:
            low = high = None
        points.append({"model": str(name), "roc_auc": auc, "low": low, "high": high})
    return points


def auc_intervals(rows: dict, path, title: str = "", cl: float = 0.68):
    """Test ROC AUC per model with its central ``cl`` bootstrap interval (:func:`auc_points`):
    one row per model, top to bottom in table order; a model without an interval is an open
    marker, so a missing bar is not read as a precise value. Returns ``path``."""
    use_style()
    points = auc_points(rows)
    fig, ax = plt.subplots(figsize=(9, 2.4 + 0.55 * max(len(points), 1)))
    ys = list(range(len(points)))[::-1]
    with_ci = [(y, p) for y, p in zip(ys, points) if p["low"] is not None]
    without = [(y, p) for y, p in zip(ys, points) if p["low"] is None]
    if with_ci:
        ax.errorbar([p["roc_auc"] for _, p in with_ci], [y for y, _ in with_ci],
                    xerr=[[p["roc_auc"] - p["low"] for _, p in with_ci], [p["high"] - p["roc_auc"] for _, p in with_ci]],
                    fmt="o", color="black", capsize=4, label=f"AUC, {cl:.0%} bootstrap interval")
    if without:
        ax.plot([p["roc_auc"] for _, p in without], [y for y, _ in without], "o", mfc="none", color="black",
                label="AUC, no interval")
    if not points:
        ax.text(0.5, 0.5, "no model with a test AUC", ha="center", va="center", transform=ax.transAxes)
    ax.set_yticks(ys, [p["model"] for p in points])
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylim(-0.7, len(points) - 0.3)
    ax.set_xlabel("test ROC AUC")
    if points:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=11, frameon=False)
    experiment_label(ax, title)
    return style.save_figure(fig, path)
