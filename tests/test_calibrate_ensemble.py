"""Calibration and per-event uncertainty (issue 16): ``training.calibrate`` (temperature scaling
fitted on the validation split, stored in ``model.keras`` as a layer) and ``training.ensemble=N``
(a deep ensemble saved as one model returning the mean score and the spread).

Unit tests on tiny untrained models (the layer, the fit of the temperature, the ensemble and
calibrated graphs, the figures' numbers, the configuration's rules, electron_photon's fit and
predict, resume of the members), then one shared dy_electron smoke run with both options on:
its saved model, its report, re-evaluation, ``predict`` and the ONNX export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from conftest import require_backend
from helpers import run_layer_test, run_model_saving_test
from kerahep import evaluation as ev
from kerahep import plotting
from kerahep.errors import ConfigError, KerahepError
from kerahep.layers import EnsembleSpread, TemperatureScaling
from kerahep.models.dense import build_dense_classifier
from kerahep.models.ensemble import (build_ensemble, calibrated_model, calibration_layer, ensemble_members,
                                     explained_model, uncertainty_probe)
from kerahep.registry import get_task
from kerahep.tasks.uncertainty import fit_classifier, fit_temperature, member_stage

EPS = 1e-7
FEATURES = ["a", "b", "c"]


def logit(p):
    """logit of ``p`` clipped to [EPS, 1 - EPS] in float32, as the layer clips."""
    p = np.clip(np.asarray(p, np.float32), np.float32(EPS), np.float32(1 - EPS)).astype(np.float64)
    return np.log(p) - np.log1p(-p)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_of(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def tiny_dense(seed: int):
    keras.utils.set_random_seed(seed)
    X = np.random.default_rng(0).normal(size=(32, len(FEATURES))).astype("float32")
    return build_dense_classifier(FEATURES, widths=(4,), dropout=0.0, adapt_data=X)


def feature_dict(n: int = 16, seed: int = 1) -> dict:
    X = np.random.default_rng(seed).normal(size=(n, len(FEATURES))).astype("float32")
    return {f: X[:, i:i + 1] for i, f in enumerate(FEATURES)}


# ------------------------------------------------------------------ the layer
def test_temperature_scaling_is_the_formula_and_round_trips(tmp_path):
    p = np.array([[1e-9], [0.05], [0.2], [0.5], [0.9], [1.0]], np.float32)
    layer = TemperatureScaling(2.5, name="calibration")
    want = sigmoid(logit(p) / 2.5)
    np.testing.assert_allclose(np_of(layer(p)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np_of(TemperatureScaling(1.0)(p[1:-1])), p[1:-1], atol=1e-6)  # T = 1: unchanged
    result = run_layer_test(layer, p, tmp_path=tmp_path, expected_shape=p.shape)
    assert result.loaded_layer.get_config()["temperature"] == 2.5


def test_temperature_scaling_of_softmax_probabilities(tmp_path):
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    z = np.log(p) / 0.5
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    layer = TemperatureScaling(0.5, mode="softmax", name="calibration")
    np.testing.assert_allclose(np_of(layer(p)), want, rtol=1e-5)
    run_layer_test(layer, p, tmp_path=tmp_path, expected_shape=p.shape)


@pytest.mark.parametrize("kwargs,needle", [({"temperature": 0.0}, "temperature must be finite and > 0"),
                                           ({"temperature": float("inf")}, "temperature must be finite"),
                                           ({"mode": "tanh"}, "mode must be one of sigmoid, softmax"),
                                           ({"epsilon": 0.5}, "epsilon must be in")])
def test_temperature_scaling_refuses_bad_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        TemperatureScaling(**kwargs)


# ------------------------------------------------------------------ fitting the temperature
@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    rng = np.random.default_rng(3)
    z = rng.normal(0.0, 2.0, 40000)  # the calibrated logits
    y = (rng.uniform(size=z.size) < sigmoid(z)).astype(int)
    p = sigmoid(z * true_t)  # a model over- (T > 1) or under-confident (T < 1) by true_t
    assert fit_temperature(y, p) == pytest.approx(true_t, rel=0.03)
    assert fit_temperature(y, p[:, None]) == pytest.approx(fit_temperature(y, p), rel=1e-6)
    # weights: the events of weight 0 are ignored, so a second, other miscalibration there changes nothing
    p_mixed = np.concatenate([p, sigmoid(z / 3.0)])
    w = np.concatenate([np.ones(z.size), np.zeros(z.size)])
    assert fit_temperature(np.concatenate([y, y]), p_mixed, w) == pytest.approx(fit_temperature(y, p), rel=1e-4)


def test_fit_temperature_of_softmax_probabilities():
    rng = np.random.default_rng(4)
    logits = rng.normal(0.0, 1.5, (20000, 3))
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in prob])
    sharp = np.exp(2.0 * logits)
    assert fit_temperature(y, sharp / sharp.sum(axis=1, keepdims=True)) == pytest.approx(2.0, rel=0.04)


def test_fit_temperature_needs_both_classes():
    with pytest.raises(ConfigError, match="events of both classes"):
        fit_temperature([1, 1, 1], [0.2, 0.6, 0.9])
    with pytest.raises(ConfigError, match="events of both classes"):
        fit_temperature([], [])


# ------------------------------------------------------------------ ensemble and calibrated graphs
def test_ensemble_returns_the_members_mean_and_spread_and_round_trips(tmp_path):
    members = [tiny_dense(s) for s in (1, 2, 3)]
    x = feature_dict()
    outs = np.stack([np_of(m(x)) for m in members])
    ens = build_ensemble(members)
    mean, spread = (np_of(t) for t in ens(x))
    np.testing.assert_allclose(mean, outs.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(spread, outs.std(axis=0), atol=1e-6)
    assert ens.output_names == ["ensemble_score", "ensemble_spread"]
    assert [m.name for m in ensemble_members(ens)] == ["member_0", "member_1", "member_2"]
    assert explained_model(ens) is members[0] and calibration_layer(ens) is None
    saved = run_model_saving_test(ens, x, tmp_path)
    assert len(ensemble_members(saved.loaded)) == 3
    with pytest.raises(ValueError, match="at least two members"):
        build_ensemble(members[:1])


def test_ensemble_spread_of_two_members_is_half_their_difference():
    a, b = np.array([[0.2], [0.9]], np.float32), np.array([[0.6], [0.9]], np.float32)
    np.testing.assert_allclose(np_of(EnsembleSpread()([a, b])), [[0.2], [0.0]], atol=1e-7)


def test_calibrated_model_scales_the_first_output_and_the_probe_reads_every_part(tmp_path):
    x = feature_dict()
    single = tiny_dense(5)
    raw = np_of(single(x))
    cal = calibrated_model(single, 1.7)
    np.testing.assert_allclose(np_of(cal(x)), sigmoid(logit(raw) / 1.7), rtol=1e-5, atol=1e-6)
    out = {k: np_of(v) for k, v in uncertainty_probe(cal)(x).items()}
    assert sorted(out) == ["raw", "score"]
    np.testing.assert_allclose(out["raw"], raw, atol=1e-7)
    np.testing.assert_allclose(np_of(explained_model(cal)(x)), raw, atol=1e-7)  # explained before calibration
    assert uncertainty_probe(single) is None
    loaded = run_model_saving_test(cal, x, tmp_path).loaded
    assert calibration_layer(loaded).temperature == 1.7

    members = [tiny_dense(s) for s in (6, 7)]
    outs = np.stack([np_of(m(x)) for m in members])
    both = calibrated_model(build_ensemble(members), 0.8)  # the ensemble's mean calibrated, the spread kept
    probe = {k: np_of(v) for k, v in uncertainty_probe(both)(x).items()}
    assert sorted(probe) == ["member_0", "member_1", "raw", "score", "spread"]
    np.testing.assert_allclose(probe["raw"], outs.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(probe["score"], sigmoid(logit(outs.mean(axis=0)) / 0.8), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probe["spread"], outs.std(axis=0), atol=1e-6)
    np.testing.assert_allclose(probe["member_1"], outs[1], atol=1e-7)
    score, spread = (np_of(t) for t in both(x))
    np.testing.assert_allclose(score, probe["score"], atol=1e-7)
    np.testing.assert_allclose(spread, probe["spread"], atol=1e-7)
    saved = run_model_saving_test(both, x, tmp_path)
    assert calibration_layer(saved.loaded).temperature == 0.8 and len(ensemble_members(saved.loaded)) == 2


# ------------------------------------------------------------------ the figures' numbers
def test_spread_profile_by_hand():
    prof = plotting.spread_profile([0.05, 0.15, 0.45, 1.0], [0.1, 0.3, 0.2, 0.4], bins=2)
    np.testing.assert_allclose(prof["edges"], [0.0, 0.5, 1.0])
    assert prof["n"].tolist() == [3, 1]  # 1.0 is in the last (closed) bin
    np.testing.assert_allclose(prof["mean"], [0.2, 0.4])
    np.testing.assert_allclose(prof["std"], [np.std([0.1, 0.3, 0.2]), 0.0], atol=1e-12)
    empty = plotting.spread_profile([0.1], [0.2], bins=4)
    assert empty["n"].tolist() == [1, 0, 0, 0] and np.isnan(empty["mean"][1:]).all()


def test_reliability_comparison_draws_both_curves_with_their_numbers(tmp_path):
    y = np.array([0, 0, 1, 1, 0, 1])
    before, after = np.array([0.1, 0.3, 0.9, 0.95, 0.8, 0.6]), np.array([0.2, 0.35, 0.7, 0.75, 0.6, 0.55])
    series = plotting.reliability_series(y, {"before": before, "after": after}, bins=5)
    assert [s["name"] for s in series] == ["before", "after"]
    assert series[0]["ece"] == pytest.approx(ev.calibration(y, before, bins=5)["ece"])
    assert series[1]["brier"] == pytest.approx(ev.calibration(y, after, bins=5)["brier"])
    path = plotting.reliability_comparison(y, {"before": before, "after": after}, tmp_path / "r.png", bins=5)
    assert path.exists() and path.with_suffix(".pdf").exists()


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize("task,items,needle", [
    ("dy_electron", ["training.ensemble=0"], "training.ensemble must be an integer from 1"),
    ("dy_electron", ["training.ensemble=2.5"], "expects an integer"),
    ("dy_electron", ["training.calibrate=maybe"], "expects true or false"),
    ("dy_electron", ["training.calibrate=true", "data.split=(0.8, 0.2)"], "has none; give three fractions"),
    ("hcal_dqm", ["training.ensemble=2"], "training.ensemble is not available for task 'hcal_dqm'"),
    ("higgs_mae", ["training.calibrate=true"], "training.calibrate is not available for task 'higgs_mae'"),
])
def test_bad_uncertainty_settings_are_refused_before_work(task, items, needle):
    with pytest.raises(ConfigError, match=needle):
        get_task(task).preset("smoke").override(items)


def test_single_stage_tasks_accept_both_options():
    for task in ("dy_electron", "electron_photon"):
        cfg = get_task(task).preset("smoke").override(["training.ensemble=3", "training.calibrate=true"])
        assert (cfg.training.ensemble, cfg.training.calibrate) == (3, True)
    assert get_task("dy_electron").preset().training.ensemble == 1  # off by default


# ------------------------------------------------------------------ electron_photon's fit and predict
def crops(n: int, seed: int = 0):
    from kerahep.data.synthetic import electron_photon as twin

    rng = np.random.default_rng(seed)
    x = np.concatenate([twin.make_crops(rng, twin.sample_latent(rng, n, c)) for c in (0, 1)]).astype("float32")
    return x, np.repeat([0.0, 1.0], n).astype("float32")


class FakeContext:
    """What electron_photon's fit uses of a run context; ``fit`` records the stages (no training)."""

    def __init__(self, config, val):
        self.config, self.data, self.stages = config, SimpleNamespace(reader=None, val=val), []

    def build(self, fn):
        return fn()

    def fit(self, model, stage="main", label=None, **kwargs):
        self.stages.append((stage, label))


def test_electron_photon_fit_trains_seeded_members_and_calibrates_their_mean(monkeypatch):
    import tensorflow as tf

    from kerahep.tasks.electron_photon import models as ep_models

    seeds, build = [], ep_models.build_model
    monkeypatch.setattr(ep_models, "build_model", lambda cfg, seed=None: (seeds.append(seed), build(cfg, seed))[1])
    cfg = get_task("electron_photon").preset("smoke").override(["training.ensemble=2", "training.calibrate=true"])
    x, y = crops(8)
    ctx = FakeContext(cfg, tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    model = ep_models.fit(ctx).models["model"]
    assert seeds == [cfg.run.seed, cfg.run.seed + 1]
    assert ctx.stages == [("main", "member 1 of 2 (seed 42)"), ("member_1", "member 2 of 2 (seed 43)")]
    assert [member_stage(i) for i in range(3)] == ["main", "member_1", "member_2"]
    assert len(ensemble_members(model)) == 2
    probe = {k: np_of(v).ravel() for k, v in uncertainty_probe(model)(x).items()}
    assert calibration_layer(model).temperature == pytest.approx(fit_temperature(y, probe["raw"]), rel=1e-6)
    assert not np.allclose(probe["member_0"], probe["member_1"], atol=1e-4)  # other seeds, other members

    no_val = FakeContext(cfg, None)
    with pytest.raises(ConfigError, match="no validation events"):
        ep_models.fit(no_val)
    assert no_val.stages == []  # refused before any training


def test_electron_photon_predict_scores_the_ensemble_mean_and_refuses_its_embedding(tmp_path):
    import h5py

    from kerahep.prediction import predict_files
    from kerahep.tasks.electron_photon.models import build_model

    cfg = get_task("electron_photon").preset("smoke").override(["training.ensemble=2"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    ens = build_ensemble([build_model(cfg, seed) for seed in (1, 2)])
    ens.save(run / "model.keras")
    x, _ = crops(5)
    with h5py.File(tmp_path / "crops.h5", "w") as f:
        f["X"] = x
    out = predict_files(run, [tmp_path / "crops.h5"], out=tmp_path / "out", fmt="parquet")[0]
    import pandas as pd

    table = pd.read_parquet(out["output"])
    mean, spread = (np_of(v).ravel() for v in ens(x))
    np.testing.assert_allclose(table["score"].to_numpy(), mean, atol=1e-6)
    np.testing.assert_allclose(table["score_spread"].to_numpy(), spread, atol=1e-6)  # per crop, beside the mean
    assert spread.max() > 0
    with pytest.raises(KerahepError, match="no layer 'embedding'"):
        predict_files(run, [tmp_path / "crops.h5"], out=tmp_path / "emb", fmt="parquet", embedding=True)
    assert not (tmp_path / "emb").exists() or not list((tmp_path / "emb").iterdir())


# ------------------------------------------------------------------ resume skips the members done
def test_resume_skips_the_members_already_trained(tmp_path):
    import tensorflow as tf

    from kerahep.tasks.base import TaskData
    from kerahep.training.context import RunContext

    cfg = get_task("dy_electron").preset("smoke").override(["run.verbose=0", "training.ensemble=2"])
    xs = feature_dict(64, seed=2)
    y = (xs["a"][:, 0] + xs["b"][:, 0] > 0).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((xs, y)).batch(32)
    data = TaskData(train=ds, val=ds, info={"n_train": 64})
    task = get_task("dy_electron")
    first = RunContext(cfg, task, data, tmp_path, resumed=False)
    done = fit_classifier(first, tiny_dense)
    assert [s["stage"] for s in first.stages] == ["main", "member_1"]
    (tmp_path / "stages" / "member_1.weights.h5").unlink()  # killed while member 2 trained
    again = RunContext(cfg, task, data, tmp_path, resumed=True)
    resumed = fit_classifier(again, lambda seed: tiny_dense(seed + 100))  # another start: only loading gives equal weights
    assert [(s["stage"], s["seconds"] is None) for s in again.stages] == [("main", True), ("member_1", False)]
    for a, b in zip(ensemble_members(done)[0].weights, ensemble_members(resumed)[0].weights):
        np.testing.assert_array_equal(np_of(a), np_of(b))  # the first member loaded, not trained again
    assert not all(np.array_equal(np_of(a), np_of(b)) for a, b in
                   zip(ensemble_members(done)[1].weights, ensemble_members(resumed)[1].weights))  # the second trained


# ------------------------------------------------------------------ one dy_electron smoke run, both options on
OPTIONS = ("training.ensemble=2", "training.calibrate=true")


@pytest.fixture(scope="module")
def dy(smoke_run):
    """The shared run (both options on), its saved model, its data and its metrics."""
    from kerahep.saving import load_model

    shared = smoke_run("dy_electron", *OPTIONS)
    model = load_model(shared.run_dir / "model.keras")
    data = get_task("dy_electron").load_data(shared.config)
    metrics = json.loads((shared.run_dir / "metrics.json").read_text())
    return SimpleNamespace(run_dir=shared.run_dir, root=shared.root, config=shared.config, model=model, data=data,
                           metrics=metrics, test=metrics["test"])


def scored(model, dataset) -> tuple:
    """``(y, members (N, n), score, spread)``: each member alone, and the saved model's two outputs."""
    y, members = None, []
    for m in ensemble_members(model):
        y, s = ev.predict_dataset(m, dataset)
        members.append(s)
    _, out = ev.predict_dataset(model, dataset, output="all")
    return y, np.stack(members), out["output_0"], out["output_1"]


def test_saved_ensemble_is_the_calibrated_mean_of_its_members_and_their_spread(dy):
    y, members, score, spread = scored(dy.model, dy.data.test)
    assert members.shape[0] == 2 and not np.allclose(members[0], members[1], atol=1e-4)  # the members differ
    mean = members.mean(axis=0)
    _, probe = ev.predict_dataset(uncertainty_probe(dy.model), dy.data.test, output="all")
    np.testing.assert_allclose(probe["raw"], mean, atol=1e-6)  # before calibration: the members' mean
    np.testing.assert_allclose(spread, members.std(axis=0), atol=1e-6)
    cal = calibration_layer(dy.model)
    assert cal is not None and cal.temperature == dy.test["calibration"]["temperature"]
    np.testing.assert_allclose(score, sigmoid(logit(mean) / cal.temperature), rtol=1e-5, atol=1e-6)
    # the temperature is the one fitted on the validation split's ensemble mean
    yv, val_members, _, _ = scored(dy.model, dy.data.val)
    assert cal.temperature == pytest.approx(fit_temperature(yv, val_members.mean(axis=0)), rel=1e-4)


def test_report_has_the_members_aucs_the_spread_and_the_calibration_before_and_after(dy):
    y, members, score, spread = scored(dy.model, dy.data.test)
    ens, cal = dy.test["ensemble"], dy.test["calibration"]
    assert ens["n_members"] == 2 and ens["seeds"] == [dy.config.run.seed, dy.config.run.seed + 1]
    np.testing.assert_allclose(ens["members"], [ev.weighted_roc_auc(y, m) for m in members], atol=1e-6)
    assert ens["ensemble_auc"] == pytest.approx(dy.test["roc_auc"], abs=1e-9)
    assert ens["mean_spread"] == pytest.approx(float(spread.mean()), abs=1e-6)
    assert sum(ens["spread_per_score_bin"]["n"]) == len(y)
    assert cal["before"]["ece"] == pytest.approx(ev.calibration(y, members.mean(axis=0))["ece"], abs=1e-6)
    assert cal["after"] == {"ece": dy.test["ece"], "brier": dy.test["brier"]}
    assert cal["after"]["ece"] == pytest.approx(ev.calibration(y, score)["ece"], abs=1e-6)
    plots = {p.name for p in (dy.run_dir / "plots").glob("*.png")}
    assert {"reliability_calibration.png", "spread_vs_score.png", "ensemble_auc.png", "history_member_1.png"} <= plots
    assert (dy.run_dir / "history.csv").exists() and (dy.run_dir / "history_member_1.csv").exists()


def assert_same_report(got, want, atol=1e-6, where="test"):
    """Equal nested reports: same keys and strings, numbers within ``atol``."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            assert_same_report(got[k], want[k], atol, f"{where}/{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_report(g, w, atol, f"{where}/{i}")
    elif isinstance(want, (int, float)) and not isinstance(want, bool):
        assert got == pytest.approx(want, abs=atol), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def test_re_evaluation_reproduces_the_ensemble_and_calibration_report(dy, tmp_path, monkeypatch):
    from kerahep.plotting import style
    from kerahep.training import evaluate_run

    run = Path(shutil.copytree(dy.run_dir, tmp_path / "results" / "dy_electron" / dy.run_dir.name))
    # the numbers are under test here, not the figures: skip writing them (most of the time)
    monkeypatch.setattr(style, "save_figure", lambda fig, path, dpi=None: (style.plt.close(fig), Path(path))[1])
    evaluate_run(run)
    again = json.loads((run / "evaluation.json").read_text())["test"]  # as written, beside metrics.json
    for key in ("ensemble", "calibration", "roc_auc", "roc_auc_ci", "ece", "brier"):
        assert_same_report(again[key], dy.test[key], where=key)


def test_predict_scores_new_nanoaod_files_with_the_calibrated_ensemble_mean(dy, tmp_path):
    import pandas as pd

    from kerahep.data.nanoaod import prepare_dataset
    from kerahep.prediction import predict_files
    from kerahep.tasks.dy_electron.config import feature_spec

    path = dy.root / "data" / "synthetic" / "dy_electron" / "nanoaod" / "DYJetsToLL_M-50.root"
    out = predict_files(dy.run_dir, [path], out=tmp_path / "out", fmt="parquet")[0]
    table = pd.read_parquet(out["output"])
    selected = table["kerahep_selected"].to_numpy()
    got = table.loc[selected, ["kerahep_score", "kerahep_score_spread"]].to_numpy()
    assert (table.loc[~selected, "kerahep_score_spread"] == -1).all()  # as the score: -1 where not selected
    prepared = tmp_path / "prepared.csv"
    prepare_dataset([], [str(path)], prepared, spec=feature_spec(dy.config.data), progress=False)
    events = get_task("dy_electron").load_data(dy.config, paths=[str(prepared)], for_evaluation=True)
    _, _, score, spread = scored(dy.model, events.test)
    order, want = np.argsort(got[:, 0]), np.argsort(score)
    np.testing.assert_allclose(got[order, 0], score[want], atol=1e-5)
    np.testing.assert_allclose(got[order, 1], spread[want], atol=1e-5)  # each event's spread beside its score


def test_onnx_export_carries_both_outputs(dy, tmp_path):
    require_backend("onnx", "onnxruntime", "tf2onnx")
    from kerahep.export import export_run

    run = Path(shutil.copytree(dy.run_dir, tmp_path / "results" / "dy_electron" / dy.run_dir.name))
    result = export_run(run, "onnx", out=tmp_path / "model.onnx", max_events=64)
    assert result["check"]["passed"]
    assert sorted(result["check"]["per_output"]) == ["calibrated_score", "ensemble_spread"]
