"""Figures in the mplhep CMS style, written atomically as PNG.

Every function takes the output path last-but-options and returns it, so tasks can
collect their plots. Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from .artifacts import save_figure  # noqa: E402

_STYLE_SET = False


def use_style():
    """Switch matplotlib to the mplhep CMS style (once); call before drawing a kerahep figure."""
    global _STYLE_SET
    if not _STYLE_SET:
        plt.style.use(hep.style.CMS)
        plt.rcParams.update({"figure.figsize": (8, 7), "font.size": 16})
        _STYLE_SET = True


def experiment_label(ax, text="", data=False):
    """Experiment-style label; says "kerahep" rather than claiming a CMS result."""
    try:
        hep.label.exp_label(exp="kerahep", text=text, data=data, ax=ax, loc=0, fontsize=14, rlabel="")
    except Exception:  # noqa: BLE001 - the label is decoration; never fail a plot for it
        pass


def roc_curve(y_true, score, path, label: str = "model", curves: dict | None = None, weights=None):
    """ROC curve(s) with AUC in the legend; ``curves`` adds {name: (y, score)} pairs.

    With ``weights`` (per event of ``y_true``, negative ones allowed) the main curve is the
    weighted ROC curve and its AUC :func:`kerahep.evaluation.weighted_roc_auc`; the axes say so.
    """
    from .evaluation import weighted_roc_auc

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
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.4f})")
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
    return save_figure(fig, path)


def score_distributions(y_true, score, path, groups=None, class_names=("background", "signal"), bins=40,
                        weights=None):
    """Score histograms per class, or per group (for example the process) when ``groups`` is given.

    With ``weights`` (one per event, negative ones allowed) the histograms are weighted, each
    normalised to unit area by its sum of weights (of their absolute values where that sum is
    not positive), with sum-of-w^2 error bars; the legend gives entries and sum of weights.
    """
    use_style()
    fig, ax = plt.subplots()
    score = np.asarray(score).ravel()
    edges = np.linspace(0, 1, bins + 1) if score.size and score.min() >= 0 and score.max() <= 1 else bins
    if groups is None:
        y_true = np.asarray(y_true).astype(int).ravel()
        masks = [(class_names[c], y_true == c) for c in (0, 1)]
    else:
        groups = np.asarray(groups).ravel()
        masks = [(str(g), groups == g) for g in np.unique(groups)]
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    for name, m in masks:
        s = score[m]
        if not len(s):
            continue
        if w is None:
            h, e = np.histogram(s, bins=edges, density=True)
            hep.histplot(h, e, ax=ax, label=f"{name} ({len(s)})")
            continue
        ws = w[m]
        h, e = np.histogram(s, bins=edges, weights=ws)
        h2, _ = np.histogram(s, bins=e, weights=ws ** 2)
        total = ws.sum() if ws.sum() > 0 else np.abs(ws).sum()
        norm = (total if total > 0 else 1.0) * np.diff(e)
        hep.histplot(h / norm, e, yerr=np.sqrt(h2) / norm, ax=ax, label=f"{name} ({len(s)}, sum w {ws.sum():.3g})")
    ax.set_xlabel("Classifier score")
    ax.set_ylabel("Normalised entries" if w is None else "Normalised weighted entries")
    ax.set_yscale("log")
    ax.legend(fontsize=11)
    experiment_label(ax)
    return save_figure(fig, path)


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
    if title:
        ax.set_title(title, fontsize=14)
    fig.colorbar(im, ax=ax, label="fraction of the true class" + (" (weighted)" if weighted else ""))
    return save_figure(fig, path)


def history(hist: dict, path):
    """Training curves: every metric with its validation twin, one panel each."""
    use_style()
    keys = [k for k in hist if not k.startswith("val_") and k != "learning_rate"]
    n = max(len(keys), 1)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 5), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ax.plot(np.arange(1, len(hist[k]) + 1), hist[k], label="train")
        if f"val_{k}" in hist:
            ax.plot(np.arange(1, len(hist[f"val_{k}"]) + 1), hist[f"val_{k}"], label="validation")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(k)
        ax.legend(fontsize=11)
    return save_figure(fig, path)


def true_vs_pred(y_true, y_pred, path, name: str = "value", unit: str = "GeV", bins: int = 50):
    """2-D histogram of prediction against truth with the diagonal."""
    use_style()
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    lo = float(min(y_true.min(), y_pred.min()))
    hi = float(max(y_true.max(), y_pred.max()))
    fig, ax = plt.subplots()
    h = ax.hist2d(y_true, y_pred, bins=bins, range=[[lo, hi], [lo, hi]], cmap="viridis", cmin=1)
    fig.colorbar(h[3], ax=ax, label="entries")
    ax.plot([lo, hi], [lo, hi], color="red", lw=1)
    ax.set_xlabel(f"true {name} [{unit}]")
    ax.set_ylabel(f"predicted {name} [{unit}]")
    return save_figure(fig, path)


def resolution(y_true, y_pred, path, name: str = "value", unit: str = "GeV", bins: int = 60):
    """Histogram of the relative residual (pred - true) / true with its mean and spread."""
    use_style()
    y_true = np.asarray(y_true, dtype=float).ravel()
    rel = (np.asarray(y_pred, dtype=float).ravel() - y_true) / np.where(y_true == 0, 1, y_true)
    fig, ax = plt.subplots()
    h, e = np.histogram(np.clip(rel, -1, 1), bins=bins, range=(-1, 1))
    hep.histplot(h, e, ax=ax, label=f"mean {rel.mean():+.3f}, std {rel.std():.3f}")
    ax.set_xlabel(f"({name}_pred - {name}_true) / {name}_true")
    ax.set_ylabel("entries")
    ax.legend(fontsize=12)
    return save_figure(fig, path)


def image_grid(images, path, titles=None, xlabel="", ylabel="", cmap="viridis", log: bool = False,
               extent=None, suptitle: str | None = None, symmetric: bool = False):
    """A row (or grid) of 2-D maps with colour bars (mean images, saliency, attention maps)."""
    use_style()
    images = [np.asarray(im) for im in images]
    n = len(images)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.8 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        im = images[i]
        kw = {}
        if log:
            from matplotlib.colors import LogNorm

            pos = im[im > 0]
            kw["norm"] = LogNorm(vmin=pos.min() if pos.size else 1e-6, vmax=max(im.max(), 1e-6))
        elif symmetric:
            v = float(np.abs(im).max()) or 1.0
            kw.update(vmin=-v, vmax=v)
        art = ax.imshow(im, origin="lower", cmap=cmap, aspect="auto", extent=extent, **kw)
        fig.colorbar(art, ax=ax)
        if titles:
            ax.set_title(str(titles[i]), fontsize=13)
        ax.set_xlabel(xlabel, fontsize=13)
        ax.set_ylabel(ylabel, fontsize=13)
    if suptitle:
        fig.suptitle(suptitle, fontsize=15)
    return save_figure(fig, path)


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
    ax.set_title(title, fontsize=14)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)


def table_figure(rows: list, columns: list, path, title: str = ""):
    """A small table rendered as an image (comparison tables for TensorBoard)."""
    fig, ax = plt.subplots(figsize=(1.8 * len(columns) + 1, 0.5 * len(rows) + 1.2))
    ax.axis("off")
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    ax.table(cellText=cells, colLabels=columns, loc="center")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
