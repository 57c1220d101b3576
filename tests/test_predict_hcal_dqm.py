"""hcal_dqm predict: run files scored by a trained smoke run, one row per lumisection, joined
to the report (class probabilities, anomaly score, flags at training's threshold); the
written CSV and Parquet outputs; bad inputs."""

from __future__ import annotations

import dataclasses
import json
import types

import numpy as np
import pytest

from kerahep.artifacts import read_json
from kerahep.errors import DataError, KerahepError
from kerahep.models.ae import reduce_residuals
from kerahep.prediction import open_run, predict_files, read_provenance
from kerahep.registry import get_task
from kerahep.tasks.hcal_dqm import predict as hp

TASK = get_task("hcal_dqm")
RUNS = ["Run355456", "Run357479"]  # the twin's two runs: the classes, in order
COLUMNS = ["lumisection", "p_Run355456", "p_Run357479", "anomaly_score", "flag"]


@pytest.fixture(scope="module")
def smoke(smoke_run):
    """The shared smoke run of the task (``run_dir``, ``config``) and the run loaded for scoring."""
    shared = smoke_run(TASK.name)
    return shared, open_run(shared.run_dir)


def _run(smoke, **kw):
    """The smoke run loaded once, with other predict settings (``chunk_size``, ``embedding``, ...)."""
    return dataclasses.replace(smoke[1], **kw)


@pytest.fixture(scope="module")
def files(smoke):
    result, _ = smoke
    return TASK.resolve_inputs(result.config).files


def _collect(run, path):
    chunks = list(TASK.predict_file(run, path))
    assert chunks, "predict_file yielded nothing"
    for c in chunks:  # the same columns, dtypes and trailing shapes in every chunk
        assert {k: (v.dtype, v.shape[1:]) for k, v in c.items()} == {k: (v.dtype, v.shape[1:])
                                                                     for k, v in chunks[0].items()}
        assert len({len(v) for v in c.values()}) == 1
    return chunks, {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _monitoring(result):
    return read_json(result.run_dir / "metrics.json")["test"]["monitoring"]["autoencoder"]


def test_rows_align_and_scores_equal_the_models(smoke, files):
    result, _ = smoke
    run = _run(smoke, batch_size=9, chunk_size=50)
    threshold = _monitoring(result)["threshold"]
    for path in files:
        maps = np.load(path).astype(np.float32)
        _, out = _collect(run, path)
        assert list(out) == COLUMNS
        assert out["lumisection"].dtype == np.int64 and out["flag"].dtype == bool
        assert out["p_Run355456"].dtype == np.float32 and out["anomaly_score"].dtype == np.float64
        np.testing.assert_array_equal(out["lumisection"], np.arange(len(maps)))
        p = run.models["model"].predict(maps, batch_size=32, verbose=0).reshape(-1)
        np.testing.assert_allclose(out["p_Run357479"], p, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["p_Run355456"] + out["p_Run357479"], 1.0, atol=1e-6)
        residuals = run.models["autoencoder"].predict(maps, batch_size=32, verbose=0)
        want = reduce_residuals(residuals, result.config.model.anomaly_score)
        np.testing.assert_allclose(out["anomaly_score"], want, rtol=1e-5)
        np.testing.assert_array_equal(out["flag"], out["anomaly_score"] > threshold)


def test_flags_and_probabilities_match_the_report_on_its_test_lumisections(smoke, files):
    from kerahep.data import hcal

    result, _ = smoke
    run = _run(smoke, chunk_size=64)
    mon = _monitoring(result)
    data = TASK.load_data(result.config)
    run_idx, ls = hcal.split_order(data.segments[2])
    outs = [_collect(run, path)[1] for path in data.runs.paths]
    flagged = {(data.names[r], int(s)) for r, s in zip(run_idx, ls) if outs[r]["flag"][s]}
    assert mon["n_flagged"] > 0, "nothing flagged: the join of the flags is not tested"
    assert len(flagged) == mon["n_flagged"] and flagged == {tuple(f) for f in mon["flagged"]}
    # the classifier's probability of the second run on the test split, as the report's ROC AUC saw it
    from sklearn.metrics import roc_auc_score

    p = np.array([outs[r]["p_Run357479"][s] for r, s in zip(run_idx, ls)])
    metrics = read_json(result.run_dir / "metrics.json")["test"]
    assert roc_auc_score(run_idx, p) == pytest.approx(metrics["roc_auc"], abs=1e-6)


def test_threshold_is_trainings_and_recomputes_exactly(smoke):
    result, run = smoke
    mon = _monitoring(result)
    assert hp.training_threshold(run) == mon["threshold"]  # the report's value, as stored in metrics.json
    assert hp.recompute_threshold(run) == pytest.approx(mon["threshold"], rel=1e-6)
    stored = dataclasses.replace(run, result=types.SimpleNamespace(anomaly_threshold=0.5))
    assert hp.training_threshold(stored) == 0.5  # a stored field, where a later training writes one


def test_a_run_without_a_recorded_threshold_is_refused(smoke, tmp_path):
    import shutil

    result, run = smoke
    copy = tmp_path / "run"
    shutil.copytree(result.run_dir, copy)
    (copy / "metrics.json").write_text("{}")
    bare = dataclasses.replace(run, run_dir=copy)
    with pytest.raises(KerahepError, match=r"metrics.json: expected the alarm threshold training derived"):
        hp.training_threshold(bare)


def test_small_chunks_bound_memory_and_concatenate_to_one_chunk(smoke, files):
    small, big = _run(smoke, chunk_size=7), _run(smoke, chunk_size=1 << 20)
    chunks, out = _collect(small, files[0])
    whole, ref = _collect(big, files[0])
    assert len(whole) == 1 and len(chunks) == -(-len(ref["lumisection"]) // 7)
    assert max(len(c["lumisection"]) for c in chunks) <= 7
    np.testing.assert_array_equal(out["lumisection"], ref["lumisection"])
    np.testing.assert_array_equal(out["flag"], ref["flag"])
    for k in ("p_Run355456", "p_Run357479", "anomaly_score"):  # batches of 7 maps: float32 round-off only
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-6, atol=1e-7)


def test_embedding_is_the_autoencoder_latent(smoke, files):
    import keras

    result, _ = smoke
    run = _run(smoke, chunk_size=64, embedding=True)
    _, out = _collect(run, files[1])
    ae = run.models["autoencoder"]
    maps = np.load(files[1]).astype(np.float32)
    want = keras.Model(ae.input, ae.get_layer("latent").output).predict(maps, verbose=0)
    assert out["latent"].shape == (len(maps), result.config.model.ae_latent) and out["latent"].dtype == np.float32
    np.testing.assert_allclose(out["latent"], want, rtol=1e-5, atol=1e-5)


def test_written_csv_and_parquet_join_to_the_input(smoke, files, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    result, run = smoke
    _, ref = _collect(_run(smoke, chunk_size=64), files[0])
    csv = predict_files(result.run_dir, [files[0]], out=tmp_path / "csv", chunk_size=64)
    assert csv[0]["output"].endswith("Run355456_Dataset.csv") and csv[0]["rows"] == len(ref["lumisection"])
    table = pd.read_csv(csv[0]["output"], comment="#")
    assert list(table.columns) == COLUMNS
    np.testing.assert_array_equal(table["lumisection"], ref["lumisection"])
    np.testing.assert_allclose(table["p_Run355456"], ref["p_Run355456"], rtol=1e-6)
    np.testing.assert_allclose(table["anomaly_score"], ref["anomaly_score"], rtol=1e-12)
    np.testing.assert_array_equal(table["flag"].to_numpy(bool), ref["flag"])
    assert read_provenance(csv[0]["output"])["run_id"] == result.run_dir.name
    pqt = predict_files(result.run_dir, files, out=tmp_path / "pq", fmt="parquet", chunk_size=64, embedding=True)
    assert [r["rows"] for r in pqt] == [len(np.load(f, mmap_mode="r")) for f in files]
    t = pq.read_table(pqt[0]["output"])
    latent = [f"latent_{i}" for i in range(result.config.model.ae_latent)]
    assert t.column_names == COLUMNS + latent
    for k in COLUMNS:
        np.testing.assert_array_equal(t.column(k).to_numpy(), ref[k])
    assert json.loads(t.schema.metadata[b"kerahep"])["task"] == "hcal_dqm"


def test_empty_run_file_gives_the_columns_and_no_rows(smoke, files, tmp_path):
    _, run = smoke
    path = tmp_path / "Run1_Dataset.npy"
    np.save(path, np.zeros((0, *np.load(files[0], mmap_mode="r").shape[1:])))
    chunks, out = _collect(run, path)
    assert len(chunks) == 1 and list(out) == COLUMNS and len(out["lumisection"]) == 0
    assert out["flag"].dtype == bool and out["p_Run357479"].dtype == np.float32


def test_class_columns_follow_the_training_runs_as_the_report_names_them(smoke):
    _, run = smoke
    assert hp.class_columns(run) == [f"p_{n}" for n in RUNS]
    cfg = run.config.override(["data.paths=('a/Run7_Dataset.npy', 'b/Run7_Dataset.npy', 'c/other.npy')"])
    assert hp.class_columns(types.SimpleNamespace(config=cfg)) == ["p_Run7[0]", "p_Run7[1]", "p_other[2]"]


def test_probabilities_of_two_and_of_more_runs():
    x = np.zeros((4, 2, 2), np.float32)
    two = types.SimpleNamespace(score=lambda x, model: np.array([0.0, 0.25, 0.5, 1.0], np.float32))
    p = hp.probabilities(two, x, ["p_a", "p_b"])
    np.testing.assert_array_equal(p["p_b"], [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_array_equal(p["p_a"], [1.0, 0.75, 0.5, 0.0])
    soft = np.random.default_rng(0).dirichlet(np.ones(3), size=4).astype(np.float32)
    three = types.SimpleNamespace(score=lambda x, model: soft)
    p = hp.probabilities(three, x, ["p_a", "p_b", "p_c"])
    assert list(p) == ["p_a", "p_b", "p_c"] and all(v.dtype == np.float32 for v in p.values())
    np.testing.assert_array_equal(np.stack(list(p.values()), axis=1), soft)
    assert all(len(v) == 0 for v in hp.probabilities(three, x[:0], ["p_a", "p_b", "p_c"]).values())


@pytest.mark.parametrize("case,found", [
    ("missing", "no such file"), ("2-D", "shape (5, 72)"), ("other maps", "maps of shape (32, 72)"),
    ("nan", "nan at lumisection 3"), ("negative", "-1 at lumisection 2"), ("huge", "1e+39 at lumisection 5"),
    ("text", "cannot memory-map"),
    ("npz", "an .npz archive"), ("strings", "dtype <U1"),
])
def test_bad_run_files_raise_data_error_naming_the_file(smoke, files, tmp_path, case, found):
    _, run = smoke
    shape = np.load(files[0], mmap_mode="r").shape[1:]
    path = tmp_path / f"{case}.npy"
    good = np.ones((6, *shape))
    if case == "2-D":
        np.save(path, np.ones((5, 72)))
    elif case == "other maps":
        np.save(path, np.ones((5, 32, 72)))
    elif case in ("nan", "negative", "huge"):  # chunks of 2 maps: found in the chunk that holds them
        at, value = {"nan": (3, np.nan), "negative": (2, -1), "huge": (5, 1e39)}[case]
        good[at, 1, 1] = value
        np.save(path, good)
    elif case == "text":
        path.write_text("not an array\n")
    elif case == "npz":
        np.savez(path.with_suffix(""), good)
        path.with_suffix(".npz").rename(path)
    elif case == "strings":
        np.save(path, np.full((2, 3, 4), "a"))
    with pytest.raises(DataError) as err:
        list(TASK.predict_file(_run(smoke, chunk_size=2), path))
    assert err.value.path == str(path) and found in err.value.found, str(err.value)
