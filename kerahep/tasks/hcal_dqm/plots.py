"""hcal_dqm figures: classification, occupancy and sample maps, attention rollout, expert
routing and load, and the monitoring view (per-lumisection scores, autoencoder residuals).

Each function draws one figure into the path (or plots folder) it is given, in the style
of :func:`kerahep.plotting.use_style`, written by :func:`kerahep.plotting.save_figure` (PNG and PDF).
Maps are drawn on CMS iEta and iPhi (:func:`ieta_of_rows` states how rows are read, and
every map figure says it in a footnote); maps compared with each other share one colour
scale.
"""

from __future__ import annotations

import numpy as np

#: colour-bar quantities of the maps
HITS_MEAN, HITS_ONE = "mean hits per lumisection", "hits in the lumisection"


def ieta_of_rows(n_rows: int):
    """CMS iEta of each row of an ``(iEta, iPhi)`` map, or None where no such reading fits.

    The files carry no coordinates, so the rows are read as ``n_rows / 2`` consecutive
    rings on each side of iEta 0, which CMS does not have (64 rows: -32..-1, 1..32; 82
    rows: -41..-1, 1..41). An odd count or more than 82 rows (beyond -41..41) gives None:
    such maps are drawn on array indices. Columns are iPhi 1..72 (column c is iPhi c + 1).

    Example:
        >>> rows = ieta_of_rows(64)
        >>> int(rows[0]), int(rows[31]), int(rows[32]), int(rows[-1]), 0 in rows
        (-32, -1, 1, 32, False)
    """
    n_rows = int(n_rows)
    if n_rows % 2 or not 0 < n_rows <= 82:
        return None
    half = n_rows // 2
    return np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)])


def cms_map(image) -> tuple:
    """``(image, extent)`` to draw a map on CMS iEta and iPhi (:func:`ieta_of_rows`): an empty
    (NaN) row inserted for iEta 0, cell centres on integer iEta and iPhi; on array indices
    where the rows cannot be read as iEta."""
    image = np.asarray(image, dtype=float)
    h, w = image.shape[-2:]
    if ieta_of_rows(h) is None:
        return image, (-0.5, w - 0.5, -0.5, h - 0.5)
    half = h // 2
    return np.insert(image, half, np.nan, axis=-2), (0.5, w + 0.5, -half - 0.5, half + 0.5)


def map_axes(shape) -> dict:
    """Axis labels and the footnote stating the mapping, for :func:`kerahep.plotting.image_grid`."""
    h, w = (int(v) for v in shape)
    if ieta_of_rows(h) is None:
        return {"xlabel": "iPhi index", "ylabel": "iEta index", "note": f"array indices ({h} rows cannot be read "
                                                                          "as CMS iEta -41..41)"}
    half = h // 2
    return {"xlabel": "iPhi", "ylabel": "iEta",
            "note": f"map rows read as iEta -{half}..-1, 1..{half} (row r: iEta r - {half} below row {half}, "
                    f"r - {half - 1} from it; the files carry no coordinates), columns as iPhi 1..{w}; iEta 0 empty"}


def cell_range(rows, cols, shape) -> str:
    """``"iEta a..b, iPhi c..d"`` of the array index ranges ``[first, last + 1)`` of a map of ``shape``."""
    ieta = ieta_of_rows(shape[0])
    (r0, r1), (c0, c1) = rows, cols
    span = lambda a, b: f"{a}" if a == b else f"{a}..{b}"  # noqa: E731
    eta = f"iEta {span(ieta[r0], ieta[r1 - 1])}" if ieta is not None else f"iEta index {span(r0, r1 - 1)}"
    return f"{eta}, iPhi {span(c0 + 1, c1)}"


def draw_maps(images, path, shape, **kw):
    """:func:`kerahep.plotting.image_grid` of maps of ``shape`` on CMS iEta and iPhi."""
    from ... import plotting

    drawn = [cms_map(im)[0] for im in images]
    return plotting.image_grid(drawn, path, extent=cms_map(np.zeros(shape))[1], **map_axes(shape), **kw)


def classification(labels, p, proba, class_names, baseline_score, model_name, confusion, plots_dir) -> None:
    """``roc.png`` (with the band-means baseline for two runs, one-vs-rest curves for more),
    ``scores.png`` (two runs: P(second run)) and ``confusion.png``."""
    from ... import plotting

    k = proba.shape[1]
    if k == 2:
        curves = {"logistic regression, band means": (labels, baseline_score)} if baseline_score is not None else None
        plotting.roc_curve(labels, p, plots_dir / "roc.png", label=model_name, curves=curves)
        plotting.score_distributions(labels, p, plots_dir / "scores.png", class_names=class_names)
    else:
        curves = {f"{class_names[c]} vs rest": ((labels == c).astype(int), proba[:, c]) for c in range(1, k)}
        plotting.roc_curve((labels == 0).astype(int), proba[:, 0], plots_dir / "roc.png",
                           label=f"{class_names[0]} vs rest", curves=curves)
    plotting.confusion_matrix(confusion, plots_dir / "confusion.png", class_names=class_names)


def sample_images(runs, run_idx, ls, per_run: int = 2) -> tuple[list, list]:
    """``(maps, titles)`` of ``per_run`` scored lumisections of each run, spread over its range."""
    images, titles = [], []
    for r in range(runs.n_classes):
        mine = ls[run_idx == r]
        if not len(mine):
            continue
        for j in np.unique(np.linspace(0, len(mine) - 1, per_run).round().astype(int)):
            images.append(np.asarray(runs.runs[r].array[int(mine[j])], dtype=np.float64))
            titles.append(f"{runs.names[r]} LS {int(mine[j])}")
    return images, titles


def occupancy_maps(means, names, samples, sample_titles, shape, plots_dir) -> tuple:
    """``occupancy_mean.png`` (each run), ``sample_maps.png`` (lumisections ``samples``), both on
    one log scale (returned), and for two runs or more ``occupancy_difference.png`` (each
    run minus the first)."""
    from ... import plotting

    limits = plotting.map_limits(list(means) + list(samples), log=True)
    draw_maps(means, plots_dir / "occupancy_mean.png", shape, titles=list(names),
              log=True, limits=limits, cbar_label=HITS_MEAN,
              suptitle="Mean DigiOccupancy per lumisection (log scale shared with sample_maps.png)")
    if samples:
        draw_maps(samples, plots_dir / "sample_maps.png", shape, titles=sample_titles, log=True, limits=limits,
                  cbar_label=HITS_ONE, suptitle="Sample lumisections (log scale shared with occupancy_mean.png)")
    if len(names) > 1:
        draw_maps([m - means[0] for m in means[1:]], plots_dir / "occupancy_difference.png", shape,
                  titles=[f"{n} - {names[0]}" for n in names[1:]], cmap="RdBu_r", symmetric=True, shared=True,
                  cbar_label=f"difference of {HITS_MEAN}", suptitle="Difference of mean occupancy between runs")
    return limits


def attention_rollout(images, titles, shape, plots_dir) -> None:
    """``attention_rollout.png``: the mean attention-rollout map of each run on one scale, and
    each run's minus the first's."""
    draw_maps(images, plots_dir / "attention_rollout.png", shape, titles=titles, cmap="magma", shared=True,
              difference=True, cbar_label="rollout relevance per cell (a map sums to 1)",
              diff_label="difference of rollout relevance",
              suptitle="Attention rollout per run (mean over test lumisections)")


def routing_maps(items, path, n_experts: int, shape):
    """The most frequent first-choice expert of each patch, one panel per (layer, run) in ``items``."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap

    from ...plotting import save_figure
    from ...plotting import figure_title, use_style

    use_style()
    n = len(items)
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 5 * rows), squeeze=False, layout="constrained")
    colours = ["#bbbbbb"] + [plt.get_cmap("tab10")(i % 10) for i in range(n_experts)]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-1.5, n_experts + 0.5), cmap.N)
    axes_kw = map_axes(shape)
    for ax, (title, img) in zip(axes.ravel(), items):
        drawn, extent = cms_map(img)
        art = ax.imshow(drawn, origin="lower", cmap=cmap, norm=norm, aspect="auto", extent=extent,
                        interpolation="nearest")
        ax.set_title(title, fontsize=12)
        ax.set_xlabel(axes_kw["xlabel"], fontsize=12)
        ax.set_ylabel(axes_kw["ylabel"], fontsize=12)
        cb = fig.colorbar(art, ax=ax, ticks=range(-1, n_experts))
        cb.ax.set_yticklabels(["dropped"] + [f"expert {i}" for i in range(n_experts)], fontsize=10)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    figure_title(fig, "Most frequent first-choice expert per patch", fontsize=14)
    fig.supxlabel(axes_kw["note"], fontsize=11)
    return save_figure(fig, path)


def expert_load(load_rows: dict, class_names, path):
    """Fraction of token assignments per expert, one bar per run, one panel per MoE layer."""
    import matplotlib.pyplot as plt

    from ...plotting import save_figure
    from ...plotting import figure_title, use_style

    use_style()
    n = len(load_rows)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 5), squeeze=False)
    for ax, (layer, rows) in zip(axes[0], load_rows.items()):
        rows = np.asarray(rows)
        e = rows.shape[1]
        width = 0.8 / max(len(rows), 1)
        for i, row in enumerate(rows):
            ax.bar(np.arange(e) + (i - (len(rows) - 1) / 2) * width, row, width=width, label=class_names[i])
        ax.axhline(1.0 / e, color="grey", ls="--", lw=1, label="balanced")
        ax.set_xticks(range(e), [f"expert {j}" for j in range(e)], fontsize=11)
        ax.set_ylabel("fraction of token assignments", fontsize=12)
        ax.set_title(layer, fontsize=13)
        ax.legend(fontsize=10)
    figure_title(fig, "Expert load per run", fontsize=14)
    return save_figure(fig, path)


def monitoring(run_idx, ls, names, confidence, wrong, score, threshold, truth, path):
    """Per run against the lumisection number: the confidence in the true run (misassigned ones
    marked) and, with the autoencoder, its anomaly score, the threshold and the flagged (and
    injected) lumisections."""
    import matplotlib.pyplot as plt

    from ...plotting import save_figure
    from ...plotting import figure_title, use_style

    use_style()
    present = [r for r in range(len(names)) if (run_idx == r).any()]
    n_rows = 2 if score is not None else 1
    fig, axes = plt.subplots(n_rows, len(present), figsize=(7 * len(present), 4.2 * n_rows), squeeze=False,
                             sharex="col")
    for j, r in enumerate(present):
        sel = run_idx == r
        x = ls[sel]
        _confidence_panel(axes[0, j], x, confidence[sel], wrong[sel], names[r])
        if score is not None:
            _score_panel(axes[1, j], x, score[sel], threshold, truth[sel] if truth is not None else None)
        axes[-1, j].set_xlabel("lumisection", fontsize=12)
    figure_title(fig, "Monitoring: per-lumisection scores", fontsize=14)
    return save_figure(fig, path)


def _confidence_panel(ax, x, c, bad, title) -> None:
    ax.scatter(x[~bad], c[~bad], s=6, color="tab:blue", label="lumisection")
    if bad.any():
        ax.scatter(x[bad], c[bad], s=18, color="red", marker="x", label=f"other run ({int(bad.sum())})")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("confidence in true run", fontsize=12)
    ax.set_title(title, fontsize=13)
    ax.legend(fontsize=9, loc="lower left")


def _score_panel(ax, x, s, threshold, t) -> None:
    flag = s > threshold
    ax.scatter(x[~flag], s[~flag], s=6, color="tab:blue", label="lumisection")
    ax.scatter(x[flag], s[flag], s=22, color="red", marker="x", label=f"flagged ({int(flag.sum())})")
    if t is not None:
        ax.scatter(x[t], s[t], s=60, facecolors="none", edgecolors="black", label=f"injected ({int(t.sum())})")
    ax.axhline(threshold, color="red", ls="--", lw=1, label="threshold")
    ax.set_yscale("log")
    ax.set_ylabel("anomaly score (AE)", fontsize=12)
    ax.legend(fontsize=9, loc="upper left")


def anomaly_residuals(residuals, order, run_idx, ls, names, anomalies, score, shape, path) -> None:
    """Autoencoder residual maps (observed - reconstructed, in log space) of the most anomalous
    maps, on one symmetric scale; the injected truth (twin) in CMS iEta and iPhi."""
    images, titles = [], []
    for i in order:
        if int(i) not in residuals:
            continue
        r, lumi = int(run_idx[i]), int(ls[i])
        images.append(residuals[int(i)])
        rec = (anomalies or {}).get(names[r], {}).get(lumi)
        tag = f"\ninjected {rec['kind']}: {cell_range(rec['ieta'], rec['iphi'], shape)}" if rec else "\n(nothing injected)"
        titles.append(f"{names[r]} LS {lumi}, score {score[i]:.3g}{tag}")
    if images:
        draw_maps(images, path, shape, titles=titles, cmap="RdBu_r", symmetric=True, shared=True,
                  cbar_label="residual: observed - reconstructed log(1 + hits)",
                  suptitle="Autoencoder residuals of the highest-scoring lumisections (per-cell standardised "
                           "with model.normalize)")
