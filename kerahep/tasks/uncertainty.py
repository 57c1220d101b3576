"""Calibration and per-event uncertainty of single-stage classifiers: ``training.calibrate``
(temperature scaling fitted on the validation split, stored in the saved model) and
``training.ensemble=N`` (a deep ensemble of N members trained with seeds ``run.seed + i``,
saved as one model returning the mean score and the spread per event).

Training goes through :func:`fit_classifier` (the base task's ``fit`` and electron_photon's);
a report scores the test split with :func:`predict_test` and adds :func:`uncertainty_report`.
Everything reported is recomputed from the saved model (the members are sub-models of it,
the temperature is in its calibration layer), so re-evaluating a run reproduces it.

With both options the ensemble's mean is calibrated; the spread stays the standard
deviation of the uncalibrated members' scores.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ConfigError

log = logging.getLogger("kerahep")

#: the training options of this module (see ``Task.uncertainty_options``)
UNCERTAINTY_OPTIONS = ("calibrate", "ensemble")
#: the bounds of the fitted temperature
TEMPERATURE_BOUNDS = (1e-2, 1e2)


def member_stage(i: int) -> str:
    """The stage of ensemble member ``i``: ``main`` for the first (its ``history.csv`` is the
    run's, as without an ensemble), ``member_<i>`` for the others."""
    return "main" if i == 0 else f"member_{i}"


def fit_classifier(ctx, build):
    """Train the run's classifier and return the model to save.

    ``training.ensemble`` members (one by default), member ``i`` built by ``build(seed)``
    with ``seed = run.seed + i`` (the backend seeded with it too, ``keras.utils.set_random_seed``,
    for ``i > 0``; the first member is the model a run without an ensemble trains) and
    trained as stage :func:`member_stage` (``i``), so ``--resume`` skips the members already
    complete. Several members are joined by :func:`kerahep.models.ensemble.build_ensemble`;
    with ``training.calibrate`` the result gets the temperature :func:`fit_temperature` fits
    on its validation scores.

    Raises:
        ConfigError: ``training.calibrate`` without validation events (before any training).
    """
    import keras

    from ..models.ensemble import build_ensemble, calibrated_model

    cfg = ctx.config
    n, calibrate = int(cfg.training.ensemble), bool(cfg.training.calibrate)
    if calibrate and ctx.data.val is None:
        raise ConfigError(no_validation_message(cfg))
    members = []
    for i in range(n):
        seed = cfg.run.seed + i
        if i:
            keras.utils.set_random_seed(seed)
        model = ctx.build(lambda seed=seed: build(seed))
        ctx.fit(model, stage=member_stage(i), label=f"member {i + 1} of {n} (seed {seed})" if n > 1 else None)
        members.append(model)
    model = members[0] if n == 1 else ctx.build(lambda: build_ensemble(members))
    if calibrate:
        temperature = validation_temperature(model, ctx.data.val, cfg)
        model = ctx.build(lambda: calibrated_model(model, temperature))
    return model


def no_validation_message(cfg) -> str:
    return (f"training.calibrate=true fits the temperature on the validation split, but this {cfg.task} run has "
            f"no validation events (data.split={tuple(cfg.data.split)!r}); give the split a validation share, "
            "e.g. data.split=(0.7, 0.15, 0.15), or leave training.calibrate off")


def validation_temperature(model, val, cfg) -> float:
    """The temperature :func:`fit_temperature` fits on ``model``'s first output over ``val``
    (weighted where its batches carry weights)."""
    from ..evaluation import predict_dataset

    y, p, w = predict_dataset(model, val, with_weights=True)
    if not len(y):
        raise ConfigError(no_validation_message(cfg))
    t = fit_temperature(y, p, w)
    log.info("temperature scaling: T = %.4g fitted on %d validation events", t, len(y))
    return t


def fit_temperature(y, p, weights=None, *, epsilon: float = 1e-7, bounds=TEMPERATURE_BOUNDS) -> float:
    """The temperature ``T`` minimising the (weighted) log loss of ``p`` rescaled by ``T``.

    ``p`` of shape ``(n,)`` or ``(n, 1)``: probabilities of class 1, rescaled as
    ``sigmoid(logit(p) / T)``; ``(n, k)``: class probabilities, rescaled as
    ``softmax(log p / T)`` (``y`` the class index). ``p`` is clipped to ``[epsilon,
    1 - epsilon]`` in float32, as :class:`~kerahep.layers.TemperatureScaling` does. The minimum is found
    by ``scipy.optimize.minimize_scalar`` (bounded) over ``log T`` within ``bounds``.

    Raises:
        ConfigError: no events, labels of one class only, or weights that sum to zero.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, np.float64)
    p = p.reshape(len(y)) if p.ndim == 2 and p.shape[1] == 1 else p
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64).ravel()
    if not len(y) or len(np.unique(y)) < 2 or not w.sum() > 0:
        raise ConfigError("training.calibrate: the validation split needs events of both classes (with a positive "
                          f"sum of weights) to fit a temperature, found {len(y)} events of classes "
                          f"{sorted(set(y.tolist()))}")
    p = np.clip(p.astype(np.float32), np.float32(epsilon), np.float32(1 - epsilon)).astype(np.float64)  # as the layer
    if p.ndim == 1:
        z, sign = np.log(p) - np.log1p(-p), 2.0 * y - 1.0

        def loss(log_t):
            return float(np.sum(w * np.logaddexp(0.0, -sign * z / np.exp(log_t))) / w.sum())
    else:
        logp = np.log(p)

        def loss(log_t):
            return float(-np.sum(w * log_softmax(logp / np.exp(log_t), axis=1)[np.arange(len(y)), y]) / w.sum())

    res = minimize_scalar(loss, bounds=tuple(np.log(bounds)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


# ------------------------------------------------------------------ the report
def predict_test(model, dataset) -> tuple:
    """``(y, score, weights, extra)``: the model's first output over ``dataset``, and for a
    calibrated model or an ensemble in the same pass ``extra`` with ``raw`` (the score before
    calibration), ``spread`` and ``member_<i>`` (:func:`kerahep.models.ensemble.uncertainty_probe`);
    ``extra`` is ``{}`` for another model."""
    from ..evaluation import predict_dataset
    from ..models.ensemble import uncertainty_probe

    probe = uncertainty_probe(model)
    if probe is None:
        y, score, w = predict_dataset(model, dataset, with_weights=True)
        return y, score, w, {}
    y, out, w = predict_dataset(probe, dataset, output="all", with_weights=True)
    return y, out.pop("score"), w, out


def uncertainty_report(model, y, score, weights, extra: dict, plots_dir, *, seed: int = 0,
                       class_names=("background", "signal")) -> dict:
    """The report's ``calibration`` and ``ensemble`` entries and their figures (none for a
    model that is neither calibrated nor an ensemble).

    ``calibration``: the temperature (read from the model), and ECE and Brier score of the
    test scores before and after it (:func:`kerahep.evaluation.calibration`, weighted with
    ``weights``); figure ``reliability_calibration.png`` with both curves.
    ``ensemble``: the member count and seeds (``seed + i``), each member's test AUC
    (``members``), the ensemble's (``ensemble_auc``, of the saved model's score), the mean
    spread over the test events and per class, and the mean spread per score bin; figures
    ``spread_vs_score.png`` and ``ensemble_auc.png``.
    """
    from .. import evaluation, plotting
    from ..models.ensemble import calibration_layer

    out = {}
    if "raw" in extra:
        t = float(calibration_layer(model).temperature)
        before, after = (evaluation.calibration(y, s, weights) for s in (extra["raw"], score))
        out["calibration"] = {"method": "temperature scaling", "fitted_on": "validation", "temperature": t,
                              "before": {"ece": before["ece"], "brier": before["brier"]},
                              "after": {"ece": after["ece"], "brier": after["brier"]}}
        plotting.reliability_comparison(y, {"before calibration": extra["raw"], f"after (T = {t:.3g})": score},
                                        plots_dir / "reliability_calibration.png", weights=weights)
    if "spread" in extra:
        n = sum(1 for k in extra if k.startswith("member_"))
        members = [evaluation.weighted_roc_auc(y, extra[f"member_{i}"], weights) for i in range(n)]
        spread = np.asarray(extra["spread"], np.float64).ravel()
        y_int = np.asarray(y).astype(int).ravel()
        profile = plotting.spread_profile(score, spread)
        out["ensemble"] = {
            "n_members": n, "seeds": [int(seed) + i for i in range(n)], "members": members,
            "ensemble_auc": evaluation.weighted_roc_auc(y, score, weights),
            "mean_spread": float(spread.mean()) if len(spread) else float("nan"),
            "mean_spread_per_class": {name: float(spread[y_int == k].mean()) for k, name in enumerate(class_names)
                                      if (y_int == k).any()},
            "spread_per_score_bin": {"edges": profile["edges"].tolist(), "n": profile["n"].tolist(),
                                     "mean_spread": profile["mean"].tolist()},
        }
        plotting.spread_vs_score(score, spread, plots_dir / "spread_vs_score.png", y=y, class_names=class_names)
        plotting.ensemble_aucs(members, out["ensemble"]["ensemble_auc"], plots_dir / "ensemble_auc.png",
                               weighted=weights is not None, seeds=out["ensemble"]["seeds"])
    return out
