"""Figures in the mplhep CMS style, written atomically as PNG and as vector PDF beside it.

Every figure function takes the output path last-but-options and returns it, so tasks can
collect their plots. Matplotlib runs headless (Agg). The numbers a figure shows come from
small pure functions (:func:`confusion_cells`, :func:`score_curves`, :func:`score_bins`,
:func:`history_panels`, :func:`map_limits`, :func:`resolution_summary`, ...), so tests check
those rather than pixels.

Every figure says "kerahep", never "CMS", followed by what the data are
(:data:`DATA_LABELS`): inside ``with data_label(kind):``, where the tasks' reports set the
kind from the run's recorded source (:func:`data_kind`). Outside such a block a figure
claims nothing about its data. Every figure is written by :func:`save_figure`: the PNG at
the resolution of the enclosing :func:`figure_dpi` block (``run.plot_dpi``), and a PDF.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullLocator  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from .artifacts import atomic_path  # noqa: E402
from .errors import KerahepError  # noqa: E402

_STYLE_SET = False

#: what follows "kerahep" in the experiment label, by kind of data (:func:`data_kind`): the
#: task's synthetic twin is kerahep's own generator, not a detector simulation, and says so
DATA_LABELS = {"synthetic": "Simulation (synthetic twin)", "simulation": "Simulation", "collision": "Collision data"}
_DATA_KIND: contextvars.ContextVar = contextvars.ContextVar("kerahep_data_kind", default=None)
_AUC_IN_LABEL = re.compile(r"\s*\(AUC [^)]*\)")
#: resolution of the PNG figures outside a :func:`figure_dpi` block (``run.plot_dpi``'s default)
DEFAULT_DPI = 110
_DPI: contextvars.ContextVar = contextvars.ContextVar("kerahep_plot_dpi", default=DEFAULT_DPI)


def use_style():
    """Switch matplotlib to the mplhep CMS style (once); call before drawing a kerahep figure."""
    global _STYLE_SET
    if not _STYLE_SET:
        plt.style.use(hep.style.CMS)
        plt.rcParams.update({"figure.figsize": (8, 7), "font.size": 16})
        _STYLE_SET = True


# ------------------------------------------------------------ writing
@contextlib.contextmanager
def figure_dpi(dpi: int | None):
    """Within the block, PNG figures are written at ``dpi`` dots per inch (None: unchanged)."""
    token = _DPI.set(_DPI.get() if dpi is None else int(dpi))
    try:
        yield
    finally:
        _DPI.reset(token)


def figure_settings(config):
    """The figure settings of a run's configuration (``run.plot_dpi``) for the block; the
    reports of the tasks draw inside it (None: the defaults)."""
    return figure_dpi(getattr(getattr(config, "run", None), "plot_dpi", None))


def save_figure(fig, path, dpi: int | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically and close it: the one figure writer of kerahep.

    A ``.png`` is written at ``dpi`` (default: the enclosing :func:`figure_dpi`, else
    :data:`DEFAULT_DPI`), with the same figure as a vector ``.pdf`` beside it (for papers);
    any other suffix is written alone in its format. If either file fails, neither is left.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    pdf = path.with_suffix(".pdf") if fmt == "png" else None
    try:
        if pdf is not None:
            with atomic_path(pdf) as tmp:
                fig.savefig(tmp, bbox_inches="tight", format="pdf")
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=int(dpi or _DPI.get()), bbox_inches="tight", format=fmt)
        except BaseException:
            if pdf is not None:
                pdf.unlink(missing_ok=True)
            raise
    finally:
        plt.close(fig)
    return path


# ------------------------------------------------------------ what the data are
def data_kind(source: str, files_are: str, paths=()) -> str:
    """The kind of data a run's figures show (a key of :data:`DATA_LABELS`).

    ``"synthetic"`` when the run read its task's synthetic twin: its source
    (``TaskData.source``, recorded as ``metrics.json["data"]["source"]``) is
    ``"synthetic"``, or every input file lies beside the ``twin.json`` a twin generator
    writes (a twin given as files). Otherwise ``files_are``: what the task's own files are,
    ``"simulation"`` (simulated samples) or ``"collision"`` (recorded collision data).

    Example:
        >>> data_kind("synthetic", "collision"), data_kind("files", "collision")
        ('synthetic', 'collision')
    """
    if files_are not in DATA_LABELS or files_are == "synthetic":
        raise KerahepError(f"files_are: expected 'simulation' or 'collision', found {files_are!r}")
    paths = [Path(p) for p in paths or ()]
    if source == "synthetic" or (paths and all((p.parent / "twin.json").is_file() for p in paths)):
        return "synthetic"
    return files_are


@contextlib.contextmanager
def data_label(kind: str | None):
    """Within the block, figures label their data as ``DATA_LABELS[kind]`` (None: nothing claimed)."""
    token = _DATA_KIND.set(kind)
    try:
        yield
    finally:
        _DATA_KIND.reset(token)


def label_text(kind: str | None = None) -> str:
    """``"kerahep"`` and what the data are (of ``kind``, else of the enclosing :func:`data_label`)."""
    what = DATA_LABELS.get(_DATA_KIND.get() if kind is None else kind, "")
    return f"kerahep {what}".strip()


def experiment_label(ax, text: str = "", kind: str | None = None):
    """Experiment-style label: "kerahep" (never "CMS") and what the data are (:func:`label_text`)."""
    what = DATA_LABELS.get(_DATA_KIND.get() if kind is None else kind, "")
    try:
        hep.label.exp_label(exp="kerahep", text=" ".join(t for t in (what, text) if t), data=True, ax=ax, loc=0,
                            fontsize=14, rlabel="")
    except Exception:  # noqa: BLE001 - the label is decoration; never fail a plot for it
        pass


def figure_title(fig, title: str | None = None, fontsize: int = 15):
    """The suptitle of a multi-panel figure: ``title`` over the experiment label line."""
    return fig.suptitle("\n".join(t for t in (title, label_text()) if t), fontsize=fontsize)


# ------------------------------------------------------------ ROC and scores
def roc_label(name, auc: float) -> str:
    """Legend entry of a ROC curve: its name (an AUC it already carries dropped) and its AUC, once."""
    return f"{_AUC_IN_LABEL.sub('', str(name)).strip()} (AUC {auc:.4f})"


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
    return save_figure(fig, path)


def efficiency_rejection(y_true, score, path, weights=None, label: str = "model", n_boot: int = 100,
                         seed: int = 0, class_names=("background", "signal")):
    """Background rejection (1 / background efficiency, log scale) against signal efficiency
    (class 1 is the signal), with the bootstrap band (68%,
    :func:`kerahep.evaluation.rejection_band`, weighted with ``weights``) and the working
    points at signal efficiencies 0.5, 0.7, 0.9 marked."""
    from . import evaluation as ev

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
    return save_figure(fig, path)


def reliability(y_true, score, path, weights=None, bins: int = 10, label: str = "model"):
    """Reliability diagram: the (weighted) fraction of class 1 per score bin against the bin's
    mean score, with binomial error bars and the diagonal; ECE and Brier score in the legend
    (:func:`kerahep.evaluation.calibration`)."""
    from .evaluation import calibration

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
    weighted = " (weighted)" if weights is not None else ""
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("Mean predicted probability in the bin")
    ax.set_ylabel("Fraction of positives" + weighted)
    ax.legend(loc="best", fontsize=12)
    experiment_label(ax)
    return save_figure(fig, path)


def classifier_views(y_true, score, plots_dir, weights=None, label: str = "model", seed: int = 0,
                     class_names=("background", "signal")) -> list:
    """The views every binary classifier report draws beside its ROC: ``eff_rejection.png``
    (:func:`efficiency_rejection`) and ``reliability.png`` (:func:`reliability`)."""
    plots_dir = Path(plots_dir)
    return [efficiency_rejection(y_true, score, plots_dir / "eff_rejection.png", weights=weights, label=label,
                                 seed=seed, class_names=class_names),
            reliability(y_true, score, plots_dir / "reliability.png", weights=weights, label=label)]


def distinct_colours(n: int) -> list:
    """``n`` colours, no two alike: tab10 up to 10, tab20 up to 20, else evenly along turbo."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("turbo")(x) for x in np.linspace(0.05, 0.95, n)]


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
    ax.set_title("\n".join(t for t in (label_text(), title) if t), fontsize=14)
    fig.colorbar(im, ax=ax, label="fraction of the true class" + (" (weighted)" if weighted else ""))
    return save_figure(fig, path)


# ------------------------------------------------------------ training curves
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


def history(hist: dict, path, max_cols: int = 4):
    """Training curves in a grid (:func:`history_panels`): integer epochs, markers up to 30
    epochs (one epoch is a point, not an invisible line), the learning rate on its own
    (log) axis."""
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
        ax.set_xlim(0.5, n + 0.5)
        ax.set_xlabel("Epoch", fontsize=13)
        ax.set_ylabel("learning rate" if key == "learning_rate" else key, fontsize=13)
        if key == "learning_rate" and all(np.all(np.asarray(v, float) > 0) for v in series.values()):
            ax.set_yscale("log")
        ax.legend(fontsize=11)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    return save_figure(fig, path)


# ------------------------------------------------------------ regression
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
    return save_figure(fig, path)


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
    return save_figure(fig, path)


# ------------------------------------------------------------ maps
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
    ax.set_title(f"{title}\n{label_text()}", fontsize=14)
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
