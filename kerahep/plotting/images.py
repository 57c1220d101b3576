"""Maps and other pictures: grids of 2-D maps on shared colour scales, embedding scatters,
and small tables rendered as images."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from . import style
from .histories import grid_shape
from .style import figure_title, label_text, use_style


def map_limits(images, log: bool = False, symmetric: bool = False) -> tuple[float, float]:
    """One colour scale ``(vmin, vmax)`` over the finite values of ``images``: with ``log``
    from the smallest positive value to the largest, with ``symmetric`` +-the largest |value|."""
    vals = np.concatenate([np.asarray(im, dtype=float).ravel() for im in images]) if len(images) else np.zeros(0)
    vals = vals[np.isfinite(vals)]
    if log:
        pos = vals[vals > 0]
        lo, hi = (float(pos.min()), float(pos.max())) if pos.size else (1e-6, 1.0)
        return lo, hi if hi > lo else lo * 10
    if symmetric:
        v = float(np.abs(vals).max()) if vals.size else 0.0
        return -(v or 1.0), v or 1.0
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    return lo, hi if hi > lo else lo + 1.0


def image_grid(images, path, titles=None, xlabel="", ylabel="", cmap="viridis", log: bool = False,
               extent=None, suptitle: str | None = None, symmetric: bool = False, shared: bool = False,
               limits=None, cbar_label="", difference: bool = False, diff_label: str | None = None, note=None):
    """A grid of 2-D maps with colour bars (mean images, saliency, attention maps).

    Args:
        shared: one colour scale for every map (:func:`map_limits`), for maps compared with
            each other (classes, runs); ``limits`` gives it explicitly (shared across figures).
        cbar_label: the colour bars' quantity and unit (one for all, or one per map).
        difference: add a panel per map after the first: it minus the first, on one
            symmetric diverging scale (``diff_label`` on its colour bar).
        note: a footnote (the mapping of the axes, for example).
    """
    use_style()
    images = [np.asarray(im, dtype=float) for im in images]
    titles = [str(t) for t in titles] if titles else [""] * len(images)
    labels = list(cbar_label) if isinstance(cbar_label, (list, tuple)) else [cbar_label] * len(images)
    if limits is None and shared:
        limits = map_limits(images, log, symmetric)
    panels = [(im, log, cmap, limits or map_limits([im], log, symmetric), t, lab)
              for im, t, lab in zip(images, titles, labels)]
    if difference and len(images) > 1:
        diffs = [im - images[0] for im in images[1:]]
        dlim = map_limits(diffs, symmetric=True)
        panels += [(d, False, "RdBu_r", dlim, f"{t} - {titles[0]}", diff_label or f"difference of {labels[0]}")
                   for d, t in zip(diffs, titles[1:])]
    rows, cols = grid_shape(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.8 * rows), squeeze=False, layout="constrained")
    for ax, (im, is_log, cm, (lo, hi), title, lab) in zip(axes.ravel(), panels):
        scale = {"norm": LogNorm(vmin=lo, vmax=hi)} if is_log else {"vmin": lo, "vmax": hi}
        art = ax.imshow(im, origin="lower", cmap=cm, aspect="auto", extent=extent, interpolation="nearest",
                        **scale)
        fig.colorbar(art, ax=ax).set_label(lab, fontsize=12)
        ax.set_title(title, fontsize=13)
        ax.set_xlabel(xlabel, fontsize=13)
        ax.set_ylabel(ylabel, fontsize=13)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    figure_title(fig, suptitle)
    if note:  # a footnote below everything (the constrained layout makes room for it)
        fig.supxlabel(note, fontsize=11)
    return style.save_figure(fig, path)


def embedding_scatter(points, colour, path, title: str = "t-SNE", label: str = "class", categorical: bool = True):
    """2-D embedding (t-SNE) coloured by class or by a continuous value."""
    use_style()
    points = np.asarray(points)
    colour = np.asarray(colour).ravel()
    fig, ax = plt.subplots()
    if categorical:
        for c in np.unique(colour):
            m = colour == c
            ax.scatter(points[m, 0], points[m, 1], s=4, alpha=0.6, label=f"{label} {c}")
        ax.legend(markerscale=3, fontsize=11)
    else:
        sc = ax.scatter(points[:, 0], points[:, 1], c=colour, s=4, alpha=0.7, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=label)
    ax.set_title(f"{title}\n{label_text()}", fontsize=14)
    ax.set_xticks([])
    ax.set_yticks([])
    return style.save_figure(fig, path)


def table_figure(rows: list, columns: list, path, title: str = ""):
    """A small table rendered as an image (comparison tables for TensorBoard)."""
    fig, ax = plt.subplots(figsize=(1.8 * len(columns) + 1, 0.5 * len(rows) + 1.2))
    ax.axis("off")
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    ax.table(cellText=cells, colLabels=columns, loc="center")
    if title:
        ax.set_title(title)
    return style.save_figure(fig, path)
