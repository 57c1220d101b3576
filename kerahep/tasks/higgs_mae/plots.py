"""higgs_mae figures: the ROC curves of the comparison, its table and its AUCs with their
intervals, and reconstructed against true values of the masked features."""

from __future__ import annotations

import numpy as np

#: the legend label of the final classifier, by its comparison row
FINAL_LABELS = {"pretrained_finetuned": "final model: fine-tuned", "pretrained_frozen": "final model: frozen encoder"}


def roc(y, score, path, final: str, curves: dict):
    """ROC of the final classifier (row ``final``) with the other rows' ``{name: (y, score)}``."""
    from ... import plotting

    return plotting.roc_curve(y, score, path, label=FINAL_LABELS.get(final, "model"),
                              curves={k: v for k, v in curves.items() if k != final})


def comparison_table(rows: dict, path):
    """The comparison rows (AUC, interval, accuracy) as a figure."""
    from ... import plotting

    table = []
    for name, r in rows.items():
        lo, hi = r.get("roc_auc_ci") or [None, None]
        table.append([name, r.get("roc_auc"), f"[{lo:.4f}, {hi:.4f}]" if lo is not None else "",
                      r.get("accuracy") if r.get("accuracy") is not None else ""])
    return plotting.table_figure(table, ["model", "ROC AUC", "68% interval", "accuracy"], path,
                                 title="Same test events")


def auc_plot(rows: dict, path):
    """The comparison rows' test ROC AUC with their 68% bootstrap interval, one row per model
    (:func:`kerahep.plotting.intervals.auc_intervals`; the twin's oracle without one)."""
    from ...plotting.intervals import auc_intervals

    return auc_intervals(rows, path, title="Same test events")


def reconstruction_grid(true, rec, mask, names, path, bins=40):
    """One panel per feature: reconstructed against true value of masked entries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...plotting import DEFAULT_DPI, figure_title, save_figure
    from ...plotting.style import current_dpi

    n = len(names)
    cols = 6
    rows = int(np.ceil(n / cols))
    with plt.style.context("default"):  # a plain style: 30 panels with CMS minor ticks take seconds each
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows), squeeze=False)
        for j, ax in enumerate(axes.ravel()):
            if j >= n:
                ax.axis("off")
                continue
            _panel(ax, true[mask[:, j], j], rec[mask[:, j], j], bins)
            ax.set_title(names[j], fontsize=8)
            ax.tick_params(labelsize=6)
            ax.locator_params(nbins=3)
        fig.supxlabel("true value of the masked feature")
        fig.supylabel("reconstructed")
        figure_title(fig, "Masked features: reconstructed against true (test events)", fontsize=11)
        fig.tight_layout()
        # a 16 x 12 inch grid: run.plot_dpi scaled by 80/110, 80 dpi at the default setting
        return save_figure(fig, path, dpi=max(1, round(current_dpi() * 80 / DEFAULT_DPI)))


def _panel(ax, t, r, bins):
    """A 2-D histogram of reconstructed against true values with the diagonal (nothing below two entries)."""
    if len(t) <= 1:
        return
    lo, hi = np.quantile(np.concatenate([t, r]), [0.005, 0.995])
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    h, _, _ = np.histogram2d(np.clip(t, lo, hi), np.clip(r, lo, hi), bins=bins, range=[[lo, hi], [lo, hi]])
    ax.imshow(np.ma.masked_equal(h.T, 0), origin="lower", extent=(lo, hi, lo, hi), aspect="auto",
              cmap="viridis", interpolation="nearest")
    ax.plot([lo, hi], [lo, hi], color="red", lw=0.8)
