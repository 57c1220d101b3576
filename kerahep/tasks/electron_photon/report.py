"""electron_photon report: test metrics (ROC AUC with its interval, accuracy, classification
report, confusion matrix, the twin's oracle on the same crops) and figures from the saved
model, and :func:`compare_runs`, the table of the newest complete run of each variant
(read from the run directories, writing nothing; ``python -m scripts.compare_variants``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from ...artifacts import read_json
from ...config import Config
from ...data.calo import CLASS_NAMES, CROP_SHAPE
from ..base import FitResult
from . import plots
from .data import ElectronPhotonInputs
from .models import describe_model

#: what the task's own files are (the experiment label of its figures; its twin says "synthetic twin"):
#: the crops come from simulated single-particle events
FILES_ARE = "simulation"
#: the columns of :func:`compare_runs`
COMPARISON_COLUMNS = ("variant", "run", "source", "roc_auc", "roc_auc_low", "roc_auc_high", "accuracy",
                      "n_test", "oracle_auc_test", "epochs", "model")


class CropSummary:
    """Per-class mean crops and the first ``keep`` crops of a stream of ``(x, y)`` batches.

    :meth:`observe` passes the batches through unchanged, so one pass of
    :func:`kerahep.evaluation.predict_dataset` over ``summary.observe(dataset)`` gives the
    scores and the summary together (the test crops are read once).
    """

    def __init__(self, keep: int = 1000):
        self.keep = int(keep)
        self.sums = {0: None, 1: None}
        self.counts = {0: 0, 1: 0}
        self._kept_x, self._kept_y, self._n_kept = [], [], 0

    def observe(self, dataset):
        import keras

        for batch in dataset:
            xn = np.asarray(keras.ops.convert_to_numpy(batch[0]))
            yn = np.asarray(keras.ops.convert_to_numpy(batch[1])).reshape(-1)
            for c in (0, 1):
                sel = yn == c
                if sel.any():
                    s = xn[sel].sum(axis=0, dtype=np.float64)
                    self.sums[c] = s if self.sums[c] is None else self.sums[c] + s
                    self.counts[c] += int(sel.sum())
            if self._n_kept < self.keep:
                self._kept_x.append(xn[: self.keep - self._n_kept])
                self._kept_y.append(yn[: self.keep - self._n_kept])
                self._n_kept += len(self._kept_x[-1])
            yield batch

    @property
    def means(self) -> dict:
        """``{class: mean crop}`` (float32) for the classes seen."""
        return {c: (self.sums[c] / self.counts[c]).astype(np.float32) for c in (0, 1) if self.counts[c]}

    @property
    def kept(self) -> tuple:
        """``(x, y)``: the first ``keep`` crops of the stream and their labels (int)."""
        x = np.concatenate(self._kept_x) if self._kept_x else np.zeros((0,) + CROP_SHAPE, np.float32)
        y = np.concatenate(self._kept_y) if self._kept_y else np.zeros(0)
        return x, y.astype(int)


def evaluate(ctx, result: FitResult, data: ElectronPhotonInputs) -> dict:
    """Test metrics and figures of the saved ResNet-15 (see :meth:`kerahep.tasks.base.Task.evaluate`),
    the figures labelled with what the data are (:func:`kerahep.plotting.data_kind`)."""
    from ... import plotting

    with plotting.data_label(plotting.data_kind(data.source, FILES_ARE, data.paths)), \
            plotting.figure_settings(getattr(ctx, "config", None)):
        return evaluate_labelled(ctx, result, data)


def evaluate_labelled(ctx, result: FitResult, data: ElectronPhotonInputs) -> dict:
    """The body of :func:`evaluate`, inside its data label."""
    from ... import plotting
    from ...models.ensemble import explained_model
    from ..uncertainty import predict_test, uncertainty_report

    cfg = ctx.config
    model = result.models["model"]
    summary = CropSummary(keep=max(cfg.data.tsne_samples, 2 * cfg.data.explain_samples))
    reader = data.test_reader
    with reader.data_errors() if reader is not None else contextlib.nullcontext():
        y, score, _, extra = predict_test(model, summary.observe(data.test))
    report = score_report(cfg, data, y, score)
    pd = ctx.plots_dir
    report.update(uncertainty_report(model, y, score, None, extra, pd, seed=cfg.run.seed, class_names=CLASS_NAMES))
    plotting.roc_curve(y, score, pd / "roc.png", label=f"{describe_model(cfg)} ({data.source})")
    plotting.classifier_views(y, score, pd, label=describe_model(cfg), seed=cfg.run.seed, class_names=CLASS_NAMES)
    plotting.score_distributions(y, score, pd / "scores.png", class_names=CLASS_NAMES)
    plotting.confusion_matrix(report["confusion_matrix"], pd / "confusion.png", class_names=CLASS_NAMES,
                              title=f"threshold {report['threshold']:g}")
    plots.mean_images(summary.means, summary.counts, pd)
    keep_x, keep_y = summary.kept
    explained = explained_model(model)  # one network: an ensemble's first member, the model before calibration
    n = cfg.data.tsne_samples
    if n and len(keep_x) >= 10:
        plots.tsne_embedding(explained, keep_x[:n], keep_y[:n], cfg.run.seed, cfg.training.batch_size, pd)
    if cfg.data.explain_samples and len(keep_x):
        report["explanations"] = plots.explanation_maps(explained, keep_x, keep_y, cfg.data.explain_samples, pd)
        if explained is not model:
            report["explanations"]["model"] = explained.name
    return report


def score_report(config: Config, data: ElectronPhotonInputs, y, score) -> dict:
    """The binary report of the test scores (interval seeded with ``run.seed``), the variant,
    and beside a synthetic twin its oracle AUC on the same crops and the gap to it."""
    from ... import evaluation

    report = evaluation.binary_report(y, score, seed=config.run.seed, class_names=CLASS_NAMES)
    report["variant"] = config.model.variant
    if "oracle_auc_test" in data.info:
        report["oracle_auc_test"] = data.info["oracle_auc_test"]
        report["oracle_gap"] = data.info["oracle_auc_test"] - report["roc_auc"]
    return report


# ---------------------------------------------------------------- comparison
def compare_runs(task_root):
    """The newest complete run of each variant under ``task_root`` (``results/electron_photon``).

    Reads each run's ``metrics.json`` and ``config.json`` and writes nothing. Only runs on
    the same data as the newest complete run (same source, same file names) are compared.

    Returns:
        A ``pandas.DataFrame`` with :data:`COMPARISON_COLUMNS`, one row per variant in the
        order of :data:`kerahep.models.resnet.VARIANTS` (empty when there is no complete run).
    """
    import pandas as pd

    from ...models.resnet import VARIANTS

    task_root = Path(task_root)
    rows = [r for d in (sorted(task_root.iterdir()) if task_root.is_dir() else ()) if d.is_dir()
            for r in [run_row(d)] if r is not None]
    if not rows:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    ref = max(rows, key=lambda r: r["_stamp"])
    newest: dict = {}
    for r in rows:
        if r["source"] == ref["source"] and r["_paths"] == ref["_paths"]:
            if r["variant"] not in newest or r["_stamp"] > newest[r["variant"]]["_stamp"]:
                newest[r["variant"]] = r
    order = {v: i for i, v in enumerate(VARIANTS)}
    ordered = sorted(newest.values(), key=lambda r: (order.get(r["variant"], 99), r["variant"]))
    return pd.DataFrame([{c: r[c] for c in COMPARISON_COLUMNS} for r in ordered], columns=list(COMPARISON_COLUMNS))


def run_row(run_dir: Path) -> dict | None:
    """The comparison row of a complete electron_photon run (None for any other directory),
    with ``_paths`` (its file names) and ``_stamp`` (when its metrics were written)."""
    try:
        metrics = read_json(run_dir / "metrics.json")
        config = read_json(run_dir / "config.json")
        stamp = (run_dir / "metrics.json").stat().st_mtime
    except (OSError, ValueError):
        return None
    if metrics.get("status") != "complete" or metrics.get("task") != "electron_photon":
        return None
    test, data = metrics.get("test") or {}, metrics.get("data") or {}
    ci = test.get("roc_auc_ci") or [None, None]
    return {"variant": (config.get("model") or {}).get("variant", "two_channel"), "run": run_dir.name,
            "source": data.get("source"), "roc_auc": _number(test.get("roc_auc")),
            "roc_auc_low": _number(ci[0]), "roc_auc_high": _number(ci[1]), "accuracy": _number(test.get("accuracy")),
            "n_test": int(test.get("n", 0) or 0), "oracle_auc_test": _number(test.get("oracle_auc_test")),
            "epochs": (config.get("training") or {}).get("epochs"), "model": metrics.get("model", ""),
            "_paths": [os.path.basename(str(p)) for p in data.get("paths") or []], "_stamp": stamp}


def _number(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
