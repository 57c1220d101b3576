"""hcal_dqm report: accuracy and ROC AUC of the classifier against a logistic regression on
the mean occupancy of each active iEta band (the baseline to beat, with the paired interval
of the AUC difference), the oracle AUC on the twin, occupancy, attention-rollout and routing
maps per run, and the monitoring view (:mod:`.monitoring`). Figures: :mod:`.plots`."""

from __future__ import annotations

import numpy as np

from ...config import Config
from ...data.hcal import HcalRuns
from ...errors import KerahepError
from . import plots
from .data import HcalInputs, mean_occupancy, run_means, training_runs
from .models import HcalResult
from .monitoring import monitoring_report

#: what the task's own files are (the experiment label of its figures; its twin says "synthetic twin")
FILES_ARE = "collision"


def evaluate(ctx, result: HcalResult, data: HcalInputs) -> dict:
    """Test metrics and plots (see :meth:`kerahep.tasks.base.Task.evaluate`), the figures
    labelled with what the data are (:func:`kerahep.plotting.data_kind`)."""
    from ... import plotting

    with plotting.data_label(plotting.data_kind(data.source, FILES_ARE, data.paths)), \
            plotting.figure_settings(getattr(ctx, "config", None)):
        return evaluate_labelled(ctx, result, data)


def evaluate_labelled(ctx, result: HcalResult, data: HcalInputs) -> dict:
    """The body of :func:`evaluate`, inside its data label."""
    from ... import plotting
    from ...data import hcal

    if data.test is None:
        raise KerahepError("hcal_dqm: the test split is empty; give data.split a test fraction")
    cfg, plots_dir = ctx.config, ctx.plots_dir
    names = class_names(cfg, data)
    model = result.classifier
    labels, p, proba, report = classification(model, data, names, cfg.run.seed)
    run_idx, ls = hcal.split_order(data.segments[2])
    baseline = band_baseline(data.runs, data.segments, labels, data.n_classes, cfg.run.seed)
    report.update(against_baseline(report, labels, p, baseline, cfg.run.seed))
    oracle = oracle_test_auc(data, labels, run_idx, ls)
    if oracle is not None:
        report["oracle_auc_test"] = oracle
    plots.classification(labels, p, proba, names, baseline["score"], model.name, report["confusion_matrix"],
                         plots_dir)
    if data.n_classes == 2:
        plotting.classifier_views(labels, p, plots_dir, label=model.name, seed=cfg.run.seed, class_names=names)
    else:  # no one signal to reject the rest against: the calibration of the top class only
        plotting.reliability((proba.argmax(axis=1) == labels).astype(int), proba.max(axis=1),
                             plots_dir / "reliability.png", label=f"{model.name}, top-class confidence")

    report["occupancy"] = occupancy(data.runs, plots_dir, samples=plots.sample_images(data.runs, run_idx, ls))
    maps_x, maps_r = map_subset(data.runs, data.segments[2], per_run=200)
    report["attention"] = attention(model, maps_x, maps_r, data.runs, plots_dir)
    if any(layer.name.endswith("_moe") for layer in model.layers):
        report["routing"] = routing(model, maps_x, maps_r, data.runs, names, plots_dir)

    confidence = proba[np.arange(len(labels)), labels]
    report["monitoring"] = monitoring_report(cfg.model, result.autoencoder, data, run_idx, ls, labels, confidence,
                                             proba.argmax(axis=1), plots_dir)
    return report


def class_names(config: Config, data: HcalInputs) -> list[str]:
    """Name of each class: the scored run labelled with it, else the training run."""
    trained = training_runs(config)
    by_class = {data.runs.class_of(i): n for i, n in enumerate(data.names)}
    return [by_class.get(c, trained[c] if c < len(trained) else f"class {c}") for c in range(data.n_classes)]


def classification(model, data: HcalInputs, names, seed: int):
    """``(labels, p, proba, report)`` of the classifier on the test split: the true classes, the
    model's output, the class probabilities ``(n, classes)`` and the binary or multi-class report."""
    from ... import evaluation

    y, p = evaluation.predict_dataset(model, data.test)
    if data.n_classes == 2:
        labels = y.astype(int)
        proba = np.stack([1.0 - p, p], axis=1)
        report = evaluation.binary_report(labels, p, seed=seed, class_names=names)
    else:
        labels = y.argmax(axis=1)
        proba = p
        report = evaluation.multiclass_report(labels, p, class_names=names, seed=seed)
    return labels, p, proba, report


def against_baseline(report: dict, labels, p, baseline: dict, seed: int) -> dict:
    """The baseline's summary and, where it has an AUC, the classifier's AUC minus it (with the
    paired bootstrap interval for two runs, and whether it reaches the baseline)."""
    from ...evaluation import paired_auc_difference_ci

    out = {"baseline_logreg_band_means": baseline["summary"]}
    if baseline["summary"].get("roc_auc") is not None:
        out["auc_minus_baseline"] = float(report["roc_auc"] - baseline["summary"]["roc_auc"])
        if baseline["score"] is not None:
            ci = paired_auc_difference_ci(labels, p, baseline["score"], seed=seed)
            out["auc_minus_baseline_ci"] = ci
            # reached: not even one standard error below the baseline (the 68% interval's top is >= 0)
            out["reaches_baseline"] = bool(ci[1] >= 0)
    return out


def band_baseline(runs: HcalRuns, segments, test_labels, k: int, seed: int) -> dict:
    """Logistic regression on the mean occupancy of each active iEta band, fitted on the
    training split and scored on the test split (seeded and deterministic: training and
    re-evaluation fit the same one).

    Returns:
        ``{"summary": {roc_auc, accuracy, bands_ieta, features}, "score": test scores of the
        second run (two runs) or None}``; ``roc_auc`` None without a training split.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ...data import hcal

    if not hcal.count(segments[0]):
        return {"summary": {"roc_auc": None, "note": "no training split (independent sample)"}, "score": None}
    mean_map = mean_occupancy(runs)
    bands, active = hcal.find_bands(mean_map), mean_map > 0

    def features(seg):
        xs, ys = [], []
        for x, r, _ in hcal.iterate(runs, seg):
            xs.append(hcal.band_features(x, bands, active))
            ys.append(np.full(len(x), r))
        return np.concatenate(xs), np.concatenate(ys)

    xtr, ytr = features(segments[0])
    xte, _ = features(segments[2])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed)).fit(xtr, ytr)
    proba = np.zeros((len(xte), k))
    proba[:, clf.classes_] = clf.predict_proba(xte)
    present = np.unique(test_labels)
    if k == 2:
        score = proba[:, 1]
        auc = float(roc_auc_score(test_labels, score)) if len(present) == 2 else None
    else:
        score = None
        auc = float(roc_auc_score(test_labels, proba, multi_class="ovr", labels=list(range(k)))) \
            if len(present) == k else None
    return {"summary": {"roc_auc": auc, "accuracy": float(accuracy_score(test_labels, proba.argmax(axis=1))),
                        "bands_ieta": [list(b) for b in bands],
                        "features": "mean occupancy over the active cells of each band"},
            "score": score}


def oracle_test_auc(data: HcalInputs, labels, run_idx, ls) -> float | None:
    """ROC AUC of the twin's latent intensity on the test lumisections (two runs of the twin only)."""
    if not data.twin_dir or data.n_classes != 2 or len(np.unique(labels)) != 2:
        return None
    from sklearn.metrics import roc_auc_score

    from ...data.synthetic.hcal import load_latents

    lat = load_latents(data.twin_dir)
    latent = np.array([lat[data.names[r]][lumi] for r, lumi in zip(run_idx, ls)])
    return float(roc_auc_score(labels, latent))


def map_subset(runs: HcalRuns, segments, per_run: int = 200):
    """Up to ``per_run`` test maps of each run, spread over its test lumisections: ``(maps, runs)``."""
    from ...data import hcal

    xs, rs = [], []
    for r in range(runs.n_classes):
        seg = [s for s in segments if s[0] == r]
        x = hcal.sample_maps(runs, seg, max(int(per_run), 1))
        xs.append(x)
        rs.append(np.full(len(x), r))
    return np.concatenate(xs), np.concatenate(rs)


def occupancy(runs: HcalRuns, plots_dir, samples: tuple = ((), ())) -> dict:
    """Mean occupancy of each run and their differences to the first (``occupancy_*.png``), and
    ``sample_maps.png`` of ``samples`` (``(maps, titles)``, none: no figure) on the mean maps'
    log scale."""
    means = run_means(runs)
    names = runs.names
    out = {"mean": {n: float(m.mean()) for n, m in zip(names, means)},
           "active_mean": {n: float(m[m > 0].mean()) if (m > 0).any() else 0.0 for n, m in zip(names, means)}}
    diffs = {}
    for i in range(1, len(means)):
        d = means[i] - means[0]
        rel = np.divide(d, means[0], out=np.zeros_like(d), where=means[0] > 0)
        diffs[f"{names[i]}-{names[0]}"] = {"mean_difference": float(d.mean()),
                                           "relative_difference_active": float(rel[means[0] > 0].mean())
                                           if (means[0] > 0).any() else 0.0}
    out["differences"] = diffs
    plots.occupancy_maps(means, names, samples[0], samples[1], runs.shape, plots_dir)
    return out


def attention(model, x, r, runs: HcalRuns, plots_dir) -> dict:
    """Per run, the share of attention rollout on active cells (``attention_rollout.png``)."""
    from ...models.vit import rollout_maps

    maps = rollout_maps(model, x)
    names = runs.names
    images, titles, out = [], [], {}
    active = mean_occupancy(runs) > 0
    for c in range(runs.n_classes):
        if not (r == c).any():
            continue
        m = maps[r == c].mean(axis=0)
        images.append(m)
        titles.append(names[c])
        out[names[c]] = {"relevance_on_active_cells": float(m[active].sum() / max(m.sum(), 1e-12)),
                         "n_maps": int((r == c).sum())}
    out["active_cell_fraction"] = float(active.mean())
    plots.attention_rollout(images, titles, runs.shape, plots_dir)
    return out


def routing(model, x, r, runs: HcalRuns, class_names, plots_dir) -> dict:
    """Per MoE layer and run: expert load, dropped tokens and the first-choice expert of each
    patch (``routing_maps.png``, ``expert_load.png``)."""
    from ...models.vit import routing as gates_of

    gates = gates_of(model, x)
    first_maps, load_rows, out = [], {}, {}
    for layer, g in gates.items():
        out[layer], maps, load_rows[layer] = layer_routing(model, layer, g, r, runs.n_classes, class_names)
        first_maps.extend(maps)
    plots.routing_maps(first_maps, plots_dir / "routing_maps.png", n_experts=next(iter(gates.values())).shape[-1],
                       shape=runs.shape)
    plots.expert_load(load_rows, [n for i, n in enumerate(class_names) if (r == i).any()],
                      plots_dir / "expert_load.png")
    return out


def layer_routing(model, layer: str, g, r, n_runs: int, class_names):
    """``(info, first-choice maps, load rows)`` of one MoE layer's gates ``g`` ``(B, N, experts)``."""
    from ...models.vit import tokens_to_map

    patch = model.get_layer("patchify")
    e = g.shape[-1]
    top = np.where(g.sum(axis=-1) > 0, g.argmax(axis=-1), -1)  # (B, N): first choice, -1 dropped
    info = {"load": {}, "dropped_fraction": {}, "first_choice_maps": {}}
    maps, rows = [], []
    for c in range(n_runs):
        sel = r == c
        if not sel.any():
            continue
        assigned = (g[sel] > 0).reshape(-1, e)
        load = assigned.sum(axis=0) / max(assigned.sum(), 1)
        info["load"][class_names[c]] = load.round(4).tolist()
        info["dropped_fraction"][class_names[c]] = float((top[sel] < 0).mean())
        counts = np.stack([(top[sel] == j).sum(axis=0) for j in range(-1, e)], axis=1)  # (N, e+1)
        mode = counts.argmax(axis=1) - 1
        info["first_choice_maps"][class_names[c]] = mode.tolist()
        maps.append((f"{layer}: {class_names[c]}",
                     tokens_to_map(mode[None].astype(float), patch.grid, patch.patch_size, patch.image_shape)[0]))
        rows.append(load)
    modes = list(info["first_choice_maps"].values())
    if len(modes) >= 2:
        info["patches_same_expert_all_runs"] = float(np.mean(np.all(np.array(modes) == modes[0], axis=0)))
    return info, maps, rows
