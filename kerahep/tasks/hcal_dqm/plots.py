"""hcal_dqm figures: classification, occupancy and sample maps, attention rollout, expert
routing and load, and the monitoring view (per-lumisection scores, autoencoder residuals).

Each function draws one figure into the path (or plots folder) it is given, in the style
of :func:`kerahep.plotting.use_style`, written by :func:`kerahep.artifacts.save_figure`.
"""

from __future__ import annotations

import numpy as np

AXES = {"xlabel": "iPhi index", "ylabel": "iEta index"}


def _extent(shape) -> tuple:
    h, w = shape
    return (0, w, 0, h)


def classification(labels, p, proba, class_names, baseline_score, model_name, confusion, plots_dir) -> None:
    """``roc.png`` (with the band-means baseline for two runs, one-vs-rest curves for more),
    ``scores.png`` (two runs) and ``confusion.png``."""
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


def occupancy_maps(means, names, shape, plots_dir) -> None:
    """``occupancy_mean.png`` (each run) and, for two runs or more, ``occupancy_difference.png``
    (each run minus the first)."""
    from ... import plotting

    extent = _extent(shape)
    plotting.image_grid(means, plots_dir / "occupancy_mean.png", titles=[f"{n}: mean occupancy" for n in names],
                        extent=extent, suptitle="Mean DigiOccupancy per lumisection", **AXES)
    if len(names) > 1:
        plotting.image_grid([m - means[0] for m in means[1:]], plots_dir / "occupancy_difference.png",
                            titles=[f"{n} - {names[0]}" for n in names[1:]], extent=extent, cmap="RdBu_r",
                            symmetric=True, suptitle="Difference of mean occupancy between runs", **AXES)


def sample_maps(runs, run_idx, ls, plots_dir, per_run: int = 2) -> None:
    """``sample_maps.png``: ``per_run`` scored lumisections of each run, spread over its range."""
    from ... import plotting

    images, titles = [], []
    for r in range(runs.n_classes):
        mine = ls[run_idx == r]
        if not len(mine):
            continue
        for j in np.unique(np.linspace(0, len(mine) - 1, per_run).round().astype(int)):
            images.append(np.asarray(runs.runs[r].array[int(mine[j])], dtype=np.float64))
            titles.append(f"{runs.names[r]} LS {int(mine[j])}")
    if images:
        plotting.image_grid(images, plots_dir / "sample_maps.png", titles=titles, log=True, extent=_extent(runs.shape),
                            suptitle="Sample lumisections", **AXES)


def attention_rollout(images, titles, shape, plots_dir) -> None:
    """``attention_rollout.png``: the mean attention-rollout map of each run."""
    from ... import plotting

    plotting.image_grid(images, plots_dir / "attention_rollout.png", titles=titles, extent=_extent(shape),
                        cmap="magma", suptitle="Attention rollout per run (mean over test lumisections)", **AXES)


def routing_maps(items, path, n_experts: int, shape):
    """The most frequent first-choice expert of each patch, one panel per (layer, run) in ``items``."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap

    from ...artifacts import save_figure
    from ...plotting import use_style

    use_style()
    n = len(items)
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 5 * rows), squeeze=False)
    colours = ["#bbbbbb"] + [plt.get_cmap("tab10")(i % 10) for i in range(n_experts)]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-1.5, n_experts + 0.5), cmap.N)
    for ax, (title, img) in zip(axes.ravel(), items):
        art = ax.imshow(img, origin="lower", cmap=cmap, norm=norm, aspect="auto", extent=_extent(shape),
                        interpolation="nearest")
        ax.set_title(title, fontsize=12)
        ax.set_xlabel(AXES["xlabel"], fontsize=12)
        ax.set_ylabel(AXES["ylabel"], fontsize=12)
        cb = fig.colorbar(art, ax=ax, ticks=range(-1, n_experts))
        cb.ax.set_yticklabels(["dropped"] + [f"expert {i}" for i in range(n_experts)], fontsize=10)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle("Most frequent first-choice expert per patch", fontsize=14)
    return save_figure(fig, path)


def expert_load(load_rows: dict, class_names, path):
    """Fraction of token assignments per expert, one bar per run, one panel per MoE layer."""
    import matplotlib.pyplot as plt

    from ...artifacts import save_figure
    from ...plotting import use_style

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
    return save_figure(fig, path)


def monitoring(run_idx, ls, names, confidence, wrong, score, threshold, truth, path):
    """Per run against the lumisection number: the confidence in the true run (misassigned ones
    marked) and, with the autoencoder, its anomaly score, the threshold and the flagged (and
    injected) lumisections."""
    import matplotlib.pyplot as plt

    from ...artifacts import save_figure
    from ...plotting import use_style

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
    fig.suptitle("Monitoring: per-lumisection scores", fontsize=14)
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
    """Autoencoder residual maps (observed - expected, per-cell standardised) of the most anomalous maps."""
    from ... import plotting

    images, titles = [], []
    for i in order:
        if int(i) not in residuals:
            continue
        r, lumi = int(run_idx[i]), int(ls[i])
        images.append(residuals[int(i)])
        rec = (anomalies or {}).get(names[r], {}).get(lumi)
        tag = f"\ninjected {rec['kind']}: iEta {rec['ieta']}, iPhi {rec['iphi']}" if rec else "\n(nothing injected)"
        titles.append(f"{names[r]} LS {lumi}, score {score[i]:.3g}{tag}")
    if images:
        # titles take two lines (run, lumisection, score; the injected truth): no suptitle over them
        plotting.image_grid(images, path, titles=titles, cmap="RdBu_r", symmetric=True, extent=_extent(shape),
                            **AXES)
