"""jet_ssl task: configuration, label-fraction subsets, the whole run on a tiny twin, bad inputs."""

import json

import h5py
import keras
import numpy as np
import pytest

from helpers import assert_image_not_blank
from kerahep.errors import ConfigError, DataError
from kerahep.registry import get_task
from kerahep.tasks.jet_ssl import METHODS, JetSSLResult, nested_subsets

TINY = [
    "data.synthetic_events=24", "data.synthetic_labelled=40", "data.label_fractions=(1.0,)",
    "data.split=(0.5, 0.25, 0.25)", "data.tsne_points=12",
    "model.widths=(4, 8)", "model.blocks=(1, 1)", "model.head_hidden=(4,)", "model.projection_dim=4",
    "model.projection_hidden=8", "model.head_epochs=1", "model.downstream_steps=1", "model.downstream_max_epochs=1",
    "training.epochs=1", "training.batch_size=8", "run.verbose=0",
    "run.plot_pdf=false",  # PNGs only: the PDF beside every figure is tested elsewhere
]


def test_presets_and_bad_settings():
    task = get_task("jet_ssl")
    assert task.monitor == "val_auc" and task.monitor_mode == "max"
    assert set(task.presets) == {"default", "hybrid", "full"}
    default, full = task.preset(), task.preset("full")
    assert default.data.label_fractions == (0.1, 1.0) and default.data.synthetic_events <= 5000
    assert full.model.widths == (64, 128, 256, 512) and full.data.label_fractions == (0.01, 0.1, 1.0)
    assert task.preset("hybrid").model.name == "hybrid"
    for bad, msg in [("data.label_fractions=(0.0, 1.0)", "label_fractions"),
                     ("data.label_fractions=(0.5, 0.5)", "duplicates"),
                     ("model.name=vgg", "model.name"),
                     ("model.temperature=0", "temperature"),
                     ("model.methods=('linear',)", "model.export"),
                     ("model.blocks=(2, 2)", "model.blocks")]:
        with pytest.raises(ConfigError, match=msg):
            default.override([bad])


def test_label_fraction_subsets_are_nested_and_stratified():
    y = np.array([0] * 70 + [1] * 30)
    subs = nested_subsets(y, (0.1, 0.5, 1.0), seed=4)
    assert [len(subs[f]) for f in (0.1, 0.5, 1.0)] == [10, 50, 100]
    assert set(subs[0.1]) <= set(subs[0.5]) <= set(subs[1.0])
    assert y[subs[0.1]].sum() == 3 and y[subs[0.5]].sum() == 15
    assert len(nested_subsets([0, 0, 0, 1], (0.01,))[0.01]) == 2  # every class keeps one example


@pytest.mark.slow
def test_train_end_to_end_on_tiny_twin_then_evaluate_new_file(workdir):
    from kerahep.training import train

    task = get_task("jet_ssl")
    cfg = task.preset().override(TINY)
    result = train(cfg)
    run = result.run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["data"]["source"] == "synthetic"
    test = metrics["test"]
    for key in ("roc_auc", "accuracy", "m_mse", "m_mae", "m_r2", "pt_mse", "pt_mae", "pt_r2"):
        assert np.isfinite(test[key]), key
    # the test AUC is that of the saved model's class scores of the test jets
    from sklearn.metrics import roc_auc_score

    saved, truth, scores = keras.saving.load_model(run / "model.keras"), [], []
    for x, targets in task.load_data(cfg).test:
        truth.append(np.asarray(targets["y"]).reshape(-1))
        scores.append(np.asarray(saved.predict(x, verbose=0)["y"]).reshape(-1))
    truth, scores = np.concatenate(truth), np.concatenate(scores)
    assert test["n"] == len(truth) and set(np.unique(truth)) == {0.0, 1.0}
    assert test["roc_auc"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-6)
    table = json.loads((run / "downstream_table.json").read_text())
    assert {(r["method"], r["label_fraction"]) for r in table} == {(m, 1.0) for m in METHODS}
    assert (run / "downstream_table.csv").read_text().splitlines()[0].startswith("label_fraction,labels,method,roc_auc")
    assert set(test["comparison"]["100pct"]) >= {"frozen_minus_scratch_auc", "finetune_minus_scratch_auc"}
    plots = {p.name for p in (run / "plots").iterdir()}
    assert {"roc.png", "m_true_vs_pred.png", "pt_true_vs_pred.png", "m_resolution.png", "pt_resolution.png",
            "tsne_class.png", "tsne_mass.png", "downstream_table.png", "label_fractions.png",
            "history_pretrain.png"} <= plots
    for png in (run / "plots").glob("*.png"):
        assert_image_not_blank(png)
    for stage in ("pretrain", "linear_100pct", "frozen_100pct", "finetune_100pct", "scratch_100pct"):
        assert (run / f"history_{stage}.csv").exists(), stage

    # the saved models score raw jets: encoder -> latent, model -> class probability and GeV
    twin = workdir / "data" / "synthetic" / "jet_ssl"
    labelled = twin / "Dataset_Specific_labelled_full_only_for_2i.h5"
    with h5py.File(labelled) as f:
        x, m_true = f["jet"][:4], f["m"][:4, 0]
    model = keras.saving.load_model(run / "model.keras")
    encoder = keras.saving.load_model(run / "encoder.keras")
    out = model.predict(x, verbose=0)
    assert np.all((out["y"] >= 0) & (out["y"] <= 1))
    # GeV, not standardised units: the head ends in Rescaling(std, mean) of the training jets'
    # mass, so the output is mean + std * (the head's standardised value)
    stats = metrics["data"]["target_stats"]["100pct"]["m"]
    assert stats["mean"] > 2 * stats["std"]  # a standardised prediction (about 0) would be far below
    assert [layer.name for layer in model.layers] == ["jet", "resnet18_encoder", "frozen_heads"]
    heads = model.get_layer("frozen_heads")
    head = heads.get_layer("m")
    assert isinstance(head, keras.layers.Rescaling)
    assert float(head.scale) == pytest.approx(stats["std"], rel=1e-6)
    assert float(head.offset) == pytest.approx(stats["mean"], rel=1e-6)
    latent = model.get_layer("resnet18_encoder").predict(x, verbose=0)
    z = keras.Model(heads.inputs, head.input).predict(latent, verbose=0)
    np.testing.assert_allclose(out["m"], stats["mean"] + stats["std"] * z, rtol=1e-5, atol=1e-3)
    assert np.all(np.abs(out["m"] - stats["mean"]) < 5 * stats["std"]), (out["m"], stats)  # a barely trained head
    assert abs(float(np.mean(m_true)) - stats["mean"]) < 2 * stats["std"]  # the twin's jets: the same scale
    assert encoder.predict(x, verbose=0).shape == (4, 8)

    # training stored the rows of the models it did not save; evaluating the run again
    # gives the same report (the exported model's row scored again from model.keras)
    stored = JetSSLResult.load(run, {})
    assert {r["method"] for r in stored.rows} == {"linear", "frozen", "scratch"}  # finetune is model.keras
    assert sorted(stored.roc_scores) == ["frozen", "linear", "scratch"]
    assert all(len(s) == test["n"] for s in stored.roc_scores.values())
    assert stored.rows == result.fit_result.rows
    from kerahep.training import evaluate_run

    for p in (run / "plots").glob("*.png"):
        p.unlink()
    (run / "downstream_table.csv").unlink()
    rerun = evaluate_run(run)["test"]
    assert [(r["method"], r["labels"]) for r in rerun["table"]] == [(r["method"], r["labels"]) for r in table]
    for found, expected in zip(rerun["table"], table):
        assert found == pytest.approx(expected, abs=1e-6), expected["method"]
    assert sorted(rerun["comparison"]) == sorted(test["comparison"])
    for f, entry in test["comparison"].items():
        assert rerun["comparison"][f] == pytest.approx(entry, abs=1e-6), f
    for key in ("roc_auc", "accuracy", "m_mse", "pt_mse", "m_r2", "pt_r2"):
        assert rerun[key] == pytest.approx(test[key], abs=1e-6), key
    assert plots == {p.name for p in (run / "plots").iterdir()}
    assert (run / "downstream_table.csv").exists()

    # evaluate on "new" labelled data: every jet goes to test
    data = task.load_data(cfg, paths=[labelled], for_evaluation=True)
    assert data.train is None and data.info["n_test"] == 40 and data.independent
    from kerahep.training import RunContext

    ctx = RunContext(cfg, task, data, workdir / "eval_run")
    again = task.evaluate(ctx, task.result_type(models={"model": model, "encoder": encoder}), data)
    assert again["n"] == 40 and "table" not in again
    assert again["model_variant"] == "finetune at 100pct of the labels"
    assert_image_not_blank(workdir / "eval_run" / "plots" / "tsne_mass.png")


@pytest.fixture(scope="module")
def two_fraction_run(tmp_path_factory):
    """A tiny run at 50% and 100% of the labels, recording the target statistics each head was
    built with, the statistics and loss weights each model was compiled with, the t-SNE
    inputs, the task's data and the test jets' latents from the saved encoder."""
    import os

    from kerahep import evaluation, explain, plotting
    from kerahep.models import jet_heads
    from kerahep.tasks.jet_ssl import JetSSL
    from kerahep.training import train

    seen = {"heads": [], "compile_args": [], "compile": [], "tsne": [], "scatter": [], "data": []}
    heads_fn, args_fn, tsne_fn = jet_heads.latent_heads, jet_heads.head_compile_args, explain.tsne
    load_fn, compile_fn = JetSSL.load_data, keras.Model.compile

    def heads(latent_dim, stats, **kw):
        seen["heads"].append((kw.get("name"), stats))
        return heads_fn(latent_dim, stats, **kw)

    def compile_args(stats, regression_weight=1.0):
        seen["compile_args"].append(stats)
        return args_fn(stats, regression_weight)

    def compile_(model, *a, **kw):  # what each model was really compiled with
        seen["compile"].append((model.name, kw.get("loss_weights")))
        return compile_fn(model, *a, **kw)

    def tsne(features, **kw):
        seen["tsne"].append(np.array(features))
        return tsne_fn(features, **kw)

    def load_data(self, *a, **kw):
        seen["data"].append(load_fn(self, *a, **kw))
        return seen["data"][-1]

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("two_fractions"))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(jet_heads, "latent_heads", heads)
            mp.setattr(jet_heads, "head_compile_args", compile_args)
            mp.setattr(keras.Model, "compile", compile_)
            mp.setattr(explain, "tsne", tsne)
            mp.setattr(plotting, "embedding_scatter", lambda pts, c, path, **kw: seen["scatter"].append(np.array(c)))
            mp.setattr(JetSSL, "load_data", load_data)
            cfg = get_task("jet_ssl").preset().override(TINY + [
                "data.label_fractions=(0.5, 1.0)", "data.tsne_points=6",
                "model.export='frozen'", "model.methods=('linear', 'frozen')"])
            seen["seed"] = cfg.run.seed
            run = train(cfg)
        # the latents of the test jets as the saved encoder gives them (the twin's paths are
        # relative to this folder)
        seen["test_latents"] = evaluation.predict_dataset(run.models["encoder"], seen["data"][0].test)
    finally:
        os.chdir(cwd)
    return seen


def _stats(v):
    return float(np.mean(v)), float(np.std(v))


@pytest.mark.slow
def test_heads_at_each_label_fraction_use_that_fractions_target_statistics(two_fraction_run):
    seen = two_fraction_run
    data = seen["data"][0]
    train_t = data.train_targets
    expected = {}
    for f, sub in data.subsets.items():
        expected[f] = {"m": _stats(train_t["m"][sub]), "pt": _stats(train_t["pT"][sub])}
    half, full = expected[0.5], expected[1.0]
    assert half != full  # the test means something: 50% of the jets have other statistics
    # linear then frozen heads at 50%, then at 100%: built and compiled with their subset's statistics
    assert [n for n, _ in seen["heads"]] == ["linear_heads", "frozen_heads"] * 2
    compiled = [(n, w) for n, w in seen["compile"] if n != "simclr"]
    assert [n for n, _ in compiled] == [n for n, _ in seen["heads"]]
    assert len(seen["compile_args"]) == len(compiled)
    for (name, stats), cstats, (_, weights), f in zip(seen["heads"], seen["compile_args"], compiled,
                                                      (0.5, 0.5, 1.0, 1.0)):
        for key in ("m", "pt"):
            np.testing.assert_allclose(stats[key], expected[f][key], rtol=1e-6, err_msg=f"{name} at {f}: {key}")
            np.testing.assert_allclose(cstats[key], expected[f][key], rtol=1e-6, err_msg=f"{name} at {f}: {key}")
            # the standardised MSE: 1/std^2 of this subset (regression_weight 1)
            assert weights[key] == pytest.approx(1.0 / expected[f][key][1] ** 2, rel=1e-6), (name, f, key)
    assert data.info["target_stats"]["50pct"]["m"]["mean"] == pytest.approx(half["m"][0])


def test_target_stats_fall_back_to_the_values_scale_for_tiny_subsets():
    from kerahep.tasks.jet_ssl import target_stats

    assert target_stats([100.0, 200.0], [400.0, 600.0]) == {"m": (150.0, 50.0), "pt": (500.0, 100.0)}
    one = target_stats([150.0], [-520.0])  # one jet: no spread, scale of the value itself
    assert one == {"m": (150.0, 150.0), "pt": (-520.0, 520.0)}
    assert target_stats([0.5, 0.5], [0.0, 0.0]) == {"m": (0.5, 1.0), "pt": (0.0, 1.0)}  # at least 1 GeV
    assert target_stats([], []) == {"m": (0.0, 1.0), "pt": (0.0, 1.0)}


@pytest.mark.slow
def test_tsne_embeds_a_seeded_random_subset_of_test_jets_with_matching_labels(two_fraction_run):
    seen = two_fraction_run
    truth, z = seen["test_latents"]
    n = len(z)
    assert n == seen["data"][0].info["n_test"]
    assert n > 6  # tsne_points=6: a strict subset of the test jets
    rows = np.sort(np.random.default_rng(seen["seed"]).choice(n, 6, replace=False))
    assert list(rows) != list(range(6)) and list(rows) == sorted(rows)
    (features,) = seen["tsne"]
    np.testing.assert_array_equal(features, z[rows].astype(np.float32))
    classes, masses = seen["scatter"]
    assert list(classes) == list(np.where(truth["y"][rows] > 0.5, "top", "QCD"))
    np.testing.assert_array_equal(masses, truth["m"][rows])


def test_explain_tsne_subsamples_at_random_not_the_first_rows():
    from kerahep import explain

    f = np.repeat(np.arange(40.0)[:, None], 3, axis=1)  # row i holds the value i
    rows = np.sort(np.random.default_rng(2).choice(40, 12, replace=False))
    assert rows.max() >= 12  # not the first 12
    captured = []

    class FakeTSNE:
        def __init__(self, **kw):
            pass

        def fit_transform(self, x):
            captured.append(x)
            return x[:, :2]

    import sklearn.manifold

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sklearn.manifold, "TSNE", FakeTSNE)
        explain.tsne(f, seed=2, max_points=12)
    np.testing.assert_array_equal(captured[0][:, 0], rows.astype(np.float32))
    assert list(explain.sample_rows(40, 12, seed=2)) == list(rows)  # the rows to index labels with
    assert list(explain.sample_rows(5, 12, seed=2)) == [0, 1, 2, 3, 4]


def test_load_data_rejects_inputs_without_a_labelled_file(workdir):
    task = get_task("jet_ssl")
    unl = workdir / "unl.h5"
    with h5py.File(unl, "w") as f:
        f.create_dataset("jet", data=np.zeros((2, 125, 125, 8), np.float32))
    cfg = task.preset().override([f"data.paths=('{unl}',)"])
    with pytest.raises(DataError, match="a labelled jet file") as err:
        task.load_data(cfg)
    assert str(unl) in str(err.value)
    with pytest.raises(DataError, match="no such file"):
        task.load_data(task.preset().override([f"data.paths=('{workdir / 'absent.h5'}',)"]))


def test_comparison_is_auc_only_and_the_fraction_plot_has_auc_mass_and_pt_panels(tmp_path):
    from kerahep import plotting
    from kerahep.tasks import jet_ssl

    rows = [{"label_fraction": 1.0, "method": m, "roc_auc": a, "m_mse": 9.0, "pt_mse": 4.0}
            for m, a in (("frozen", 0.8), ("scratch", 0.7))]
    comp = jet_ssl.comparison(rows)["100pct"]
    assert set(comp) == {"frozen_minus_scratch_auc", "frozen_beats_scratch_auc"}  # AUC only
    figures = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plotting, "save_figure", lambda fig, path: figures.append(fig))
        jet_ssl.fraction_plot(rows, tmp_path / "fractions.png")
    labels = [ax.get_ylabel() for ax in figures[0].axes]
    assert labels == ["test ROC AUC", "mass MSE [GeV$^2$]", "pT MSE [GeV$^2$]"]
