"""Training curves: one panel per metric (train and validation), the learning rate alone."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator, NullLocator

from . import style
from .style import use_style


def history_panels(hist: dict) -> list[tuple[str, dict]]:
    """The panels of :func:`history`: ``(metric, {series name: values})``, one per metric with
    its train and validation series, then the learning rate in a panel of its own."""
    panels = [(k, {"train": list(hist[k]), **({"validation": list(hist[f"val_{k}"])} if f"val_{k}" in hist else {})})
              for k in hist if not k.startswith("val_") and k != "learning_rate"]
    panels += [(k, {"validation": list(hist[k])}) for k in hist if k.startswith("val_") and k[4:] not in hist]
    if "learning_rate" in hist:
        panels.append(("learning_rate", {"learning rate": list(hist["learning_rate"])}))
    return panels


def grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    """``(rows, columns)`` of a grid of ``n`` panels, at most ``max_cols`` wide."""
    cols = max(1, min(int(n), int(max_cols)))
    return max(1, -(-int(n) // cols)), cols


def history(hist: dict, path, max_cols: int = 4, dpi: int | None = None):
    """Training curves in a grid (:func:`history_panels`): integer epochs, markers up to 30
    epochs (one epoch is a point, not an invisible line), major ticks only on the value axes
    except the learning rate's, on its own (log) axis. Written as every figure
    (:func:`~kerahep.plotting.style.save_figure`): PNG at ``dpi`` (None: the enclosing
    :func:`~kerahep.plotting.style.figure_settings`, the run's ``run.plot_dpi``) and PDF beside
    it unless ``run.plot_pdf=false``."""
    use_style()
    panels = history_panels(hist)
    rows, cols = grid_shape(len(panels), max_cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.5 * rows), squeeze=False, layout="constrained")
    for ax, (key, series) in zip(axes.ravel(), panels):
        n = max((len(v) for v in series.values()), default=1)
        for name, values in series.items():
            v = np.asarray(values, dtype=float)
            ax.plot(np.arange(1, len(v) + 1), v, marker="o" if n <= 30 else None, ms=5, label=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.xaxis.set_minor_locator(NullLocator())
        # no minor ticks on a curve's value axis: in a grid of a dozen panels they are most of
        # the drawing time (CMS style: minor ticks on all four sides) and read as clutter
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_xlim(0.5, n + 0.5)
        ax.set_xlabel("Epoch", fontsize=13)
        ax.set_ylabel("learning rate" if key == "learning_rate" else key, fontsize=13)
        if key == "learning_rate" and all(np.all(np.asarray(v, float) > 0) for v in series.values()):
            ax.set_yscale("log")
        ax.legend(fontsize=11)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    return style.save_figure(fig, path, dpi=dpi)
