"""electron_photon task end to end on a tiny synthetic twin: metrics, plots, re-evaluation, the
variant comparison (read-only, and its command), errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from helpers import assert_image_not_blank
from kerahep import commands
from kerahep.config import ConfigError
from kerahep.data.synthetic import electron_photon as twin
from kerahep.errors import DataError, KerahepError
from kerahep.registry import get_task
from kerahep.tasks.electron_photon import COMPARISON_COLUMNS, ElectronPhotonInputs, compare_runs
from kerahep.training import evaluate_run, train
from scripts import compare_variants

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.synthetic_events=60", "training.epochs=1", "training.steps_per_epoch=2", "training.batch_size=16",
        "model.widths=(4, 8)", "model.blocks=(1, 1)", "model.embedding_dim=8", "data.explain_samples=4",
        "data.tsne_samples=30", "run.verbose=0"]


def tiny(*extra):
    return get_task("electron_photon").preset().override(TINY + list(extra))


def _listing(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.slow
def test_train_two_variants_writes_metrics_plots_and_nothing_beside_the_runs(workdir):
    res = train(tiny())
    m = json.loads((res.run_dir / "metrics.json").read_text())
    assert m["status"] == "complete" and m["model"] == "resnet15/two_channel"
    test, data = m["test"], m["data"]
    for key in ("roc_auc", "roc_auc_ci", "accuracy", "classification_report", "confusion_matrix", "oracle_auc_test"):
        assert key in test
    assert "comparison" not in test
    assert set(test["classification_report"]) >= {"photon", "electron"}
    assert test["explanations"] == {"n_per_class": {"photon": 4, "electron": 4}, "gradcam_layer": "features"}
    assert data["source"] == "synthetic" and 0.7 < data["oracle_auc"] < 0.95  # the twin v5 oracle: about 0.92
    assert data["n_train"] + data["n_val"] + data["n_test"] == 120
    assert data["test_counts"] == {"photon": 9, "electron": 9}
    plots = {p.name for p in (res.run_dir / "plots").glob("*.png")}
    assert {"roc.png", "scores.png", "confusion.png", "tsne_embedding.png", "saliency.png", "gradcam.png",
            "gradcam_plus_plus.png", "mean_energy.png", "mean_time.png", "mean_difference.png",
            "history.png", "eff_rejection.png", "reliability.png"} == plots
    assert {p.with_suffix(".pdf").name for p in (res.run_dir / "plots").glob("*.png")} == \
        {p.name for p in (res.run_dir / "plots").glob("*.pdf")}  # every figure also as a vector PDF
    for png in (res.run_dir / "plots").glob("*.png"):
        assert_image_not_blank(png)
    task_root = workdir / "results" / "electron_photon"
    assert sorted(p.name for p in task_root.iterdir()) == sorted(["LATEST", res.run_dir.name])

    # the saved model scores raw crops like the trained one (preprocessing inside)
    loaded = keras.saving.load_model(res.run_dir / "model.keras")
    x = np.random.default_rng(0).random((3, 32, 32, 2)).astype("float32") * 0.1
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(res.model(x)),
                               rtol=1e-5, atol=1e-6)

    # re-evaluating on TensorFlow (saliency and Grad-CAM included) redraws every figure under its
    # name and gives the same test metrics; nothing is written beside the run
    for p in (res.run_dir / "plots").glob("*.png"):
        p.unlink()
    outside = sorted(p.name for p in task_root.iterdir())
    again = evaluate_run(res.run_dir)["test"]
    assert {p.name for p in (res.run_dir / "plots").glob("*.png")} == plots
    assert sorted(again) == sorted(test) and again["explanations"] == test["explanations"]
    for key in ("roc_auc", "accuracy", "oracle_auc_test", "oracle_gap"):
        assert again[key] == pytest.approx(test[key], abs=1e-6)
    np.testing.assert_allclose(again["roc_auc_ci"], test["roc_auc_ci"], atol=1e-6)
    assert again["confusion_matrix"] == test["confusion_matrix"]
    assert sorted(p.name for p in task_root.iterdir()) == outside

    res2 = train(tiny("model.variant=energy", "data.explain_samples=0", "data.tsne_samples=0"))
    assert sorted(p.name for p in task_root.iterdir()) == sorted(["LATEST", res.run_dir.name, res2.run_dir.name])
    assert not list(res2.run_dir.rglob("comparison*"))
    before = _listing(workdir)
    table = compare_runs(task_root)
    assert list(table["variant"]) == ["two_channel", "energy"]
    assert set(table["run"]) == {res.run_dir.name, res2.run_dir.name}
    assert table["roc_auc"].iloc[1] == pytest.approx(res2.metrics["test"]["roc_auc"], abs=1e-12)
    assert _listing(workdir) == before  # the comparison reads the runs and writes nothing


def test_comparison_keeps_the_newest_complete_run_per_variant_on_the_same_data(tmp_path):
    def run(name, variant, auc, status="complete", source="synthetic", stamp=0):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"task": "electron_photon", "model": {"variant": variant},
                                                   "training": {"epochs": 1}}))
        (d / "metrics.json").write_text(json.dumps({
            "task": "electron_photon", "status": status, "model": variant, "data": {"source": source, "paths": ["a"]},
            "test": {"roc_auc": auc, "roc_auc_ci": [auc - 0.01, auc + 0.01], "accuracy": 0.7, "n": 10}}))
        os.utime(d / "metrics.json", (stamp, stamp))

    assert compare_runs(tmp_path / "missing").empty
    run("r1", "two_channel", 0.70, stamp=1000)
    run("r2", "two_channel", 0.75, stamp=2000)
    run("r3", "time", 0.60, stamp=1500)
    run("r4", "energy", 0.90, status="failed", stamp=3000)
    run("r5", "energy", 0.99, source="files", stamp=500)
    (tmp_path / "LATEST").write_text("r2\n")
    (tmp_path / "not_a_run").mkdir()
    before = _listing(tmp_path)
    rows = compare_runs(tmp_path)
    assert list(rows.columns) == list(COMPARISON_COLUMNS)
    assert [(r.variant, r.run, r.roc_auc) for r in rows.itertuples()] == [("two_channel", "r2", 0.75),
                                                                          ("time", "r3", 0.6)]
    assert rows["roc_auc_low"].iloc[0] == pytest.approx(0.74) and rows["n_test"].iloc[0] == 10
    run("r6", "time", 0.65, stamp=4000)  # a newer run of a variant replaces the older one
    rows = compare_runs(tmp_path)
    assert [(r.variant, r.run) for r in rows.itertuples()] == [("two_channel", "r2"), ("time", "r6")]
    run("r7", "energy", 0.80, source="files", stamp=5000)  # the newest run is on other data: those runs only
    assert [(r.variant, r.run) for r in compare_runs(tmp_path).itertuples()] == [("energy", "r7")]
    assert _listing(tmp_path) == sorted(before + ["r6", "r6/config.json", "r6/metrics.json", "r7",
                                                  "r7/config.json", "r7/metrics.json"])


def test_compare_variants_command_prints_and_writes_only_where_told(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert commands.main(["--help"]) == 0 and "  compare-variants " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        commands.main(["compare-variants", "--help"])
    assert exc.value.code == 0 and "usage: kerahep compare-variants" in capsys.readouterr().out
    help_ = subprocess.run([sys.executable, "-m", "scripts.compare_variants", "--help"], capture_output=True,
                           text=True, cwd=REPO, timeout=300)
    assert help_.returncode == 0 and "usage: python -m scripts.compare_variants" in help_.stdout
    with pytest.raises(KerahepError, match="no complete electron_photon run"):
        compare_variants.main([])
    for name, variant, auc in (("a", "two_channel", 0.7), ("b", "dual_stream", 0.8)):
        d = tmp_path / "runs" / "electron_photon" / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"model": {"variant": variant}, "training": {"epochs": 2}}))
        (d / "metrics.json").write_text(json.dumps({
            "task": "electron_photon", "status": "complete", "model": f"resnet15/{variant}",
            "data": {"source": "synthetic", "paths": ["x"]},
            "test": {"roc_auc": auc, "roc_auc_ci": [auc - 0.1, auc + 0.1], "accuracy": 0.6, "n": 18}}))
    before = _listing(tmp_path)
    assert compare_variants.main(["--output-dir", "runs"]) == 0
    printed = capsys.readouterr().out
    assert "two_channel" in printed and "dual_stream" in printed and "0.8000" in printed
    assert _listing(tmp_path) == before  # without --out nothing is written
    assert commands.main(["compare-variants", "--output-dir", "runs"]) == 0  # kerahep compare-variants
    assert "dual_stream" in capsys.readouterr().out and _listing(tmp_path) == before
    assert compare_variants.main(["--output-dir", "runs", "--out", "tables/variants.csv"]) == 0
    assert _listing(tmp_path) == sorted(before + ["tables", "tables/variants.csv", "tables/variants.pdf",
                                                      "tables/variants.png"])
    lines = (tmp_path / "tables" / "variants.csv").read_text().splitlines()
    assert lines[0] == ",".join(COMPARISON_COLUMNS)
    assert [ln.split(",")[:2] for ln in lines[1:]] == [["two_channel", "a"], ["dual_stream", "b"]]
    with pytest.raises(KerahepError, match="--out must name a .csv"):
        compare_variants.main(["--output-dir", "runs", "--out", "variants.png"])
    assert not (tmp_path / "variants.png").exists()


def test_load_data_splits_and_evaluation_mode(workdir):
    task = get_task("electron_photon")
    cfg = tiny()
    data = task.load_data(cfg)
    assert isinstance(data, ElectronPhotonInputs)
    inputs = task.resolve_inputs(cfg)  # no files given: the twin, written once by make_synthetic
    assert inputs.synthetic and [p.name for p in inputs.files] == list(twin.FILES)
    assert [str(p) for p in inputs.files] == data.paths
    assert data.source == "synthetic" and data.info["n_val"] == 18 and data.val is not None
    assert data.test_reader is data.reader and data.test_split == "test" and data.reader.size("test") == 18
    assert data.info["oracle_auc"] == pytest.approx(twin.oracle_auc(workdir / "data" / "synthetic" / "electron_photon"))
    files = [str(p) for p in data.paths]
    ev = task.load_data(cfg, paths=files, for_evaluation=True)
    assert ev.train is None and ev.val is None and ev.source == "files" and ev.info["n_test"] == 120
    assert ev.test_reader is ev.reader and ev.reader.split_names == ("test",)
    # files scored as an independent sample are scored in full, whatever cap the run trained with
    assert task.load_data(tiny("data.max_events=10"), paths=files, for_evaluation=True).info["n_test"] == 120
    # the twin given as files is recognised: its oracle on every crop
    assert ev.info["oracle_auc_test"] == pytest.approx(ev.info["oracle_auc"])
    two = task.load_data(tiny("data.split=(0.8, 0.2)"))
    assert two.val is None and two.info["n_val"] == 0 and two.info["n_test"] == 24
    held_out = workdir / "held_out" / Path(files[0]).name  # another photon file, held out as the test set
    held_out.parent.mkdir(exist_ok=True)
    shutil.copyfile(files[0], held_out)
    held = task.load_data(tiny("data.split=(0.8, 0.2)", f"data.paths={tuple(files)}",
                               f"data.test_paths=('{held_out}',)"))
    assert held.info["n_val"] == 24 and held.info["test_counts"] == {"photon": 60, "electron": 0}
    assert held.test_reader is not held.reader and held.test_reader.paths == [held_out]
    with pytest.raises(DataError, match="both in data.paths and in data.test_paths"):  # the same file twice
        task.load_data(tiny("data.split=(0.8, 0.2)", f"data.paths={tuple(files)}",
                            f"data.test_paths=('{Path(files[0]).resolve()}',)"))
    x, y = next(iter(data.train))
    assert tuple(x.shape[1:]) == (32, 32, 2) and x.dtype == "float32" and set(np.unique(y)) <= {0.0, 1.0}


@pytest.mark.slow
def test_nan_found_while_streaming_stops_the_run_with_a_data_error(workdir):
    rows = 40
    for name, label in (("SinglePhotonPt50_IMGCROPS.hdf5", 0.0), ("SingleElectronPt50_IMGCROPS.hdf5", 1.0)):
        X = np.zeros((rows, 32, 32, 2), np.float32)
        X[:, 16, 16, 0] = 0.7
        if label == 0.0:
            X[33, 2, 2, 0] = np.nan  # not in the first chunk: found while streaming
        with h5py.File(workdir / name, "w") as f:
            f.create_dataset("X", data=X, chunks=(8, 32, 32, 2), compression="gzip")
            f.create_dataset("y", data=np.full(rows, label, np.float32))
    cfg = tiny("data.paths=('SinglePhotonPt50_IMGCROPS.hdf5', 'SingleElectronPt50_IMGCROPS.hdf5')", "data.cache=false")
    with pytest.raises(DataError, match="SinglePhotonPt50_IMGCROPS.hdf5.*NaN.*row 33"):
        train(cfg)
    metrics = next((workdir / "results" / "electron_photon").glob("*/metrics.json"))
    assert json.loads(metrics.read_text())["status"] == "failed"


def test_missing_files_are_a_data_error(workdir):
    cfg = tiny("data.paths=('nope_photon.hdf5', 'nope_electron.hdf5')")
    with pytest.raises(DataError, match="nope_photon.hdf5.*no such file"):
        get_task("electron_photon").load_data(cfg)


def test_presets_and_describe():
    task = get_task("electron_photon")
    full = task.preset("full")
    default = task.preset()
    assert full.training.epochs > default.training.epochs and full.training.batch_size > default.training.batch_size
    assert default.training.schedule == "onecycle" and task.monitor == "val_auc" and task.monitor_mode == "max"
    cfg = default.override(["model.preact=true", "model.pool=attention", "model.se=true"])
    assert task.describe_model(cfg) == "resnet15/two_channel+preact+se+attentionpool"
    with pytest.raises(ConfigError, match="unknown preset"):
        task.preset("fast")


def test_config_rejects_unknown_variant_and_bad_options():
    from kerahep.registry import get_task

    cfg = get_task("electron_photon").preset()
    assert cfg.override(["model.variant=dual_stream"]).model.variant == "dual_stream"
    with pytest.raises(ConfigError, match="did you mean 'energy'"):
        cfg.override(["model.variant=energi"])
    with pytest.raises(ConfigError, match="model.groups=3 must divide"):
        cfg.override(["model.groups=3"])
    with pytest.raises(ConfigError, match="one per stage"):
        cfg.override(["model.widths=(4, 8)"])  # refused when set, before any data are read
    with pytest.raises(ConfigError, match="model.pool"):
        cfg.override(["model.pool=sum"])
    with pytest.raises(ConfigError, match="model.erasing"):
        cfg.override(["model.erasing=1.5"])
    with pytest.raises(ConfigError, match="split"):
        cfg.override(["data.split=(0.5, 0.2)"])


def test_focal_loss_onecycle_schedule_and_clipping():
    task = get_task("electron_photon")
    cfg = tiny("training.loss=focal")
    model = task.build_model(cfg, None)
    task.compile(model, cfg, None, steps_per_epoch=10)
    assert isinstance(model.loss, keras.losses.BinaryFocalCrossentropy)
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay) and schedule.warmup_steps > 0
    assert model.optimizer.global_clipnorm == 1.0
