"""electron_photon predict (issue 14): crop files (``X``, ``y`` optional) scored row by row, one
output row per crop in the file's order, with its ``index``, ``score`` = P(electron), ``y`` when
the file has it, and with ``--embedding`` the ``embedding`` layer's output.

The scores must be what the model gives on the same crops (``model.predict``) and what the
task's own evaluation pipeline gives (``load_data(..., for_evaluation=True)`` and
``predict_dataset``). One smoke run is trained once for the module. There are no real
electron/photon samples in ``../shared/realdata``, so every file here is the synthetic twin
or made from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from kerahep.data.synthetic import electron_photon as twin
from kerahep.errors import DataError
from kerahep.prediction import open_run, predict_files, read_provenance

ATOL = 1e-5


# ------------------------------------------------------------------ the run, trained once
@pytest.fixture(scope="module")
def smoke(smoke_run):
    """The shared smoke run of electron_photon and the twin's two crop files."""
    shared = smoke_run("electron_photon")
    folder = shared.root / "data" / "synthetic" / "electron_photon"
    return {"run_dir": shared.run_dir, "config": shared.config, "files": [folder / f for f in twin.FILES],
            "root": shared.root}


@pytest.fixture(scope="module")
def run(smoke):
    return open_run(smoke["run_dir"], batch_size=16)


def _concat(chunks) -> dict:
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _read(path, *keys):
    with h5py.File(path, "r") as f:
        return tuple(f[k][...] for k in keys)


def _model_scores(run, x):
    return np.asarray(run.models["model"].predict(x, batch_size=32, verbose=0)).reshape(-1)


def _write(path, X, y=None, chunk_rows=4):
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X, chunks=(max(1, min(chunk_rows, len(X))),) + X.shape[1:] if len(X) else None)
        if y is not None:
            f.create_dataset("y", data=y)
    return path


# --------------------------------------------------------------------------- the twin
def test_twin_files_align_one_to_one_with_labels_and_scores(smoke, run):
    for path in smoke["files"]:
        X, y = _read(path, "X", "y")
        chunks = list(run.task.predict_file(run, path))
        out = _concat(chunks)
        assert sorted(out) == ["index", "score", "y"]
        assert out["index"].dtype == np.int64 and out["score"].dtype == np.float32 and out["y"].dtype == np.float32
        np.testing.assert_array_equal(out["index"], np.arange(len(X)))
        np.testing.assert_array_equal(out["y"], y.reshape(-1))
        np.testing.assert_allclose(out["score"], _model_scores(run, X), atol=ATOL, rtol=0)
        assert ((out["score"] >= 0) & (out["score"] <= 1)).all()


def test_scores_equal_the_task_evaluation_pipeline(smoke, run):
    """The reader and loop of ``evaluate --data`` on one file give the same scores in the same order."""
    from kerahep import evaluation

    task, cfg = run.task, smoke["config"]
    path = smoke["files"][1]
    data = task.load_data(cfg, paths=[path], for_evaluation=True)
    y_eval, s_eval = evaluation.predict_dataset(run.models["model"], data.test)
    out = _concat(list(task.predict_file(run, path)))
    np.testing.assert_array_equal(out["y"], y_eval)
    np.testing.assert_allclose(out["score"], s_eval, atol=ATOL, rtol=0)


def test_unlabelled_file_has_no_label_column(smoke, run, tmp_path):
    X, = _read(smoke["files"][0], "X")
    path = _write(tmp_path / "crops_unlabelled.h5", X[:13], chunk_rows=5)
    out = _concat(list(run.task.predict_file(run, path)))
    assert sorted(out) == ["index", "score"]
    np.testing.assert_array_equal(out["index"], np.arange(13))
    np.testing.assert_allclose(out["score"], _model_scores(run, X[:13]), atol=ATOL, rtol=0)


def test_embedding_is_the_embedding_layer(smoke, tmp_path):
    from kerahep import explain

    erun = open_run(smoke["run_dir"], batch_size=16, embedding=True)
    path = smoke["files"][0]
    X, = _read(path, "X")
    out = _concat(list(erun.task.predict_file(erun, path)))
    model = erun.models["model"]
    dim = model.get_layer("embedding").output.shape[-1]
    assert out["embedding"].shape == (len(X), dim) and out["embedding"].dtype == np.float32
    np.testing.assert_allclose(out["embedding"], explain.embeddings(model, "embedding", X), atol=ATOL, rtol=1e-5)
    np.testing.assert_allclose(out["score"], _model_scores(erun, X), atol=ATOL, rtol=0)


# ----------------------------------------------------------------------- memory bound
def test_small_chunks_bound_memory_and_concatenate_to_one_chunk(smoke):
    path = smoke["files"][1]
    n = len(_read(path, "y")[0])
    small = open_run(smoke["run_dir"], batch_size=4, chunk_size=7, embedding=True)
    chunks = list(small.task.predict_file(small, path))
    assert len(chunks) > 1 and all(len(c["index"]) <= 7 for c in chunks)
    assert all({k: (v.dtype, v.shape[1:]) for k, v in c.items()} == {k: (v.dtype, v.shape[1:]) for k, v in
                                                                       chunks[0].items()} for c in chunks)
    big = open_run(smoke["run_dir"], batch_size=64, chunk_size=10 ** 6, embedding=True)
    one = list(big.task.predict_file(big, path))
    assert len(one) == 1 and len(one[0]["index"]) == n
    joined = _concat(chunks)
    for k in one[0]:
        np.testing.assert_allclose(joined[k], one[0][k], atol=ATOL, rtol=1e-5, err_msg=k)


def test_chunk_rows_keep_whole_hdf5_chunks():
    from types import SimpleNamespace

    from kerahep.tasks.electron_photon.predict import chunk_rows

    def rows(chunk_size, hdf5):
        return chunk_rows(SimpleNamespace(chunk_size=chunk_size), hdf5)

    assert rows(65536, 9960) == 9960  # the real files: one HDF5 chunk (80 MB) per read, not 4096 crops
    assert rows(65536, None) == 4096 and rows(65536, 100) == 4000  # the byte cap, in whole chunks
    assert rows(25000, 9960) == 9960 and rows(7, 4) == 4 and rows(7, 100) == 7 and rows(3, None) == 3


# ----------------------------------------------------------------------- written files
def test_written_hdf5_and_parquet_outputs(smoke, run, tmp_path):
    import pyarrow.parquet as pq

    files = smoke["files"]
    out = tmp_path / "scores"
    res = predict_files(smoke["run_dir"], files, out=out, embedding=True, batch_size=32)  # hdf5: the default
    assert [r["format"] for r in res] == ["hdf5", "hdf5"]
    for r, path in zip(res, files):
        assert Path(r["output"]) == out / (path.stem + ".h5")
        X, y = _read(path, "X", "y")
        assert r["rows"] == len(X)
        index, score, labels, emb = _read(r["output"], "index", "score", "y", "embedding")
        np.testing.assert_array_equal(index, np.arange(len(X)))
        np.testing.assert_array_equal(labels, y)
        np.testing.assert_allclose(score, _model_scores(run, X), atol=ATOL, rtol=0)
        assert emb.ndim == 2 and emb.shape[0] == len(X)
        prov = read_provenance(r["output"])
        assert prov["task"] == "electron_photon" and prov["run_id"] == smoke["run_dir"].name
        assert prov["input"]["path"] == str(path.resolve())
    res = predict_files(smoke["run_dir"], files[:1], out=out, fmt="parquet", embedding=True)
    table = pq.read_table(res[0]["output"]).to_pandas()
    dim = emb.shape[1]
    assert list(table.columns) == ["index", "score"] + [f"embedding_{i}" for i in range(dim)] + ["y"]
    h5_index, h5_score = _read(out / (files[0].stem + ".h5"), "index", "score")
    np.testing.assert_array_equal(table["index"].to_numpy(), h5_index)
    np.testing.assert_allclose(table["score"].to_numpy(), h5_score, atol=ATOL, rtol=0)
    assert json.loads(pq.read_schema(res[0]["output"]).metadata[b"kerahep"])["format"] == "parquet"


def test_empty_file_gets_its_columns(run, smoke, tmp_path):
    path = _write(tmp_path / "empty.h5", np.zeros((0, 32, 32, 2), np.float32), np.zeros(0, np.float32))
    chunks = list(run.task.predict_file(run, path))
    assert len(chunks) == 1 and {k: (v.dtype, v.shape) for k, v in chunks[0].items()} == {
        "index": (np.int64, (0,)), "score": (np.float32, (0,)), "y": (np.float32, (0,))}
    erun = open_run(smoke["run_dir"], embedding=True)
    emb = next(iter(erun.task.predict_file(erun, path)))["embedding"]
    assert emb.shape == (0, erun.models["model"].get_layer("embedding").output.shape[-1])
    res = predict_files(smoke["run_dir"], [path], out=tmp_path / "out")
    assert res[0]["rows"] == 0 and _read(res[0]["output"], "score")[0].shape == (0,)


# ---------------------------------------------------------------------------- bad input
def _bad_files(folder: Path, X):
    (folder / "text.h5").write_text("index,score\n1,2\n")
    yield folder / "text.h5", "not HDF5"
    with h5py.File(folder / "no_x.h5", "w") as f:
        f["crops"] = X[:2]
    yield folder / "no_x.h5", "no dataset 'X'"
    yield _write(folder / "shape.h5", X[:3, :16]), "'X' of shape (3, 16, 32, 2)"
    yield _write(folder / "one_channel.h5", X[:3, ..., :1]), "'X' of shape (3, 32, 32, 1)"
    yield _write(folder / "ints.h5", (X[:3] * 100).astype(np.int32)), "dtype int32"
    yield _write(folder / "labels.h5", X[:3], np.array([0.0, 2.0, 1.0], np.float32)), "'y' values"
    yield _write(folder / "short_y.h5", X[:3], np.zeros(2, np.float32)), "'y' with 2 entries"
    nan = X[:3].copy()
    nan[1, 4, 4, 0] = np.nan
    yield _write(folder / "nan_first.h5", nan), "NaN or infinite"
    yield folder / "missing.h5", "no such file"


def test_bad_input_raises_data_error_naming_the_file_before_any_chunk(smoke, run, tmp_path):
    X, = _read(smoke["files"][0], "X")
    for path, found in _bad_files(tmp_path, X):
        with pytest.raises(DataError) as err:
            next(iter(run.task.predict_file(run, path)))
        assert err.value.path == str(path) and found in err.value.found, (path.name, str(err.value))


def test_nan_in_a_later_chunk_fails_and_leaves_no_output(smoke, tmp_path):
    X, = _read(smoke["files"][0], "X")
    bad = X[:20].copy()
    bad[15, 0, 0, 1] = np.inf
    path = _write(tmp_path / "late_nan.h5", bad, chunk_rows=4)
    small = open_run(smoke["run_dir"], chunk_size=8)
    gen = small.task.predict_file(small, path)
    assert len(next(gen)["index"]) == 8
    with pytest.raises(DataError, match="first at row 15") as err:
        list(gen)
    assert err.value.path == str(path)
    out = tmp_path / "out"
    with pytest.raises(DataError):
        predict_files(smoke["run_dir"], [path], out=out, chunk_size=8)
    assert not out.exists() or not list(out.iterdir())
