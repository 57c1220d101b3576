"""The scorer of new files (kerahep.prediction), on the toy task: one output per input in
every format, rows joined to the input, provenance, all-or-nothing on a failure, name
clashes refused, Dask outputs identical to the serial ones, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import require_backend  # skips, or fails with KERAHEP_REQUIRE_BACKENDS=1 (CI)

import toytask
from kerahep.errors import DataError, KerahepError
from kerahep.prediction import predict_files, read_provenance
from kerahep.prediction.writers import flat_columns

toytask.register()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    import os

    from kerahep.training import train

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("toyrun"))
    try:
        run_dir = train(toytask.ToyTask().preset()).run_dir.resolve()
    finally:
        os.chdir(cwd)
    return run_dir


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(25, 4)).astype(np.float32)
    b = rng.normal(size=(7, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    np.save(tmp_path / "b.y.npy", (b[:, 0] > 0).astype(np.float32))
    return tmp_path, {"a": a, "b": b}


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, comment="#")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".root":
        import uproot

        with uproot.open(path) as f:
            return pd.DataFrame(flat_columns(f["Events"].arrays(library="np")))
    import h5py

    with h5py.File(path, "r") as f:
        return pd.DataFrame(flat_columns({k: f[k][:] for k in f.keys()}))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "hdf5", "root"])
def test_every_format_joins_scores_to_the_input_rows(toy_run, inputs, fmt):
    import keras

    folder, arrays = inputs
    model = keras.saving.load_model(toy_run / "model.keras")
    res = predict_files(toy_run, [folder / "a.npy", folder / "b.npy"], out=folder / "out", fmt=fmt, chunk_size=4)
    assert [Path(r["output"]).name for r in res] == [f"a{Path(res[0]['output']).suffix}", f"b{Path(res[1]['output']).suffix}"]
    for r, name in zip(res, ("a", "b")):
        table = _read(Path(r["output"]))
        x = arrays[name]
        assert r["rows"] == len(table) == len(x)
        np.testing.assert_array_equal(table["index"].to_numpy(), np.arange(len(x)))
        np.testing.assert_allclose(table["score"].to_numpy(), model.predict(x, verbose=0).ravel(), atol=1e-6)
        assert ("label" in table) == (name == "b")  # labels copied where present, never invented
        if name == "b":
            np.testing.assert_array_equal(table["label"].to_numpy(), (x[:, 0] > 0).astype(np.float32))
        prov = read_provenance(r["output"])
        assert prov["run_id"] == toy_run.name and prov["task"] == "toy" and prov["format"] == fmt
        assert prov["input"]["path"] == str((folder / f"{name}.npy").resolve())
        assert prov["input"]["size"] == (folder / f"{name}.npy").stat().st_size
        import hashlib

        assert prov["models"]["model"]["sha256"] == hashlib.sha256((toy_run / "model.keras").read_bytes()).hexdigest()
        assert len(prov["config_sha256"]) == 64 and prov["kerahep_version"]


def test_embedding_columns_are_split_in_tables_and_kept_2d_in_hdf5(toy_run, inputs):
    import h5py

    folder, arrays = inputs
    (csv,) = predict_files(toy_run, [folder / "a.npy"], out=folder / "c", fmt="csv", embedding=True)
    table = pd.read_csv(csv["output"], comment="#")
    np.testing.assert_allclose(table[["embedding_0", "embedding_1"]].to_numpy(), arrays["a"][:, :2], rtol=1e-6)
    (h5,) = predict_files(toy_run, [folder / "a.npy"], out=folder / "h", fmt="hdf5", embedding=True)
    with h5py.File(h5["output"], "r") as f:
        assert f["embedding"].shape == (25, 2)
        assert f.attrs["run_id"] == toy_run.name


def test_an_empty_input_still_gets_its_columns(toy_run, tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), np.float32))
    (r,) = predict_files(toy_run, [tmp_path / "empty.npy"], out=tmp_path / "o", fmt="parquet")
    table = pd.read_parquet(r["output"])
    assert r["rows"] == 0 and list(table.columns) == ["index", "score"]


def test_a_failure_in_the_middle_leaves_no_partial_output(toy_run, inputs):
    folder, _ = inputs
    np.save(folder / "boom.npy", np.zeros((10, 4), np.float32))
    out = folder / "out"
    with pytest.raises(DataError, match="boom.npy.*corrupt block at row 4"):
        predict_files(toy_run, [folder / "a.npy", folder / "boom.npy"], out=out, fmt="root", chunk_size=4)
    assert sorted(p.name for p in out.iterdir()) == ["a.root"]  # the complete one stays, no .part file


def test_bad_inputs_are_refused_before_anything_is_written(toy_run, inputs):
    folder, _ = inputs
    np.save(folder / "wrong.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(DataError, match=r"wrong.npy.*shape \(n, 4\).*\(3, 5\)"):
        predict_files(toy_run, [folder / "wrong.npy"], out=folder / "w")
    assert not any((folder / "w").glob("*"))
    with pytest.raises(DataError, match="missing.npy.*no such file"):
        predict_files(toy_run, [folder / "missing.npy"], out=folder / "m")
    (folder / "sub").mkdir()
    np.save(folder / "sub" / "a.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(KerahepError, match="would both be scored into"):
        predict_files(toy_run, [folder / "a.npy", folder / "sub" / "a.npy"], out=folder / "x")
    with pytest.raises(KerahepError, match="writes its predictions as csv, parquet, hdf5, root, not 'feather'"):
        predict_files(toy_run, [folder / "a.npy"], fmt="feather")
    assert not (folder / "x").exists()


def test_dask_outputs_equal_the_serial_ones(toy_run, inputs):
    require_backend("distributed")
    folder, _ = inputs
    files = [folder / "a.npy", folder / "b.npy"]
    serial = predict_files(toy_run, files, out=folder / "serial", fmt="parquet", chunk_size=5)
    parallel = predict_files(toy_run, files, out=folder / "dask", fmt="parquet", chunk_size=5, dask=True)
    assert [Path(r["output"]).name for r in parallel] == [Path(r["output"]).name for r in serial]
    for s, p in zip(serial, parallel):
        pd.testing.assert_frame_equal(pd.read_parquet(s["output"]), pd.read_parquet(p["output"]))
        a, b = read_provenance(s["output"]), read_provenance(p["output"])
        assert {k: v for k, v in a.items() if k != "created"} == {k: v for k, v in b.items() if k != "created"}


def test_the_command_line_scores_into_the_run_by_default(toy_run, inputs, capsys):
    from kerahep.commands import main

    folder, arrays = inputs
    assert main(["predict", "--run", str(toy_run), str(folder / "a.npy"), "--format", "csv"]) == 0
    out = toy_run / "predictions" / "a.csv"
    assert len(pd.read_csv(out, comment="#")) == len(arrays["a"])
    assert json.loads(out.read_text().splitlines()[0].split(":", 1)[1])["run_id"] == toy_run.name
    assert "a.csv" in capsys.readouterr().out
    assert main(["predict", "--run", str(toy_run), str(folder / "nothing.npy")]) == 2
    assert "nothing.npy" in capsys.readouterr().err


def test_a_damaged_run_config_is_one_error_naming_it(toy_run, inputs, tmp_path, capsys):
    import shutil

    from kerahep.commands import main

    folder, _ = inputs
    broken = tmp_path / "run"
    shutil.copytree(toy_run, broken)
    (broken / "config.json").write_text("{not json")
    assert main(["predict", "--run", str(broken), str(folder / "a.npy"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "Traceback" not in err and not (tmp_path / "o").exists()
