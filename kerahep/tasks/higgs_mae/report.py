"""higgs_mae report: test metrics of the final classifier, the comparison table and the
reconstruction table, with their plots.

Written by training and by ``scripts.evaluate --run`` alike, under the same names:
``comparison.json``/``.csv`` and ``plots/comparison.png`` (every classifier on the same
test events), ``plots/auc_intervals.png`` (their AUCs with intervals), ``plots/roc.png``,
``reconstruction.json``/``.csv`` and ``plots/reconstruction.png`` (masked features
reconstructed by the pre-trained autoencoder), ``plots/scores.png``, ``plots/confusion.png``,
``plots/eff_rejection.png`` and ``plots/reliability.png`` (each figure also as PDF). The rows of the classifiers
that are not saved (frozen encoder before fine-tuning, from scratch, tree baselines) and
their test scores come from the stored training result; the final classifier's row is
recomputed from ``model.keras``. An independent sample (``evaluate --data``) holds other
events than the stored rows: its comparison has the final classifier alone, and says so
(``comparison_note``).
"""

from __future__ import annotations

import logging

import numpy as np

from .data import HiggsInputs
from .models import layout
from .plots import auc_plot, comparison_table, reconstruction_grid, roc
from .result import HiggsResult
from .stages import comparison_row, network_features

log = logging.getLogger("kerahep")

#: what an independent sample's comparison holds, in its report
INDEPENDENT_NOTE = ("independent sample: the stored comparison of training (classifiers that were not saved, tree "
                    "baselines) is about the run's own test events, so only the final classifier (model.keras) "
                    "is scored on these files")
NOT_STORED_NOTE = ("the run stored no training comparison (no rows in fit_result.json): only the final classifier "
                   "(model.keras) is scored")
#: what the task's own files are (the experiment label of its figures; its twin says "synthetic twin"):
#: UCI HIGGS is simulated
FILES_ARE = "simulation"
COMPARISON_COLUMNS = ["model", "roc_auc", "roc_auc_low", "roc_auc_high", "accuracy", "n", "features"]


def evaluate(ctx, result: HiggsResult, data: HiggsInputs) -> dict:
    """Test metrics, comparison and reconstruction (see :meth:`kerahep.tasks.base.Task.evaluate`),
    the figures labelled with what the data are (:func:`kerahep.plotting.data_kind`)."""
    from ... import plotting

    with plotting.data_label(plotting.data_kind(data.source, FILES_ARE, data.paths)), \
            plotting.figure_settings(getattr(ctx, "config", None)):
        return evaluate_labelled(ctx, result, data)


def evaluate_labelled(ctx, result: HiggsResult, data: HiggsInputs) -> dict:
    """The body of :func:`evaluate`, inside its data label."""
    from ... import evaluation, plotting

    cfg = ctx.config
    y, score = evaluation.predict_dataset(result.models["model"], data.test)
    report = evaluation.binary_report(y, score, seed=cfg.run.seed)
    plotting.score_distributions(y, score, ctx.plots_dir / "scores.png")
    plotting.confusion_matrix(report["confusion_matrix"], ctx.plots_dir / "confusion.png")

    rows, curves, note = comparison(cfg, result, data, y, score)
    report["comparison"] = rows
    if note:
        report["comparison_note"] = note
    write_comparison(ctx, rows)
    roc(y, score, ctx.plots_dir / "roc.png", cfg.model.final_stage, curves)
    plotting.classifier_views(y, score, ctx.plots_dir, label=cfg.model.final_stage, seed=cfg.run.seed)
    if "gbt_all28" in rows:
        report["twin_check"] = {
            "low_level_classifier_auc": report["roc_auc"], "gbt_all28_auc": rows["gbt_all28"]["roc_auc"],
            "difference": report["roc_auc"] - rows["gbt_all28"]["roc_auc"],
            "target": "classifier on low-level features within 0.01 of GBT on all 28"}
    if "gbt_same_features" in rows:
        report["vs_gbt_same_features"] = report["roc_auc"] - rows["gbt_same_features"]["roc_auc"]

    pre = result.models.get("pretrainer")
    if pre is not None:
        report["reconstruction"] = reconstruction_report(ctx, pre, data)
    return report


def comparison(cfg, result: HiggsResult, data: HiggsInputs, y, score) -> tuple:
    """``(rows, curves, note)`` of the comparison on the test events of ``data``.

    The final classifier's row is recomputed from its scores ``score``; the other rows and
    their ROC curves ``{name: (labels, scores)}`` are the stored ones, on the run's own test
    events only. ``note`` says why rows are missing (None when none are).
    """
    final = cfg.model.final_stage
    final_row = comparison_row(y, score, cfg.run.seed, network_features(cfg, data))
    if data.independent or not result.rows:
        rows, curves = {final: final_row}, {}
        note = INDEPENDENT_NOTE if data.independent else NOT_STORED_NOTE
    else:
        rows, curves, note = {}, {}, None
        for name, row in result.rows.items():
            if name == final:
                check_final_row(row, final_row, final)
                rows[name] = final_row
            else:
                rows[name] = row
                if name in result.test_scores:
                    curves[name] = (result.test_labels, result.test_scores[name])
        rows.setdefault(final, final_row)
    if data.info.get("oracle_auc") is not None:
        rows["twin_oracle_latent"] = {"roc_auc": data.info["oracle_auc"], "roc_auc_ci": [None, None],
                                      "accuracy": None, "n": None, "features": "latent truth (see twin.json)"}
    return rows, curves, note


def check_final_row(stored_row: dict, recomputed: dict, name: str, tol: float = 1e-4) -> None:
    """Warn when ``model.keras`` does not score the test events as the trained classifier did."""
    if stored_row.get("n") != recomputed["n"] or abs(stored_row["roc_auc"] - recomputed["roc_auc"]) > tol:
        log.warning("model.keras gives ROC AUC %.6f on %d test events, training's %s row %.6f on %s: the saved "
                    "model or the test events are not those of training", recomputed["roc_auc"], recomputed["n"],
                    name, stored_row["roc_auc"], stored_row.get("n"))


def write_comparison(ctx, rows: dict) -> None:
    """``comparison.json``, ``comparison.csv``, ``plots/comparison.png`` (the table) and
    ``plots/auc_intervals.png`` (each row's AUC with its interval)."""
    import pandas as pd

    from ...artifacts import write_json, write_table

    write_json(ctx.run_dir / "comparison.json", rows)
    table = pd.DataFrame([{"model": name, "roc_auc": r.get("roc_auc"),
                           "roc_auc_low": (r.get("roc_auc_ci") or [None, None])[0],
                           "roc_auc_high": (r.get("roc_auc_ci") or [None, None])[1],
                           "accuracy": r.get("accuracy"), "n": r.get("n"), "features": r.get("features")}
                          for name, r in rows.items()], columns=COMPARISON_COLUMNS)
    table["n"] = table["n"].astype("Int64")
    write_table(table, ctx.run_dir / "comparison.csv")
    comparison_table(rows, ctx.plots_dir / "comparison.png")
    auc_plot(rows, ctx.plots_dir / "auc_intervals.png")


def reconstruct_test(cfg, pretrainer, data: HiggsInputs) -> tuple:
    """``(true, reconstructed, masked)`` raw features of the first ``model.recon_events`` test events.

    The masking noise is drawn from ``run.seed``, so training and re-evaluation mask the
    same features. Not :func:`kerahep.evaluation.predict_dataset`: the reconstruction takes
    the noise as an input and returns raw features with their mask.
    """
    rng = np.random.default_rng(cfg.run.seed)
    trues, recs, masks = [], [], []
    n = 0
    for batch in data.test:
        x = np.asarray(batch[0])
        noise = rng.uniform(size=(len(x), pretrainer.num_tokens)).astype("float32")
        rec, mask = pretrainer.reconstruct(x, noise=noise)
        trues.append(x)
        recs.append(np.asarray(rec))
        masks.append(np.asarray(mask) > 0.5)
        n += len(x)
        if n >= cfg.model.recon_events:
            break
    return np.concatenate(trues), np.concatenate(recs), np.concatenate(masks)


def feature_rows(true, rec, mask, names) -> list:
    """Per feature: masked entries, MSE, MAE, Pearson r and MSE over the variance (raw units)."""
    rows = []
    for j, name in enumerate(names):
        t, r = true[mask[:, j], j], rec[mask[:, j], j]
        if len(t) < 2:
            rows.append({"feature": name, "n_masked": int(len(t))})
            continue
        var = float(np.var(t))
        pear = float(np.corrcoef(t, r)[0, 1]) if np.std(t) > 0 and np.std(r) > 0 else float("nan")
        mse = float(np.mean((r - t) ** 2))
        rows.append({"feature": name, "n_masked": int(len(t)), "mse": mse, "mae": float(np.mean(np.abs(r - t))),
                     "pearson_r": pear, "mse_over_variance": mse / var if var > 0 else float("nan")})
    return rows


def reconstruction_report(ctx, pretrainer, data: HiggsInputs) -> dict:
    """The reconstruction of masked features: ``reconstruction.json``/``.csv``,
    ``plots/reconstruction.png``, and its summary for the test metrics."""
    from ...artifacts import write_json, write_table

    cfg = ctx.config
    names = list(layout(cfg)["feature_names"])
    true, rec, mask = reconstruct_test(cfg, pretrainer, data)
    rows = feature_rows(true, rec, mask, names)
    write_json(ctx.run_dir / "reconstruction.json", {"events": int(len(true)), "mask_ratio": cfg.model.mask_ratio,
                                                     "features": rows})
    write_table(rows, ctx.run_dir / "reconstruction.csv",
                columns=["feature", "n_masked", "mse", "mae", "pearson_r", "mse_over_variance"])
    reconstruction_grid(true, rec, mask, names, ctx.plots_dir / "reconstruction.png")
    good = [r for r in rows if "mse" in r]
    return {"events": int(len(true)),
            "mean_mse_over_variance": float(np.nanmean([r["mse_over_variance"] for r in good])) if good else None,
            "mean_pearson_r": float(np.nanmean([r["pearson_r"] for r in good])) if good else None,
            "per_feature": {r["feature"]: {k: r[k] for k in ("mse", "mae", "pearson_r") if k in r} for r in rows}}
