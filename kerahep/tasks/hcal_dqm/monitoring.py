"""hcal_dqm monitoring view: per lumisection, the classifier's confidence in the true run and
the autoencoder's anomaly score, outliers flagged at a ``model.false_alarm_rate`` threshold
(:func:`robust_threshold` of the validation lumisections); on the twin, the fraction of
injected anomalies flagged."""

from __future__ import annotations

import numpy as np

from . import plots
from .data import HcalInputs


def robust_threshold(scores, false_alarm_rate: float = 0.01) -> float:
    """Alarm threshold for anomaly scores from a reference sample that may hold anomalies.

    The bulk of the (positive) scores is taken as log-normal, its centre and width
    estimated by the median and the MAD of ``log(score)`` (a few anomalous lumisections
    do not move them); the threshold is that distribution's ``1 - false_alarm_rate``
    quantile. A plain quantile of the reference would sit on the anomalies whenever
    they are more frequent than the false-alarm rate.
    """
    from scipy.stats import norm

    s = np.log(np.clip(np.asarray(scores, dtype=np.float64), 1e-300, None))
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))
    if not mad > 0:  # half the scores or more are equal: no width to fit; the plain quantile then
        return float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - false_alarm_rate))
    return float(np.exp(med + norm.ppf(1.0 - false_alarm_rate) * mad))


def monitoring_report(model_cfg, ae, data: HcalInputs, run_idx, ls, labels, confidence, predicted,
                      plots_dir) -> dict:
    """``test.monitoring`` of ``metrics.json``, with ``monitoring.png`` and ``anomaly_residuals.png``.

    Args:
        model_cfg: the run's model section (``anomaly_score``, ``false_alarm_rate``).
        ae: the autoencoder, or None (classifier flags only).
        run_idx, ls: run (file position) and lumisection of every test entry.
        labels, confidence, predicted: true class, probability of it, most probable class.
    """
    from ...models.ae import anomaly_scores

    far, how = model_cfg.false_alarm_rate, model_cfg.anomaly_score
    names, anomalies = data.names, data.anomalies
    wrong = predicted != labels
    out = {"classifier": {"misassigned": int(wrong.sum()), "misassigned_fraction": float(wrong.mean()),
                          "flag": "lumisections whose most probable class is not their run's"}}
    truth = None
    if anomalies is not None:
        truth = np.array([int(lumi) in anomalies.get(names[r], {}) for r, lumi in zip(run_idx, ls)])
    score, threshold = None, None
    if ae is not None:
        score = anomaly_scores(ae, data.test, how=how)
        if data.val is not None:
            reference, source = anomaly_scores(ae, data.val, how=how), "validation lumisections"
        else:
            reference, source = score, "scored lumisections (no validation split)"
        threshold = robust_threshold(reference, far)
        source = (f"log-normal fit (median and MAD of log score) to the {source}, "
                  f"{100 * (1 - far):g}th percentile; robust to anomalies among them")
        flagged = score > threshold
        out["autoencoder"] = {"score": how, "threshold": threshold, "threshold_from": source,
                              "n_flagged": int(flagged.sum()), "flagged_fraction": float(flagged.mean()),
                              "flagged": [[names[int(r)], int(lumi)]
                                          for r, lumi in zip(run_idx[flagged], ls[flagged])][:200]}
        if truth is not None and truth.any() and (~truth).any():
            out.update(efficiency(score, flagged, truth, run_idx, ls, names, anomalies, far))
        residual_maps(ae, data, score, run_idx, ls, plots_dir)
    plots.monitoring(run_idx, ls, names, confidence, wrong, score, threshold, truth, plots_dir / "monitoring.png")
    return out


def efficiency(score, flagged, truth, run_idx, ls, names, anomalies, far: float) -> dict:
    """How well the scores find the injected anomalies (``truth``) at the false-alarm rate ``far``."""
    from sklearn.metrics import roc_auc_score

    clean_thr = float(np.quantile(score[~truth], 1.0 - far))
    out = {"n_injected": int(truth.sum()), "efficiency_at_far": float((score[truth] > clean_thr).mean()), "far": far,
           "efficiency_at_far_note": (f"fraction of test lumisections with injected dead/hot channels whose "
                                      f"score exceeds the {100 * (1 - far):g}th percentile of the clean "
                                      f"test lumisections (false-alarm rate {far:g})"),
           "flag_efficiency": float(flagged[truth].mean()),
           "false_alarm_rate_observed": float(flagged[~truth].mean()),
           "anomaly_auc": float(roc_auc_score(truth, score))}
    kinds = np.array([anomalies[names[r]][int(lumi)]["kind"] if t else "" for r, lumi, t in zip(run_idx, ls, truth)])
    out["efficiency_at_far_by_kind"] = {kd: float((score[kinds == kd] > clean_thr).mean())
                                        for kd in np.unique(kinds[truth])}
    return out


def residual_maps(ae, data: HcalInputs, score, run_idx, ls, plots_dir, n: int = 4) -> None:
    """``anomaly_residuals.png``: the residual maps of the ``n`` highest-scoring test lumisections."""
    import keras

    runs = data.runs
    worst = np.argsort(score)[::-1][:n]
    maps = np.stack([np.asarray(runs.runs[int(run_idx[i])].array[int(ls[i])], np.float32) for i in worst])
    residuals = dict(zip(worst.tolist(), keras.ops.convert_to_numpy(ae(maps, training=False))))
    plots.anomaly_residuals(residuals, worst, run_idx, ls, data.names, data.anomalies, score, runs.shape,
                            plots_dir / "anomaly_residuals.png")
