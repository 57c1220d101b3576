"""hcal_dqm task: presets and validation, end to end on the twin (MoE-ViT, monitoring), multi-class."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers import assert_image_not_blank
from kerahep.errors import ConfigError, DataError
from kerahep.registry import get_task
from kerahep.tasks.hcal_dqm import HcalInputs, HcalResult, band_baseline, occupancy, robust_threshold
from kerahep.training import RunContext, evaluate_run, train

TINY_MODEL = ["model.dim=16", "model.depth=2", "model.num_heads=2", "model.ae_hidden=64", "model.ae_latent=8"]


def _config(root, preset="default", extra=()):
    return get_task("hcal_dqm").preset(preset).override([
        f"data.data_dir='{root / 'data'}'", f"run.output_dir='{root / 'results'}'", "run.verbose=0", "run.plot_pdf=false",
        "data.synthetic_events=200", "data.anomaly_fraction=0.1", "data.adapt_samples=200",
        "training.batch_size=32", *TINY_MODEL, *extra])


def test_presets_and_validation():
    task = get_task("hcal_dqm")
    assert task.preset().model.name == "vit" and task.preset("moe_vit").model.name == "moe_vit"
    assert task.preset("hard").data.separation == 0.02 and task.preset().data.separation == 0.15
    assert task.preset().model.patch == (8, 8) and task.monitor == "val_auc"
    cfg = task.preset()
    with pytest.raises(ConfigError, match="did you mean 'moe_vit'"):
        cfg.override(["model.name=moe_vti"])
    with pytest.raises(ConfigError, match="top_k"):
        cfg.override(["model.top_k=5"])
    with pytest.raises(ConfigError, match="multiple of model.num_heads"):
        cfg.override(["model.dim=30"])
    with pytest.raises(ConfigError, match="patch_size"):
        cfg.override(["model.patch_size=(0, 8)"])
    with pytest.raises(ConfigError, match="n_runs"):
        cfg.override(["data.n_runs=1"])
    assert cfg.override(["model.patch_size=6"]).model.patch == (6, 6)
    assert "4 experts top-2" in task.describe_model(task.preset("moe_vit"))


@pytest.fixture(scope="module")
def moe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hcal_e2e")
    cfg = _config(root, "moe_vit", ["training.epochs=2", "model.ae_epochs=8", "model.moe_every=1"])
    return train(cfg), root


@pytest.mark.slow
def test_end_to_end_moe_vit_on_the_twin(moe_run):
    result, _ = moe_run
    m = result.metrics
    assert m["status"] == "complete" and m["data"]["source"] == "synthetic"
    assert m["data"]["n_test"] == 60 and m["data"]["classes"]["test"] == {"Run355456": 30, "Run357479": 30}
    test = m["test"]
    assert test["roc_auc"] > 0.9 and test["accuracy"] > 0.8  # separation 0.15: the runs differ clearly
    assert test["baseline_logreg_band_means"]["roc_auc"] > 0.9
    lo, hi = test["auc_minus_baseline_ci"]
    assert lo <= hi and test["reaches_baseline"] is (hi >= 0)
    assert test["oracle_auc_test"] == pytest.approx(1.0)
    # routing per patch and expert load per run
    for layer in ("block_0_moe", "block_1_moe"):
        r = test["routing"][layer]
        for run in ("Run355456", "Run357479"):
            assert sum(r["load"][run]) == pytest.approx(1.0, abs=1e-3)
            assert len(r["first_choice_maps"][run]) == 72  # 8 x 9 patches
    plots = {p.name for p in (result.run_dir / "plots").iterdir()}
    assert {"roc.png", "confusion.png", "attention_rollout.png", "routing_maps.png", "expert_load.png",
            "occupancy_mean.png", "occupancy_difference.png", "sample_maps.png", "monitoring.png",
            "anomaly_residuals.png"} <= plots
    for png in (result.run_dir / "plots").glob("*.png"):
        assert_image_not_blank(png)
    for name in ("model.keras", "autoencoder.keras"):
        keras.saving.load_model(result.run_dir / name)  # safe mode


@pytest.mark.slow
def test_monitoring_view_flags_the_injected_anomalies(moe_run):
    result, _ = moe_run
    mon = result.metrics["test"]["monitoring"]
    assert mon["n_injected"] >= 3
    assert mon["efficiency_at_far"] >= 0.9  # target: >= 90% flagged at a 1% false-alarm rate
    assert mon["anomaly_auc"] > 0.95
    # the threshold learnt on (contaminated) validation lumisections flags them too, and little else
    assert mon["flag_efficiency"] >= 0.9 and mon["false_alarm_rate_observed"] <= 0.05
    flagged = {tuple(f) for f in mon["autoencoder"]["flagged"]}
    truth = json.loads((result.run_dir.parents[2] / "data" / "synthetic" / "hcal_dqm" / "anomalies.json").read_text())
    injected = {(run, a["lumisection"]) for run, recs in truth["runs"].items() for a in recs}
    assert len(flagged & injected) >= 0.9 * mon["n_injected"]


@pytest.mark.slow
def test_scoring_files_as_an_independent_sample(moe_run, tmp_path):
    result, root = moe_run
    task = get_task("hcal_dqm")
    files = result.metrics["data"]["paths"]
    cfg = result.config.set("data.max_events", 80)
    data = task.load_data(cfg, paths=files, for_evaluation=True)
    assert data.train is None and data.val is None and data.info["n_test"] == 160
    out = task.evaluate(RunContext(cfg, task, data, tmp_path), result.fit_result, data)
    assert out["baseline_logreg_band_means"]["roc_auc"] is None  # nothing to train it on
    assert out["roc_auc"] > 0.9
    mon = out["monitoring"]
    assert "scored lumisections" in mon["autoencoder"]["threshold_from"]  # no validation split here
    assert mon["n_injected"] >= 4 and mon["efficiency_at_far"] >= 0.9
    third = tmp_path / "Run999_Dataset.npy"
    third.write_bytes((root / "data" / "synthetic" / "hcal_dqm" / "Run355456_Dataset.npy").read_bytes())
    with pytest.raises(DataError, match="2 run files"):  # the model knows two runs
        task.load_data(cfg, paths=files + [str(third)], for_evaluation=True)


@pytest.mark.slow
def test_evaluate_run_reproduces_the_training_report(moe_run):
    """The contract: the saved classifier and autoencoder alone give training's report again
    (routing maps, band-means baseline and monitoring included)."""
    result, _ = moe_run
    fit = result.fit_result
    assert isinstance(fit, HcalResult) and fit.classifier is result.model
    assert fit.autoencoder is result.models["autoencoder"] and HcalResult.stored_fields() == []
    again = evaluate_run(result.run_dir)["test"]
    _assert_same(again, result.metrics["test"], "test")
    assert "routing" in again and again["monitoring"]["autoencoder"]["n_flagged"] >= 1


def _assert_same(found, expected, where):
    """Equal JSON trees, numbers to 1e-6."""
    if isinstance(expected, dict):
        assert isinstance(found, dict) and sorted(found) == sorted(expected), where
        for k in expected:
            _assert_same(found[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(found, list) and len(found) == len(expected), where
        for i, (a, b) in enumerate(zip(found, expected)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, abs=1e-6, nan_ok=True), (where, found, expected)
    else:
        assert found == expected, (where, found, expected)


def _labels(data):
    return np.concatenate([np.asarray(y) for _, y in data.test])


@pytest.mark.slow
def test_scored_files_keep_the_classes_the_model_learnt(moe_run, tmp_path):
    """Files given in another order, or one run alone, are labelled by run name, not position."""
    result, root = moe_run
    task = get_task("hcal_dqm")
    files = result.metrics["data"]["paths"]  # [Run355456, Run357479]: classes 0 and 1
    cfg = result.config.set("data.max_events", 80)
    forward = task.evaluate(RunContext(cfg, task, d := task.load_data(cfg, paths=files, for_evaluation=True),
                                       tmp_path / "fwd"), result.fit_result, d)
    reverse = task.load_data(cfg, paths=files[::-1], for_evaluation=True)
    np.testing.assert_array_equal(_labels(reverse), np.repeat([1.0, 0.0], 80))  # Run357479 first, still class 1
    out = task.evaluate(RunContext(cfg, task, reverse, tmp_path / "rev"), result.fit_result, reverse)
    assert out["roc_auc"] == pytest.approx(forward["roc_auc"]) and out["roc_auc"] > 0.9
    assert out["monitoring"]["classifier"]["misassigned"] == forward["monitoring"]["classifier"]["misassigned"]
    assert list(out["classification_report"])[:2] == ["Run355456", "Run357479"]
    alone = task.load_data(cfg, paths=[files[1]], for_evaluation=True)
    np.testing.assert_array_equal(_labels(alone), np.ones(80))
    # runs the model never saw are labelled by position; a mix of known and unknown runs is refused
    new = [tmp_path / "Run901_Dataset.npy", tmp_path / "Run902_Dataset.npy"]
    for src, dst in zip(files, new):
        dst.write_bytes(open(src, "rb").read())
    np.testing.assert_array_equal(_labels(task.load_data(cfg, paths=[str(p) for p in new], for_evaluation=True)),
                                  np.repeat([0.0, 1.0], 80))
    with pytest.raises(DataError, match=r"Run901_Dataset\.npy.*trained on \(Run355456, Run357479\)"):
        task.load_data(cfg, paths=[files[0], str(new[0])], for_evaluation=True)


def test_three_runs_train_a_softmax_classifier(tmp_path, monkeypatch):
    task = get_task("hcal_dqm")
    cfg = _config(tmp_path, "default", ["data.n_runs=3", "data.synthetic_events=40", "data.n_blocks=4",
                                        "data.split=(0.5, 0.25, 0.25)"])
    data = task.load_data(cfg)
    assert data.info["runs"] == ["Run355456", "Run357479", "Run359691"]
    # no files configured: the twin, whose files make_synthetic returns (and does not rewrite)
    assert data.source == "synthetic" and task.resolve_inputs(cfg).synthetic
    assert [str(p) for p in task.make_synthetic(cfg)] == data.paths and data.twin_dir == str(Path(data.paths[0]).parent)
    assert data.info["twin"]["params"]["n_runs"] == 3 and data.names == data.info["runs"]
    x, y = next(iter(data.train))
    assert y.shape[1:] == (3,)
    model = task.build_model(cfg, data)
    task.compile(model, cfg, data, steps_per_epoch=2)
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    loss = model.compute_loss(x, y, model(x))  # the categorical loss accepts the one-hot labels
    assert np.isfinite(float(loss))
    p = keras.ops.convert_to_numpy(model(next(iter(data.test))[0]))
    assert p.shape[1:] == (3,)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert isinstance(data, HcalInputs) and data.n_classes == 3 and data.label_mode == "categorical"
    import sklearn.metrics

    scored, roc_auc_score = [], sklearn.metrics.roc_auc_score  # the baseline's scores, as it hands them on
    monkeypatch.setattr(sklearn.metrics, "roc_auc_score",
                        lambda y, s, **kw: scored.append((np.asarray(y), np.asarray(s))) or roc_auc_score(y, s, **kw))
    labels = np.repeat([0, 1, 2], 10)
    base = band_baseline(data.runs, data.segments, labels, 3, 0)
    ((y_scored, proba),) = scored
    np.testing.assert_array_equal(y_scored, labels)
    assert proba.shape == (30, 3) and np.allclose(proba.sum(axis=1), 1.0)
    # one-vs-rest, averaged over the runs: recomputed from the probabilities, one run at a time
    ovr = np.mean([roc_auc_score(labels == k, proba[:, k]) for k in range(3)])
    assert base["summary"]["roc_auc"] == pytest.approx(ovr, abs=1e-12)
    assert base["summary"]["accuracy"] == pytest.approx(np.mean(proba.argmax(axis=1) == labels))


def test_robust_threshold_ignores_anomalies_in_the_reference():
    rng = np.random.default_rng(0)
    good = rng.lognormal(0.0, 0.5, 4000)
    reference = np.concatenate([good[:2000], rng.uniform(50, 100, 100)])  # 5% anomalies, far out
    thr = robust_threshold(reference, 0.01)
    assert 0.005 < (good[2000:] > thr).mean() < 0.02  # about 1% false alarms on fresh good maps
    assert thr < np.quantile(reference, 0.99)  # a plain quantile would sit on the anomalies


def test_robust_threshold_without_spread_falls_back_to_the_quantile():
    scores = np.concatenate([np.full(900, 2.0), np.linspace(3.0, 12.0, 100)])  # MAD of 0
    thr = robust_threshold(scores, 0.05)
    assert thr == pytest.approx(np.quantile(scores, 0.95)) and (scores > thr).mean() <= 0.05


def test_paired_auc_difference_interval():
    from kerahep.evaluation import paired_auc_difference_ci

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 200)
    latent = y + rng.normal(0, 1.0, 400)
    same = paired_auc_difference_ci(y, latent, latent, n_boot=60)
    assert same == [0.0, 0.0]
    lo, hi = paired_auc_difference_ci(y, latent, latent + rng.normal(0, 2.0, 400), n_boot=100)
    assert 0 < lo < hi  # the noisier score is worse, and the paired interval says so


def test_occupancy_maps_of_one_or_two_runs(tmp_path):
    from kerahep.data import hcal

    a = np.zeros((6, 8, 10))
    a[:, 2:4] = 100.0
    np.save(tmp_path / "Run1_Dataset.npy", a)
    np.save(tmp_path / "Run2_Dataset.npy", a * 1.2)
    one = occupancy(hcal.open_runs([tmp_path / "Run1_Dataset.npy"], min_runs=1), tmp_path / "one")
    assert one["differences"] == {} and not (tmp_path / "one" / "occupancy_difference.png").exists()
    two = occupancy(hcal.open_runs([tmp_path / "Run1_Dataset.npy", tmp_path / "Run2_Dataset.npy"]),
                    tmp_path / "two")
    diff = two["differences"]["Run2-Run1"]
    assert diff["relative_difference_active"] == pytest.approx(0.2)
    assert_image_not_blank(tmp_path / "two" / "occupancy_difference.png")
