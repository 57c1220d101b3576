"""higgs_mae task: presets, configuration errors, data loading modes, one end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import assert_image_not_blank
from kerahep.config import Config
from kerahep.errors import ConfigError, DataError
from kerahep.registry import get_task
from kerahep.tasks.higgs_mae import HiggsResult

TINY = ["data.synthetic_events=60", "data.oracle_events=0", "training.batch_size=32", "model.dim=8", "model.depth=1",
        "model.num_heads=2", "model.decoder_dim=8", "model.head_units=(8,)", "model.recon_events=40",
        "model.gbt_max_iter=20", "run.verbose=0",
        "run.plot_pdf=false"]  # PNGs only: the PDF beside every figure is tested elsewhere


@pytest.fixture
def task():
    return get_task("higgs_mae")


def test_presets_and_their_protocols(task):
    assert task.presets[0] == "default" and task.artifacts[:2] == ("model", "encoder")
    seed = task.preset("seed")
    assert seed.data.rows_train == (0, 1_000_000) and seed.data.rows_test == (-100_000, None)
    assert seed.data.features == "low" and seed.data.streaming
    small = task.preset("realdata_small")
    assert [p.rsplit("/", 1)[-1] for p in small.data.paths] == ["binary.train", "binary.test"]
    cfg = task.preset().override(["model.mask_ratio=0.75", "model.tokenization=feature"])
    assert cfg.model.mask_ratio == 0.75 and not cfg.model.uses_pairs and task.preset().model.uses_pairs
    assert Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("override,match", [
    ("model.mask_ratio=1.0", "mask_ratio"),
    ("model.tokenization=jets", "tokenization"),
    (("model.tokenization=feature", "model.pair_features=true"), "pair_features=true needs"),
    ("model.dim=30", "multiple of model.num_heads"),
    ("data.features=high", "data.features"),
    ("data.rows_test=(0,'a')", "integers"),
    ("model.unit_circle_weight=-1", "unit_circle_weight"),
    ("model.masking=0.5", "valid model keys"),
])
def test_bad_configuration_is_refused(task, override, match):
    with pytest.raises(ConfigError, match=match):
        task.preset().override(list(override) if isinstance(override, tuple) else [override])


def test_split_modes_and_evaluation_data(task, workdir):
    cfg = task.preset().override(TINY)
    data = task.load_data(cfg)
    assert data.source == "synthetic" and data.info["n_train"] + data.info["n_val"] + data.info["n_test"] == 120
    assert data.info["twin_events_per_class"] == 60
    x, y = next(iter(data.train))
    assert x.shape[1] == 27 and set(np.unique(y.numpy())) <= {0.0, 1.0}
    # one big file streamed by row ranges: counts, and every line in exactly one range
    twin = data.paths[0]
    cfg_rows = cfg.override([f"data.paths=('{twin}',)", "data.rows_train=(0,80)", "data.rows_val=(80,100)",
                             "data.rows_test=(-20,None)", "data.chunksize=16"])
    streamed = task.load_data(cfg_rows)
    assert streamed.source == "files"
    assert (streamed.info["n_train"], streamed.info["n_val"], streamed.info["n_test"]) == (80, 20, 20)
    assert sum(len(b[1]) for b in streamed.train) == 80 and sum(len(b[1]) for b in streamed.test) == 20
    assert streamed.adapt.shape == (80, 27) and streamed.rows == {"train": (0, 80), "val": (80, 100), "test": (100, 120)}
    # an independent sample for evaluate --data: every event in test
    ev = task.load_data(cfg, paths=[twin], for_evaluation=True)
    assert ev.train is None and ev.info["n_test"] == 120 and ev.independent and not data.independent
    with pytest.raises(ConfigError, match="rows_train and data.rows_test must be given together"):
        cfg.override(["data.rows_train=(0,10)"])  # refused when set, before any data are read
    with pytest.raises(DataError, match="missing.csv: expected a HIGGS table"):
        task.load_data(cfg.override(["data.paths=('missing.csv',)"]))


@pytest.mark.realdata
def test_realdata_small_split(task, realdata):
    realdata("higgs", "binary.train")
    cfg = task.preset("realdata_small").override(["run.verbose=0"])
    data = task.load_data(cfg)
    assert data.source == "files"
    assert data.info["n_train"] + data.info["n_val"] == 7000 and data.info["n_test"] == 500
    assert data.info["train_signal"] + data.info["val_signal"] == 3716
    assert abs(data.info["n_val"] / 7000 - 0.15) < 0.01


@pytest.mark.slow
def test_end_to_end_stages_artifacts_and_tables(task, workdir):
    import keras

    from kerahep.artifacts import read_json
    from kerahep.saving import load_model
    from kerahep.training import train

    # the seed protocol's streaming path (row ranges of one file) on the twin; no validation range:
    # half the graph tracing, which dominates a run this small
    twin = task.make_synthetic(task.preset().override(TINY))[0]
    cfg = task.preset().override(TINY + [f"data.paths=('{twin}',)", "data.rows_train=(0,80)", "data.rows_test=(-40,None)",
                                         "data.chunksize=32", "data.shuffle_buffer=64", "model.pretrain_epochs=1",
                                         "training.epochs=1", "model.finetune_epochs=1", "model.compare_scratch=false",
                                         "training.steps_per_epoch=2"])
    result = train(cfg)
    run = result.run_dir
    for name in ("model.keras", "encoder.keras", "pretrainer.keras", "history.csv", "history_pretrain.csv",
                 "history_frozen.csv", "comparison.json", "comparison.csv", "reconstruction.json",
                 "reconstruction.csv"):
        assert (run / name).exists(), name
    for name in ("roc.png", "reconstruction.png", "comparison.png"):
        assert_image_not_blank(run / "plots" / name)
    metrics = read_json(run / "metrics.json")
    test = metrics["test"]
    assert metrics["data"]["rows"] == {"train": [0, 80], "test": [80, 120]}  # counted for -40: capped at the end
    # the test AUC and accuracy are those of the saved classifier's scores of the 40 test events
    from sklearn.metrics import accuracy_score, roc_auc_score

    batches = list(task.load_data(cfg).test)
    y = np.concatenate([np.asarray(b[1]).reshape(-1) for b in batches])
    scores = np.concatenate([load_model(run / "model.keras").predict(b[0], verbose=0).reshape(-1) for b in batches])
    assert test["n"] == len(y) == 40
    assert test["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-6)
    assert test["accuracy"] == pytest.approx(accuracy_score(y, scores >= test.get("threshold", 0.5)), abs=1e-9)
    assert set(test["comparison"]) >= {"pretrained_frozen", "pretrained_finetuned", "gbt_same_features", "gbt_all28"}
    assert test["comparison"]["pretrained_finetuned"]["roc_auc"] == pytest.approx(test["roc_auc"])
    rec = read_json(run / "reconstruction.json")
    assert {r["feature"] for r in rec["features"]} >= {"lepton_pT", "jet_4_btag", "missing_energy_cos_phi"}
    assert all(np.isfinite(r["mse"]) and -1 <= r["pearson_r"] <= 1 for r in rec["features"] if "mse" in r)
    # the saved classifier scores raw features like the trained one
    x, _ = next(iter(task.load_data(cfg).test))
    model = load_model(run / "model.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(result.model(x)),
                               rtol=1e-5, atol=1e-6)
    # encoder.keras is the pre-trained encoder: fine-tuning changed the model's copy, not it
    enc = load_model(run / "encoder.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(enc(x)),
                               keras.ops.convert_to_numpy(result.models["pretrainer"].encoder_model()(x)), rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(keras.ops.convert_to_numpy(enc(x)),
                           keras.ops.convert_to_numpy(result.model.get_layer("encoder")(x)))
    # what only training computes is stored: the rows and test scores of the classifiers not saved and
    # of the trees; the final classifier's stored row is the one recomputed from the model
    fields = read_json(run / "fit_result.json")["fields"]
    assert list(fields["rows"]) == ["pretrained_frozen", "pretrained_finetuned", "gbt_same_features", "gbt_all28"]
    assert fields["rows"]["pretrained_finetuned"] == test["comparison"]["pretrained_finetuned"]
    assert all(test["comparison"][k] == row for k, row in fields["rows"].items())
    assert isinstance(result.fit_result, HiggsResult)
    assert {k: len(v) for k, v in fields["test_scores"].items()} == dict.fromkeys(fields["rows"], 40)
    # evaluate reloads the three artifacts in safe mode and reproduces the report under the same names
    from kerahep.training import evaluate_run

    again = evaluate_run(run)["test"]
    assert again["roc_auc"] == pytest.approx(test["roc_auc"], abs=1e-6)
    assert list(again["comparison"]) == list(test["comparison"])
    _assert_close(again["comparison"], test["comparison"])
    assert read_json(run / "comparison.json") == again["comparison"]
    _assert_close(again["reconstruction"], test["reconstruction"])
    assert "comparison_note" not in again and not list(run.rglob("*_evaluation*"))


def _assert_close(found, expected, where="", tol=1e-6):
    """Equal JSON trees, numbers to ``tol``."""
    if isinstance(expected, dict):
        assert isinstance(found, dict) and list(found) == list(expected), where
        for k in expected:
            _assert_close(found[k], expected[k], f"{where}.{k}", tol)
    elif isinstance(expected, list):
        assert isinstance(found, list) and len(found) == len(expected), where
        for i, (a, b) in enumerate(zip(found, expected)):
            _assert_close(a, b, f"{where}[{i}]", tol)
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, abs=tol, nan_ok=True), where
    else:
        assert found == expected, where


def test_row_ranges_must_be_disjoint_and_inside_the_file(task, workdir, monkeypatch):
    from kerahep.data import higgs as hr

    base = task.preset().override(TINY)
    twin = task.make_synthetic(base)[0]  # 120 lines
    cfg = base.override([f"data.paths=('{twin}',)", "data.chunksize=16"])
    counts = []
    real_count = hr.count_rows
    monkeypatch.setattr(hr, "count_rows", lambda p: counts.append(p) or real_count(p))
    # the seed protocol's ranges on a short file: stop capped at the end, so training would hold the test lines
    seed_like = cfg.override(["data.rows_train=(0,1000000)", "data.rows_test=(-20,None)"])
    with pytest.raises(DataError, match=r"HIGGS\.csv\.gz: expected disjoint row ranges.*data\.rows_train=\(0, 1000000\) "
                                        r"and data\.rows_test=\(-20, None\), resolved on a file of 120 lines to lines "
                                        r"\[0, 120\) and \[100, 120\).*both holding lines \[100, 120\)"):
        task.load_data(seed_like)
    # a training range cut by max_events still overlaps the test lines (it used to be read silently)
    with pytest.raises(DataError, match=r"\[0, 110\) and \[100, 120\) \(training cut to data.max_events=110\)"):
        task.load_data(seed_like.override(["data.max_events=110"]))
    assert task.load_data(seed_like.override(["data.max_events=100"])).info["n_test"] == 20  # just disjoint
    # a validation range past the end is empty: an error, not an empty validation set
    with pytest.raises(DataError, match=r"HIGGS\.csv\.gz: expected more than 1000000 lines for the row range "
                                        r"\(1000000, 1100000\) \(data\.rows_val\), found 120 lines"):
        task.load_data(seed_like.override(["data.rows_val=(1000000,1100000)"]))
    # ranges without negative values are not counted unless they overlap as given
    counts.clear()
    ok = cfg.override(["data.rows_train=(0,80)", "data.rows_val=(80,100)", "data.rows_test=(100,None)"])
    assert ok.data.resolve_ranges(twin) == {"train": (0, 80), "val": (80, 100), "test": (100, None)} and not counts
    with pytest.raises(DataError, match=r"data\.rows_val=\(80, 100\) and data\.rows_test=\(90, None\).*\[90, 100\)"):
        ok.override(["data.rows_test=(90,None)"]).data.resolve_ranges(twin)
    assert len(counts) == 1
    with pytest.raises(ConfigError, match=r"data\.rows_val=\(50, 40\).*empty"):
        ok.override(["data.rows_val=(50,40)"]).data.resolve_ranges(twin)
    # the seed protocol on the 11M-line file: first 1.0M train, next 100k validation, last 100k test, one count
    counts.clear()
    monkeypatch.setattr(hr, "count_rows", lambda p: counts.append(p) or 11_000_000)
    assert task.preset("seed").data.resolve_ranges(twin) == {
        "train": (0, 1_000_000), "val": (1_000_000, 1_100_000), "test": (10_900_000, 11_000_000)}
    assert len(counts) == 1


def test_external_files_are_scored_in_full_whatever_max_events(task, workdir):
    cfg = task.preset().override(TINY + ["data.max_events=50"])
    twin = task.make_synthetic(cfg)[0]
    ev = task.load_data(cfg, paths=[twin], for_evaluation=True)
    assert ev.info["n_test"] == 120 and len(ev.y_test) == 120 and ev.raw_test.shape == (120, 28)
    assert sum(len(b[1]) for b in ev.test) == 120


def test_evaluate_reports_the_stored_rows_and_recomputes_the_final_one(task, workdir, caplog):
    from kerahep.artifacts import read_json, read_table
    from kerahep.evaluation import predict_dataset
    from kerahep.tasks.higgs_mae.stages import comparison_row
    from kerahep.training import RunContext

    cfg = task.preset().override(TINY + ["model.compare_gbt=false"])
    data = task.load_data(cfg)
    models = {"model": task.build_model(cfg, data), "pretrainer": task.build_autoencoder(cfg, data)}
    y, score = predict_dataset(models["model"], data.test)
    rng = np.random.default_rng(0)
    other = {name: rng.uniform(size=len(y)) for name in ("pretrained_frozen", "scratch")}
    trained = HiggsResult(models=models)
    trained.add("pretrained_frozen", comparison_row(y, other["pretrained_frozen"], 1), y, other["pretrained_frozen"])
    # a stale final row: the report recomputes it from the model (and warns that it differs)
    trained.add("pretrained_finetuned", {"roc_auc": 0.99, "roc_auc_ci": [0.98, 1.0], "accuracy": 1.0, "n": 3,
                                         "features": "low (27)"}, y, score)
    trained.add("scratch", comparison_row(y, other["scratch"], 1), y, other["scratch"])
    run = workdir / "run"
    run.mkdir()
    trained.save(run)
    result = HiggsResult.load(run, models)
    assert result.rows == trained.rows and result.test_labels.tolist() == y.tolist()
    np.testing.assert_array_equal(result.test_scores["scratch"], other["scratch"])
    with caplog.at_level("WARNING", logger="kerahep"):
        report = task.evaluate(RunContext(cfg, task, data, run), result, data)
    assert "not those of training" in caplog.text
    rows = report["comparison"]
    assert list(rows) == ["pretrained_frozen", "pretrained_finetuned", "scratch"]
    assert rows["pretrained_frozen"] == trained.rows["pretrained_frozen"] and rows["scratch"] == trained.rows["scratch"]
    assert rows["pretrained_finetuned"] == comparison_row(y, score, cfg.run.seed, "low (27)")
    assert rows["pretrained_finetuned"]["roc_auc"] == pytest.approx(report["roc_auc"])
    assert "comparison_note" not in report and read_json(run / "comparison.json") == rows
    table = read_table(run / "comparison.csv")
    assert table["model"].tolist() == list(rows) and table["n"].tolist() == [len(y)] * 3
    assert table["roc_auc"].tolist() == pytest.approx([r["roc_auc"] for r in rows.values()], abs=1e-12)
    assert read_json(run / "reconstruction.json")["events"] == report["reconstruction"]["events"]
    assert (run / "reconstruction.csv").exists()
    for name in ("roc.png", "comparison.png", "reconstruction.png", "scores.png", "confusion.png"):
        assert_image_not_blank(run / "plots" / name)
    assert not list(run.rglob("*_evaluation*"))
    # the result as training hands it over gives the same report
    assert task.evaluate(RunContext(cfg, task, data, run), trained, data)["comparison"] == rows
    # an independent sample: the stored rows are about other events; the final classifier alone, said so
    ev = task.load_data(cfg, paths=[data.paths[0]], for_evaluation=True)
    ext = run / "external" / "x"
    external = task.evaluate(RunContext(cfg, task, ev, ext), result, ev)
    assert list(external["comparison"]) == ["pretrained_finetuned"] and external["comparison"]["pretrained_finetuned"]["n"] == 120
    assert "independent sample" in external["comparison_note"]
    assert read_json(ext / "comparison.json") == external["comparison"]
    assert_image_not_blank(ext / "plots" / "roc.png")
    # a run without stored rows (made before they were stored): the final classifier alone, said so
    bare = task.evaluate(RunContext(cfg, task, data, workdir / "bare"), HiggsResult(models=models), data)
    assert list(bare["comparison"]) == ["pretrained_finetuned"] and "stored no training comparison" in bare["comparison_note"]
