"""Figures in the mplhep CMS style, written atomically as PNG and as vector PDF beside it.

Every figure function takes the output path last-but-options and returns it, so tasks can
collect their plots. Matplotlib runs headless (Agg). The numbers a figure shows come from
small pure functions (:func:`confusion_cells`, :func:`score_curves`, :func:`score_bins`,
:func:`history_panels`, :func:`map_limits`, :func:`resolution_summary`, ...), so tests check
those rather than pixels. Every name below is re-exported here (``plotting.roc_curve``).

- :mod:`.style`: the style, what the data are (:func:`data_label`, :func:`experiment_label`),
  the PNG resolution (:func:`figure_dpi`) and the one figure writer, :func:`save_figure`;
- :mod:`.classifier`: ROC, efficiency against rejection, reliability, score histograms,
  confusion matrix;
- :mod:`.histories`: training curves;
- :mod:`.regression`: prediction against truth, resolution;
- :mod:`.images`: grids of maps, embedding scatters, tables as images;
- :mod:`.uncertainty`: reliability before and after calibration, a deep ensemble's spread
  against its score and its AUC against its members'.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from . import classifier, histories, images, regression, style, uncertainty  # noqa: E402
from .classifier import (  # noqa: E402
    classifier_views,
    confusion_cells,
    confusion_matrix,
    efficiency_rejection,
    is_probability,
    reliability,
    roc_curve,
    roc_label,
    score_bins,
    score_curves,
    score_distributions,
    unit_area_histogram,
)
from .histories import grid_shape, history, history_panels  # noqa: E402
from .images import embedding_scatter, image_grid, map_limits, table_figure  # noqa: E402
from .regression import pred_bins, resolution, resolution_summary, true_vs_pred  # noqa: E402
from .style import (  # noqa: E402
    DATA_LABELS,
    DEFAULT_DPI,
    data_kind,
    data_label,
    distinct_colours,
    experiment_label,
    figure_dpi,
    figure_settings,
    figure_title,
    label_text,
    save_figure,
    use_style,
)
from .uncertainty import (  # noqa: E402
    ensemble_aucs,
    reliability_comparison,
    reliability_series,
    spread_profile,
    spread_vs_score,
)

__all__ = [
    "DATA_LABELS", "DEFAULT_DPI", "classifier", "classifier_views", "confusion_cells", "confusion_matrix",
    "data_kind", "data_label", "distinct_colours", "efficiency_rejection", "embedding_scatter", "ensemble_aucs",
    "experiment_label", "figure_dpi", "figure_settings", "figure_title", "grid_shape", "histories", "history",
    "history_panels", "image_grid", "images", "is_probability", "label_text", "map_limits", "plt", "pred_bins",
    "regression", "reliability", "reliability_comparison", "reliability_series", "resolution",
    "resolution_summary", "roc_curve", "roc_label", "save_figure",
    "score_bins", "score_curves", "score_distributions", "spread_profile", "spread_vs_score", "style",
    "table_figure", "true_vs_pred", "uncertainty", "unit_area_histogram", "use_style",
]
