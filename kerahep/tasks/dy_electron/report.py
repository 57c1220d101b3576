"""dy_electron report: ROC AUC with its interval, accuracy at the working point, per-sample
scores, and the ROC, score and confusion plots; all weighted when the events carry weights."""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ..base import FitResult
from .data import DyElectronInputs

#: what the task's own files are (the experiment label of its figures; its twin says "synthetic twin"):
#: labelled by their process, NanoAOD samples are simulated
FILES_ARE = "simulation"


def check_model_inputs(model, data: DyElectronInputs) -> None:
    """Refuse files whose feature columns are not the model's inputs (DataError naming the file)."""
    inputs = [str(getattr(t, "name", "")).split(":")[0] for t in model.inputs]
    feats = list(data.features)
    if sorted(inputs) != sorted(feats):
        missing, extra = sorted(set(inputs) - set(feats)), sorted(set(feats) - set(inputs))
        raise DataError(data.paths[0], f"the {len(inputs)} feature columns the model was trained on"
                                       + (f" (missing here: {missing[:8]})" if missing else ""),
                        f"{len(feats)} feature columns" + (f", {extra[:8]} not among the model's" if extra else "")
                        + " (prepared with other settings? prepare it with the run's preset)")


def evaluate(ctx, result: FitResult, data: DyElectronInputs) -> dict:
    """Test metrics and plots of the dense classifier (see :meth:`kerahep.tasks.base.Task.evaluate`).

    With event weights (``data.weights`` not ``none``) every metric is weighted, negative
    weights included: ROC AUC and its interval, confusion matrix (sums of weights),
    accuracy, sums of weights and effective events per class, efficiency and rejection at
    working points, calibration (ECE, Brier), per-sample sums, and the ROC curve, the
    efficiency-rejection curve with its band, the reliability diagram and the score
    distributions. A calibrated model or a deep ensemble adds the calibration before and
    after, the spread and the members' AUCs (:func:`kerahep.tasks.uncertainty.uncertainty_report`).
    The figures say what the data are (:func:`kerahep.plotting.data_kind`).
    """
    from ... import plotting

    with plotting.data_label(plotting.data_kind(data.source, FILES_ARE, data.paths)), \
            plotting.figure_settings(getattr(ctx, "config", None)):
        return evaluate_labelled(ctx, result, data)


def evaluate_labelled(ctx, result: FitResult, data: DyElectronInputs) -> dict:
    """The body of :func:`evaluate`, inside its data label."""
    from ... import evaluation, plotting
    from ..uncertainty import predict_test, uncertainty_report

    model = result.models["model"]
    check_model_inputs(model, data)
    te = data.split[2]
    y, score, w, extra = predict_test(model, data.test)
    wp = ctx.config.data.working_point
    report = evaluation.binary_report(y, score, threshold=wp, seed=ctx.config.run.seed, weights=w)
    report.update(uncertainty_report(model, y, score, w, extra, ctx.plots_dir, seed=ctx.config.run.seed))
    if w is not None:
        report["event_weights"] = ctx.config.data.weights
    if "oracle_auc" in data.info:
        report["oracle_auc"] = data.info["oracle_auc"]
    samples = data.samples[te]
    report["per_sample"] = per_sample(samples, y, score, w, wp)
    p = ctx.plots_dir
    plotting.roc_curve(y, score, p / "roc.png", label="dense" + (" (weighted)" if w is not None else ""), weights=w)
    plotting.classifier_views(y, score, p, weights=w, label="dense", seed=ctx.config.run.seed)
    plotting.score_distributions(y, score, p / "scores.png", weights=w)
    plotting.score_distributions(y, score, p / "scores_per_sample.png", groups=samples, weights=w)
    title = f"working point {wp:g}" + (" (sums of weights)" if w is not None else "")
    plotting.confusion_matrix(report["confusion_matrix"], p / "confusion.png", title=title)
    return report


def per_sample(samples, y, score, w, wp: float) -> dict:
    """Per sample: events, target, mean score and fraction selected at the working point; with
    weights also their weighted versions, the sum of weights and the effective events."""
    from ...evaluation import effective_sample_size

    out = {}
    for s in np.unique(samples):
        m = samples == s
        row = {"n": int(m.sum()), "target": int(y[m][0]), "mean_score": float(score[m].mean()),
               "selected_fraction": float((score[m] >= wp).mean())}
        if w is not None:
            ws = w[m].astype(np.float64)
            total = float(ws.sum())
            row.update({"sum_of_weights": total, "effective_events": effective_sample_size(ws),
                        "weighted_mean_score": float((ws * score[m]).sum() / total) if total else float("nan"),
                        "weighted_selected_fraction": float(ws[score[m] >= wp].sum() / total) if total
                        else float("nan")})
        out[str(s)] = row
    return out
