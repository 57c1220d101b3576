"""higgs_mae task: presets, configuration errors, data loading modes, one end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest

from kerahep.config import Config
from kerahep.errors import ConfigError, DataError
from kerahep.registry import get_task

TINY = ["data.synthetic_events=60", "data.oracle_events=0", "training.batch_size=32", "model.dim=8", "model.depth=1",
        "model.num_heads=2", "model.decoder_dim=8", "model.head_units=(8,)", "model.recon_events=40",
        "model.gbt_max_iter=20", "run.verbose=0"]


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
    assert streamed.extras["adapt"].shape == (80, 27)
    # an independent sample for evaluate --data: every event in test
    ev = task.load_data(cfg, paths=[twin], for_evaluation=True)
    assert ev.train is None and ev.info["n_test"] == 120
    with pytest.raises(ConfigError, match="rows_train and data.rows_test must be given together"):
        task.load_data(cfg.override(["data.rows_train=(0,10)"]))
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

    from kerahep.io import load_model, read_json
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
                 "reconstruction.csv", "plots/roc.png", "plots/reconstruction.png", "plots/comparison.png"):
        assert (run / name).exists(), name
    metrics = read_json(run / "metrics.json")
    test = metrics["test"]
    assert metrics["data"]["rows"] == {"train": [0, 80], "test": [80, None]}
    assert 0.0 <= test["roc_auc"] <= 1.0 and test["n"] == 40 and "accuracy" in test
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
    # evaluate reloads the three artifacts in safe mode and reproduces the test metrics
    from kerahep.evaluation import evaluate_run

    again = evaluate_run(run)["test"]
    assert again["roc_auc"] == pytest.approx(test["roc_auc"], abs=1e-6)
    assert again["reconstruction"]["mean_pearson_r"] == pytest.approx(test["reconstruction"]["mean_pearson_r"],
                                                                     abs=1e-5)
