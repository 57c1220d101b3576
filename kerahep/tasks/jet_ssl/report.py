"""jet_ssl report: test metrics of ``model.keras`` (class, mass, pT), the table of every
method and label fraction, the comparison with the from-scratch baseline, each method's AUC
with its interval at the largest label fraction (``auc_by_method``, ``plots/auc_intervals.png``),
and the plots.

The table's rows of models that are not saved come from training
(:class:`JetSSLResult`, stored in the run directory); the exported model's row is scored
again here from ``model.keras``, so training and ``scripts.evaluate --run`` write the
same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..base import FitResult, stored
from .config import CLASS_NAMES, METHODS, tag
from .data import JetSSLInputs

#: what the task's own files are (the experiment label of its figures; its twin says "synthetic twin"):
#: the jet images are simulated
FILES_ARE = "simulation"


@dataclass
class JetSSLResult(FitResult):
    """What a jet_ssl run trained.

    Attributes:
        models: ``model`` (raw jet -> ``y``, ``m``, ``pt``: the ``model.export`` method at
            the largest label fraction) and ``encoder`` (the pre-trained encoder).
        rows: test rows (:func:`table_row`) of every method and label fraction but the
            exported model's (stored: only training has those models).
        roc_scores: ``{method: test class scores}`` at the largest label fraction of the
            methods in ``rows`` (stored), for the ROC plot.
    """

    models: dict = field(default_factory=dict)
    rows: list = stored(default_factory=list)
    roc_scores: dict = stored(default_factory=dict)


def table_row(method: str, f: float, labels: int, truth: dict, pred: dict) -> dict:
    """One row of the table: test ROC AUC, accuracy, and MSE, MAE and R^2 of ``m`` and ``pt``.

    Args:
        method, f, labels: the method, the label fraction and its number of labelled jets.
        truth, pred: ``{"y", "m", "pt"}`` arrays of the test jets.
    """
    from ... import evaluation

    row = {"label_fraction": f, "labels": int(labels), "method": method}
    row["roc_auc"] = evaluation.roc_auc_with_ci(truth["y"], pred["y"], n_boot=0)[0]
    row["accuracy"] = float(np.mean((np.asarray(pred["y"]) >= 0.5) == (np.asarray(truth["y"]) > 0.5)))
    for key in ("m", "pt"):
        reg = evaluation.regression_report(truth[key], pred[key])
        row.update({f"{key}_mse": reg["mse"], f"{key}_mae": reg["mae"], f"{key}_r2": reg["r2"]})
    return row


def comparison(rows) -> dict:
    """Per label fraction: test ROC AUC of each pre-trained method (frozen, fine-tuned, linear
    probe) minus that of the from-scratch baseline, and whether it beats it (AUC only; the
    regression metrics are in the table)."""
    by = {}
    for r in rows:
        by.setdefault(r["label_fraction"], {})[r["method"]] = r
    out = {}
    for f, d in by.items():
        if "scratch" not in d:
            continue
        entry = {}
        for method in ("frozen", "finetune", "linear"):
            if method in d:
                entry[f"{method}_minus_scratch_auc"] = d[method]["roc_auc"] - d["scratch"]["roc_auc"]
                entry[f"{method}_beats_scratch_auc"] = bool(d[method]["roc_auc"] > d["scratch"]["roc_auc"])
        out[tag(f)] = entry
    return out


def export_variant(config) -> str:
    """What ``model.keras`` is: ``"finetune at 100pct of the labels"``."""
    return f"{config.model.export} at {tag(max(config.data.label_fractions))} of the labels"


def model_report(truth: dict, pred: dict, seed: int) -> tuple:
    """``(metrics, binary_report)`` of the saved model on the test jets."""
    from ... import evaluation

    report = evaluation.binary_report(truth["y"], pred["y"], seed=seed, class_names=CLASS_NAMES)
    keys = ("roc_auc", "roc_auc_ci", "accuracy", "n", "confusion_matrix", "working_points", "ece", "brier",
            "calibration_note")
    out = {k: report[k] for k in keys if k in report}
    for key in ("m", "pt"):
        reg = evaluation.regression_report(truth[key], pred[key])
        out.update({f"{key}_mse": reg["mse"], f"{key}_mae": reg["mae"], f"{key}_r2": reg["r2"],
                    f"{key}_resolution_rel": reg["resolution_rel"]})
    return out, report


def evaluate(ctx, result: JetSSLResult, data: JetSSLInputs) -> dict:
    """Test metrics, table and plots (see :meth:`kerahep.tasks.base.Task.evaluate`).

    On an independent sample (``evaluate --data``) there is no table: its rows are of the
    run's own test split. The figures say what the data are (:func:`kerahep.plotting.data_kind`).
    """
    from ... import plotting

    with plotting.data_label(plotting.data_kind(data.source, FILES_ARE, data.paths)), \
            plotting.figure_settings(getattr(ctx, "config", None)):
        return evaluate_labelled(ctx, result, data)


def evaluate_labelled(ctx, result: JetSSLResult, data: JetSSLInputs) -> dict:
    """The body of :func:`evaluate`, inside its data label."""
    from ... import evaluation, plotting
    from ...data.jets import surface_errors
    from . import plots

    cfg = ctx.config
    with surface_errors(*data.streams):
        truth, pred = evaluation.predict_dataset(result.models["model"], data.test, output="all")
    out, report = model_report(truth, pred, cfg.run.seed)
    out["model_variant"] = export_variant(cfg)
    if data.info.get("oracle_auc") is not None:
        out["oracle_auc"] = data.info["oracle_auc"]
    plots.model_plots(truth, pred, report, ctx.plots_dir)
    curves = {}
    scores = {cfg.model.export: pred["y"]}
    if not data.independent:
        rows = table(result, data, cfg, truth, pred)
        curves = roc_curves(result.roc_scores, cfg, truth["y"])
        write_table(rows, ctx)
        out["table"] = rows
        out["comparison"] = comparison(rows)
        scores = {**result.roc_scores, **scores}
    out["auc_by_method"] = auc_by_method(scores, truth["y"], cfg.run.seed)
    plots.auc_plot(out["auc_by_method"], cfg, ctx.plots_dir / "auc_intervals.png")
    # the saved model once, the others beside it (the exported method is not among the stored scores)
    plotting.roc_curve(truth["y"], pred["y"], ctx.plots_dir / "roc.png", label=f"model.keras: {out['model_variant']}",
                       curves=curves)
    plotting.classifier_views(truth["y"], pred["y"], ctx.plots_dir, label="model.keras", seed=cfg.run.seed,
                              class_names=CLASS_NAMES)
    if cfg.data.tsne_points and "encoder" in result.models:
        with surface_errors(*data.streams):
            truth_z, z = evaluation.predict_dataset(result.models["encoder"], data.test)
        plots.tsne_plots(z, truth_z, cfg.data.tsne_points, cfg.run.seed, ctx.plots_dir)
    return out


def auc_by_method(scores: dict, labels, seed: int) -> dict:
    """``{method: {"roc_auc", "roc_auc_ci"}}`` at the largest label fraction, in table order:
    the test ROC AUC of each method's class scores (``scores``: the stored ones and the saved
    model's) with its 68% bootstrap interval (:func:`kerahep.evaluation.roc_auc_with_ci`,
    seeded by ``run.seed``: training and re-evaluation draw the same resamples). The table
    holds the AUCs alone; this is where their intervals are."""
    from ... import evaluation

    out = {}
    for method in sorted(scores, key=lambda m: METHODS.index(m) if m in METHODS else len(METHODS)):
        auc, lo, hi = evaluation.roc_auc_with_ci(labels, np.asarray(scores[method]), seed=seed)
        out[method] = {"roc_auc": auc, "roc_auc_ci": [lo, hi]}
    return out


def roc_curves(roc_scores: dict, config, labels) -> dict:
    """The ROC curves drawn beside ``model.keras``'s: ``{"<method> (<fraction>)": (labels,
    scores)}`` of the stored methods at the largest label fraction, the exported method left
    out whatever was stored (``model.keras`` is that model: drawing it twice hides a curve)."""
    top = tag(max(config.data.label_fractions))
    return {f"{method} ({top})": (labels, np.asarray(s)) for method, s in roc_scores.items()
            if method != config.model.export}


def table(result: JetSSLResult, data: JetSSLInputs, config, truth: dict, pred: dict) -> list:
    """Every method and label fraction: training's stored rows and the saved model's, scored now."""
    top = max(data.subsets)
    rows = list(result.rows) + [table_row(config.model.export, top, len(data.subsets[top]), truth, pred)]
    return sorted(rows, key=lambda r: (r["label_fraction"], METHODS.index(r["method"])))


def write_table(rows: list, ctx) -> None:
    """``downstream_table.json`` and ``.csv`` in the run directory, and its figures."""
    from ... import artifacts, plotting
    from . import plots

    artifacts.write_json(ctx.run_dir / "downstream_table.json", rows)
    artifacts.write_table(rows, ctx.run_dir / "downstream_table.csv")
    shown = ["label_fraction", "method", "roc_auc", "accuracy", "m_mse", "pt_mse", "m_r2", "pt_r2"]
    plotting.table_figure([[r[c] for c in shown] for r in rows], shown, ctx.plots_dir / "downstream_table.png",
                          title="test metrics per label fraction and method")
    plots.fraction_plot(rows, ctx.plots_dir / "label_fractions.png")
