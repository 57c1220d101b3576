"""dy_electron event weights: cross-section normalisation, what reaches model.fit, negative
weights in the loss and in the metrics, integer weights against repeated events, the
samples file, and a weighted run whose evaluation reproduces its report."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from helpers import assert_image_not_blank
from kerahep.errors import ConfigError, DataError
from kerahep.registry import get_task
from kerahep.tasks.base import FitResult
from kerahep.tasks.dy_electron.weights import loss_weights
from kerahep.training import RunContext

#: made-up cross-sections (pb) and luminosity (pb^-1) of the twin's samples, for the tests only
XSEC = {"DYJetsToLL_M-10to50": 20.0, "DYJetsToLL_M-50": 10.0, "ST_t-channel_top": 4.0, "ST_t-channel_antitop": 3.0,
        "ST_tW_top": 2.0, "ST_tW_antitop": 2.0, "TTJets": 8.0, "WW": 1.0, "WZ": 0.5, "ZZ": 0.25}
LUMI = 1000.0


def samples_file(path, xsec=XSEC, lumi=LUMI):
    import yaml

    doc = {"samples": dict(xsec)} if lumi is None else {"luminosity": lumi, "samples": dict(xsec)}
    path.write_text(yaml.safe_dump(doc) if path.suffix != ".json" else json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("dyw")
    task = get_task("dy_electron")
    base = [f"data.data_dir='{root / 'data'}'", "data.synthetic_events=300", "training.batch_size=64", "run.verbose=0",
            f"run.output_dir='{root / 'results'}'"]
    path = task.make_synthetic(task.preset("smoke").override(base))[0]
    return task, base, path, samples_file(root / "samples.yaml"), root


def config(twin, *overrides):
    task, base, _, _, _ = twin
    return task.preset("smoke").override(base + list(overrides))


def xsec(twin, *overrides):
    return config(twin, "data.weights='xsec'", f"data.samples_file='{twin[3]}'", *overrides)


def assert_close(found, expected, atol=1e-6, where="report"):
    """Nested dicts and lists of numbers equal to ``atol`` (inf and NaN equal themselves)."""
    if isinstance(expected, dict):
        assert sorted(found) == sorted(expected), where
        for k in expected:
            assert_close(found[k], expected[k], atol, f"{where}.{k}")
    elif isinstance(expected, (list, tuple)):
        assert len(found) == len(expected), where
        for i, (f, e) in enumerate(zip(found, expected)):
            assert_close(f, e, atol, f"{where}[{i}]")
    elif isinstance(expected, float) and np.isnan(expected):
        assert np.isnan(found), where
    else:
        assert found == pytest.approx(expected, abs=atol), where


def batch_weights(ds):
    out = [(np.asarray(b[1]), np.asarray(b[2])) for b in ds]
    assert all(len(b) == 2 for b in out)
    return np.concatenate([y for y, _ in out]), np.concatenate([w for _, w in out])


# ----------------------------------------------------------------------------- cross-sections
def test_xsec_weights_sum_to_cross_section_times_luminosity_per_sample(twin, tmp_path):
    task = twin[0]
    # every event kept: the weights of each sample sum to sigma x L
    cfg = xsec(twin, f"data.data_dir='{tmp_path / 'data'}'", "data.min_electrons=0")
    data = task.load_data(cfg)
    assert sorted(np.unique(data.samples)) == sorted(XSEC)
    for s, sigma in XSEC.items():
        assert data.weights[data.samples == s].sum() == pytest.approx(sigma * LUMI, rel=1e-9), s
    # with the preselection: sigma x L x the selected share of the generator weights read
    data = task.load_data(xsec(twin))
    report = next(iter(data.info["preparation"].values()))["samples"]
    df = pd.read_csv(twin[2])
    for s, sigma in XSEC.items():
        gw = df.loc[df["sample"] == s, "genWeight"].to_numpy(np.float32).astype(np.float64)
        expected = sigma * LUMI * gw.sum() / report[s]["sum_genWeight"]
        assert data.weights[data.samples == s].sum() == pytest.approx(expected, rel=1e-9), s
        assert data.info["weights"]["per_sample"][s]["cross_section_pb"] == sigma
    assert report["TTJets"]["sum_genWeight"] == 300  # the twin's backgrounds have genWeight 1
    # the test weights are scaled to the whole prepared sample: exact for a sample of equal weights
    te = data.split[2]
    y, w = batch_weights(data.test)
    tt = data.samples[te] == "TTJets"
    assert w[tt].sum() == pytest.approx(data.weights[data.samples == "TTJets"].sum(), rel=1e-6)
    assert data.class_weight is None and data.info["weights"]["class_weight"]  # folded into the batches


def test_a_samples_file_missing_a_sample_is_a_data_error_naming_file_and_sample(twin, tmp_path):
    task = twin[0]
    short = samples_file(tmp_path / "short.json", {k: v for k, v in XSEC.items() if k != "WZ"})
    with pytest.raises(DataError, match=r"short\.json.*cross-section.*WZ"):  # never filled in from the built-in table
        task.load_data(config(twin, "data.weights='xsec'", f"data.samples_file='{short}'"))
    nolumi = samples_file(tmp_path / "nolumi.yaml", lumi=None)
    with pytest.raises(DataError, match=r"nolumi\.yaml.*luminosity"):
        task.load_data(config(twin, "data.weights='xsec'", f"data.samples_file='{nolumi}'"))
    with pytest.raises(DataError, match=r"absent\.yaml.*no such file"):
        task.load_data(config(twin, "data.weights='xsec'", f"data.samples_file='{tmp_path / 'absent.yaml'}'"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("luminosity: 10\nsamples:\n  WZ: -1\n")
    with pytest.raises(DataError, match=r"bad\.yaml.*positive cross-section.*'WZ'"):
        task.load_data(config(twin, "data.weights='xsec'", f"data.samples_file='{bad}'"))
    with pytest.raises(ConfigError, match="data.luminosity must be >= 0"):
        config(twin, "data.weights='xsec'", "data.luminosity=-1")
    with pytest.raises(ConfigError, match="data.weights must be one of"):
        config(twin, "data.weights='lumi'")
    with pytest.raises(ConfigError, match="data.negative_weights must be one of"):
        config(twin, "data.negative_weights='flip'")


def test_without_a_samples_file_the_built_in_table_is_used(twin, tmp_path):
    from kerahep.tasks.dy_electron.weights import BUILTIN_CROSS_SECTIONS, BUILTIN_TABLE, cross_sections

    task = twin[0]
    assert set(BUILTIN_TABLE) == set(XSEC) and all(src for _, src in BUILTIN_TABLE.values())  # every value sourced
    for lumi_set, lumi in (((), 1000.0), (("data.luminosity=2256.4",), 2256.4)):
        cfg = config(twin, "data.weights='xsec'", f"data.data_dir='{tmp_path / 'data'}'", "data.min_electrons=0",
                     *lumi_set)
        data = task.load_data(cfg)
        assert data.info["weights"]["source"] == "built-in" and data.info["weights"]["luminosity_pb"] == lumi
        for s, sigma in BUILTIN_CROSS_SECTIONS.items():  # every event kept: sigma x L per sample
            assert data.weights[data.samples == s].sum() == pytest.approx(sigma * lumi, rel=1e-9), s
    assert cross_sections(["TTJets"])[0] == {"TTJets": 831.76}
    with pytest.raises(ConfigError, match=r"built-in table has no cross-section for sample\(s\) TTTo2L2Nu"):
        cross_sections(["TTJets", "TTTo2L2Nu"])
    # data.luminosity wins over a samples file's
    assert cross_sections(["WZ"], str(twin[3]), luminosity=5.0)[1] == 5.0


def test_samples_file_keys_may_be_full_dataset_names(twin, tmp_path):
    full = {("DYJetsToLL_M-50_TuneCUETP8M1_13TeV-amcatnloFXFX-pythia8" if k == "DYJetsToLL_M-50" else k): v
            for k, v in XSEC.items()}
    path = samples_file(tmp_path / "full.yaml", full)
    data = twin[0].load_data(config(twin, "data.weights='xsec'", f"data.samples_file='{path}'"))
    assert data.info["weights"]["per_sample"]["DYJetsToLL_M-50"]["cross_section_pb"] == 10.0


# ----------------------------------------------------------------------------- the loss
def test_negative_weight_modes_in_the_loss_and_not_in_the_metrics(twin):
    w = np.array([-2.0, 0.5, -0.1, 3.0])
    np.testing.assert_array_equal(loss_weights(w, "keep"), w)
    np.testing.assert_array_equal(loss_weights(w, "abs"), [2.0, 0.5, 0.1, 3.0])
    np.testing.assert_array_equal(loss_weights(w, "zero"), [0.0, 0.5, 0.0, 3.0])

    task = twin[0]
    seen = {}
    for mode in ("keep", "abs", "zero"):
        data = task.load_data(config(twin, "data.weights='genWeight'", f"data.negative_weights='{mode}'"))
        tr, va = data.split[0], data.split[1]
        gw = data.weights
        assert (gw < 0).any()  # the twin's Drell-Yan samples have negative generator weights
        y, w = batch_weights(data.train)
        assert len(w) == len(tr) and w.mean() == pytest.approx(1.0, rel=1e-5)  # scaled to mean one
        n_neg = int((gw[tr] < 0).sum())
        if mode == "keep":
            assert (w < 0).sum() == n_neg
        elif mode == "abs":
            assert (w > 0).all()
        else:
            assert (w == 0).sum() == n_neg and (w >= 0).all()
        # balanced by the sums of the loss weights: both classes weigh the same in the loss
        assert w[y == 1].sum() == pytest.approx(w[y == 0].sum(), rel=1e-4)
        # validation and test keep the sign whatever the loss does
        _, wv = batch_weights(data.val)
        assert (wv < 0).sum() == (gw[va] < 0).sum()
        _, wt = batch_weights(data.test)
        seen[mode] = wt
    np.testing.assert_array_equal(seen["keep"], seen["abs"])
    np.testing.assert_array_equal(seen["keep"], seen["zero"])


def test_without_class_balancing_the_loss_weights_are_the_event_weights_scaled(twin):
    data = twin[0].load_data(xsec(twin, "training.class_weight=False"))
    tr, va = data.split[0], data.split[1]
    scale = len(tr) / np.abs(data.weights[tr]).sum()
    _, w = batch_weights(data.train)
    np.testing.assert_allclose(np.sort(w), np.sort(np.abs(data.weights[tr]) * scale), rtol=1e-6)
    _, wv = batch_weights(data.val)
    np.testing.assert_allclose(np.sort(wv), np.sort(data.weights[va] * scale), rtol=1e-6)
    assert data.info["weights"]["class_weight"] is None and data.class_weight is None


def test_training_weights_of_a_class_summing_to_zero_are_refused(twin, tmp_path):
    df = pd.read_csv(twin[2])
    df["genWeight"] = np.where(df["target"] == 1, -1.0, 1.0)
    path = tmp_path / "negative_signal.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"negative_signal\.csv.*signal events summing to a positive value"):
        twin[0].load_data(config(twin, "data.weights='genWeight'", "data.negative_weights='zero'",
                                 f"data.paths=('{path}',)"))


def _train(twin, path, run_dir, seed=0):
    """One epoch of the smoke model on ``path`` through the run context, as training does."""
    task = twin[0]
    cfg = config(twin, "data.weights='genWeight'", f"data.paths=('{path}',)", "training.batch_size=128")
    keras.utils.set_random_seed(seed)  # before the datasets: their shuffle takes the global seed too
    data = task.load_data(cfg)
    ctx = RunContext(cfg, task, data, run_dir)
    model = task.build_model(cfg, data)
    ctx.fit(model)
    return [np.asarray(v) for v in model.get_weights()], ctx.histories["main"]


def test_the_weights_reach_model_fit(twin, tmp_path):
    df = pd.read_csv(twin[2])
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    df.to_csv(a, index=False)
    df.assign(genWeight=np.where(df["sample"] == "TTJets", 0.0, df["genWeight"])).to_csv(b, index=False)
    first, hist = _train(twin, a, tmp_path / "run_a")
    again, _ = _train(twin, a, tmp_path / "run_a_again")
    other, hist_b = _train(twin, b, tmp_path / "run_b")
    assert all(np.array_equal(x, z) for x, z in zip(first, again))  # deterministic: the same run twice
    assert not all(np.array_equal(x, z) for x, z in zip(first, other))  # a sample weighted 0 trains otherwise
    assert hist["loss"] != hist_b["loss"]
    assert {"auc", "val_auc"} <= set(hist)  # the monitored AUC is there (weighted)


# ----------------------------------------------------------------------------- the report
def _report(twin, path, tmp_path, model, *overrides):
    task = twin[0]
    cfg = config(twin, *overrides)
    data = task.load_data(cfg, paths=[str(path)], for_evaluation=True)
    return task.evaluate(RunContext(cfg, task, data, tmp_path / path.stem), FitResult(models={"model": model}), data)


def test_integer_weights_give_the_same_metrics_as_repeated_events(twin, tmp_path):
    task = twin[0]
    df = pd.read_csv(twin[2])
    k = np.random.default_rng(1).integers(1, 4, len(df))
    weighted, repeated = tmp_path / "weighted.csv", tmp_path / "repeated.csv"
    df.assign(genWeight=k.astype(float)).to_csv(weighted, index=False)
    df.loc[df.index.repeat(k)].assign(genWeight=1.0).to_csv(repeated, index=False)
    cfg = config(twin)
    keras.utils.set_random_seed(3)
    model = task.build_model(cfg, task.load_data(cfg))  # untrained: spread, continuous scores are enough
    a = _report(twin, weighted, tmp_path, model, "data.weights='genWeight'")
    b = _report(twin, repeated, tmp_path, model, "data.weights='genWeight'")  # every weight 1
    plain = _report(twin, repeated, tmp_path, model)  # data.weights=none
    assert a["weighted"] and b["weighted"] and "weighted" not in plain
    assert a["roc_auc"] == pytest.approx(b["roc_auc"], abs=1e-9) == pytest.approx(plain["roc_auc"], abs=1e-9)
    assert a["accuracy"] == pytest.approx(plain["accuracy"], abs=1e-9)
    np.testing.assert_allclose(a["confusion_matrix"], plain["confusion_matrix"], atol=1e-6)
    assert a["sum_of_weights"] == pytest.approx(b["sum_of_weights"])
    assert_close(a["working_points"], b["working_points"], atol=1e-9)
    for s, row in a["per_sample"].items():
        assert row["sum_of_weights"] == pytest.approx(b["per_sample"][s]["n"])
        assert row["weighted_selected_fraction"] == pytest.approx(b["per_sample"][s]["selected_fraction"])
        assert row["weighted_mean_score"] == pytest.approx(b["per_sample"][s]["mean_score"], rel=1e-5)
    assert a["effective_events"]["signal"] < a["sum_of_weights"]["signal"]  # unequal weights: fewer effective
    for name in ("roc.png", "scores.png", "scores_per_sample.png", "confusion.png"):
        assert_image_not_blank(tmp_path / "weighted" / "plots" / name)


def test_a_weighted_run_reports_weighted_metrics_and_evaluation_reproduces_them(twin):
    from kerahep.training import evaluate_run, train

    result = train(xsec(twin, "data.negative_weights='keep'"))
    m = result.metrics
    test = m["test"]
    assert test["weighted"] and test["event_weights"] == "xsec" and m["data"]["weights"]["mode"] == "xsec"
    assert set(test["effective_events"]) == {"background", "signal"} and test["negative_weight_fraction"] > 0
    assert test["working_points"]["at_signal_efficiency"] and test["per_sample"]["TTJets"]["sum_of_weights"] > 0
    # sums of weights of the test events estimate the prepared yields (sigma x L x selection)
    total = sum(v["sum_of_weights"] for v in m["data"]["weights"]["per_sample"].values())
    assert sum(test["sum_of_weights"].values()) == pytest.approx(total, rel=0.2)
    again = evaluate_run(result.run_dir)["test"]
    assert_close(again, test, atol=1e-6, where="test")
