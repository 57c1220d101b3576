"""jet_ssl figures: scores, confusion, true-against-predicted and resolution of mass and pT, the label-fraction panels,
each method's AUC with its interval, and t-SNE of the encoder's latents."""

from __future__ import annotations

import numpy as np

from .config import CLASS_NAMES, METHODS, tag


def model_plots(truth: dict, pred: dict, report: dict, plots_dir) -> None:
    """Scores (P(top)), confusion matrix, and mass and pT true-against-predicted (log colour
    scale, bins fit to the number of jets) and resolution (saying what lies outside its range)
    of the saved model."""
    from ... import plotting

    for key, name in (("m", "m"), ("pt", "pT")):
        plotting.true_vs_pred(truth[key], pred[key], plots_dir / f"{key}_true_vs_pred.png", name=name, unit="GeV",
                              entries="jets")
        plotting.resolution(truth[key], pred[key], plots_dir / f"{key}_resolution.png", name=name)
    plotting.score_distributions(truth["y"], pred["y"], plots_dir / "scores.png", class_names=CLASS_NAMES)
    plotting.confusion_matrix(report["confusion_matrix"], plots_dir / "confusion.png", class_names=CLASS_NAMES)


def fraction_plot(rows, path):
    """Three panels against the label fraction, one line per method: test ROC AUC, mass MSE
    and pT MSE (GeV^2)."""
    import matplotlib.pyplot as plt

    from ... import plotting
    from ...plotting import figure_title, use_style

    use_style()
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    for method in METHODS:
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["label_fraction"])
        if not rs:
            continue
        fr = [r["label_fraction"] for r in rs]
        axes[0].plot(fr, [r["roc_auc"] for r in rs], marker="o", label=method)
        axes[1].plot(fr, [r["m_mse"] for r in rs], marker="o", label=method)
        axes[2].plot(fr, [r["pt_mse"] for r in rs], marker="o", label=method)
    for ax, lab in zip(axes, ("test ROC AUC", "mass MSE [GeV$^2$]", "pT MSE [GeV$^2$]")):
        ax.set_xscale("log")
        ax.set_xlabel("fraction of labelled training jets")
        ax.set_ylabel(lab)
        ax.legend(fontsize=11)
    figure_title(fig, "Test metrics against the label fraction", fontsize=14)
    return plotting.save_figure(fig, path)


def auc_plot(auc_by_method: dict, config, path):
    """Each method's test ROC AUC with its 68% bootstrap interval at the largest label
    fraction (``auc_by_method``, :func:`kerahep.tasks.jet_ssl.report.auc_by_method`), the
    saved model named as such (:func:`kerahep.plotting.intervals.auc_intervals`)."""
    from ...plotting.intervals import auc_intervals

    rows = {(f"{m} (model.keras)" if m == config.model.export else m): r for m, r in auc_by_method.items()}
    return auc_intervals(rows, path, title=f"{tag(max(config.data.label_fractions))} of the labels")


def tsne_plots(z, truth: dict, n_points: int, seed: int, plots_dir) -> None:
    """t-SNE of the latents ``z`` of a seeded random subset of ``n_points`` test jets, coloured
    by class and by mass (none with fewer than five jets: t-SNE needs a few more than its
    perplexity)."""
    from ... import explain, plotting

    k = min(n_points, len(z))
    if k < 5:
        return
    # a seeded random subset: the first k jets of a file sorted by class or pT would be biased
    rows = explain.sample_rows(len(z), k, seed=seed)
    pts = explain.tsne(z[rows], seed=seed, max_points=k)
    title = "t-SNE of encoder latents (test jets)"
    plotting.embedding_scatter(pts, np.where(truth["y"][rows] > 0.5, "top", "QCD"), plots_dir / "tsne_class.png",
                               title=title, label="")
    plotting.embedding_scatter(pts, truth["m"][rows], plots_dir / "tsne_mass.png", title=title,
                               label="jet mass [GeV]", categorical=False)
