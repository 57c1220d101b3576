"""jet_ssl predict (issue 14): jet-image files (``jet``, targets optional) scored jet by jet, one
output row per jet in the file's order, with its ``index``, the class score (P(top)), the mass
and pT heads in GeV, the targets when the file has them, and with ``--embedding`` the latent
vector of ``encoder.keras``.

The values must be what the report computes: ``model.keras`` through ``predict_dataset`` on
the run's own test split (its heads answer in GeV), and ``model.predict`` on the same jets.
One smoke run is trained once for the module. There are no real jet samples in
``../shared/realdata``, so every file here is the synthetic twin or made from it.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from kerahep.errors import DataError, KerahepError
from kerahep.prediction import open_run, predict_files, read_provenance
from kerahep.registry import get_task

ATOL, RTOL = 1e-5, 1e-5
PRED = ("score", "m_pred", "pt_pred")
LABELS = ("y", "m", "pt")


# ------------------------------------------------------------------ the run, trained once
@pytest.fixture(scope="module")
def smoke(smoke_run):
    """The shared smoke run of jet_ssl and the twin's two files (unlabelled, labelled)."""
    shared = smoke_run("jet_ssl")
    unlabelled, labelled = get_task("jet_ssl").make_synthetic(shared.config)
    return {"run_dir": shared.run_dir, "config": shared.config, "unlabelled": Path(unlabelled),
            "labelled": Path(labelled)}


@pytest.fixture(scope="module")
def run(smoke):
    return open_run(smoke["run_dir"], batch_size=16)


def _concat(chunks) -> dict:
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _read(path, *keys):
    with h5py.File(path, "r") as f:
        return tuple(f[k][...] for k in keys)


def _model(run, x) -> dict:
    out = run.models["model"].predict(x, batch_size=16, verbose=0)
    return {"score": out["y"].reshape(-1), "m_pred": out["m"].reshape(-1), "pt_pred": out["pt"].reshape(-1)}


def _close(a, b, what):
    np.testing.assert_allclose(a, b, atol=ATOL, rtol=RTOL, err_msg=what)


def _write(path, jets, targets=None, chunk_rows=4):
    with h5py.File(path, "w") as f:
        chunks = (max(1, min(chunk_rows, len(jets))),) + jets.shape[1:] if len(jets) else None
        f.create_dataset("jet", data=jets, chunks=chunks, compression="gzip" if chunks else None)
        for k, v in (targets or {}).items():
            f.create_dataset(k, data=v)
    return path


# --------------------------------------------------------------------------- the twin
def test_labelled_twin_aligns_one_to_one_with_targets_and_model(smoke, run):
    path = smoke["labelled"]
    jets, Y, m, pT = _read(path, "jet", "Y", "m", "pT")
    out = _concat(list(run.task.predict_file(run, path)))
    assert sorted(out) == sorted(("index",) + PRED + LABELS)
    assert out["index"].dtype == np.int64 and all(out[k].dtype == np.float32 for k in PRED + LABELS)
    np.testing.assert_array_equal(out["index"], np.arange(len(jets)))
    for col, want in zip(LABELS, (Y, m, pT)):
        np.testing.assert_array_equal(out[col], want.reshape(-1), err_msg=col)
    for col, want in _model(run, jets).items():
        _close(out[col], want, col)
    assert ((out["score"] >= 0) & (out["score"] <= 1)).all()
    # GeV, not standardised: the twin's masses and transverse momenta are tens to hundreds of GeV
    assert np.median(out["pt_pred"]) > 100 and np.median(out["m_pred"]) > 1


def test_values_are_what_the_report_computes_on_the_test_split(smoke, run):
    """The report's ``predict_dataset(model, data.test, output="all")``, row by row of the file."""
    from kerahep import evaluation

    data = run.task.load_data(smoke["config"])
    truth, pred = evaluation.predict_dataset(run.models["model"], data.test, output="all")
    (info, rows), = data.label_streams["test"].sources  # one labelled file: test positions -> its rows
    assert Path(info.path) == smoke["labelled"]
    out = _concat(list(run.task.predict_file(run, smoke["labelled"])))
    for col, key in zip(PRED, ("y", "m", "pt")):
        _close(out[col][rows], pred[key], col)
    for col in LABELS:
        np.testing.assert_array_equal(out[col][rows], truth[col], err_msg=col)


def test_unlabelled_file_has_no_target_columns(smoke, run):
    path = smoke["unlabelled"]
    jets, = _read(path, "jet")
    out = _concat(list(run.task.predict_file(run, path)))
    assert sorted(out) == sorted(("index",) + PRED)
    np.testing.assert_array_equal(out["index"], np.arange(len(jets)))
    for col, want in _model(run, jets).items():
        _close(out[col], want, col)


def test_latent_is_the_encoders_output(smoke):
    erun = open_run(smoke["run_dir"], batch_size=16, embedding=True)
    path = smoke["unlabelled"]
    jets, = _read(path, "jet")
    out = _concat(list(erun.task.predict_file(erun, path)))
    encoder = erun.models["encoder"]
    want = np.asarray(encoder.predict(jets, batch_size=16, verbose=0))
    assert out["latent"].shape == want.shape == (len(jets), encoder.output.shape[-1])
    _close(out["latent"], want, "latent")


def test_latent_needs_the_encoder(smoke):
    import dataclasses

    full = open_run(smoke["run_dir"], embedding=True)
    erun = dataclasses.replace(full, models={k: full.models[k] for k in full.models if k != "encoder"})
    with pytest.raises(KerahepError, match="encoder.keras"):
        next(iter(erun.task.predict_file(erun, smoke["unlabelled"])))


# ----------------------------------------------------------------------- memory bound
def test_small_chunks_bound_memory_and_concatenate_to_one_chunk(smoke):
    path = smoke["labelled"]
    n = len(_read(path, "Y")[0])
    small = open_run(smoke["run_dir"], batch_size=4, chunk_size=6, embedding=True)
    chunks = list(small.task.predict_file(small, path))
    assert len(chunks) > 1 and all(len(c["index"]) <= 6 for c in chunks)
    assert all({k: (v.dtype, v.shape[1:]) for k, v in c.items()} == {k: (v.dtype, v.shape[1:]) for k, v in
                                                                       chunks[0].items()} for c in chunks)
    big = open_run(smoke["run_dir"], batch_size=64, chunk_size=10 ** 6, embedding=True)
    few = list(big.task.predict_file(big, path))
    assert len(few) < len(chunks)
    joined, whole = _concat(chunks), _concat(few)
    np.testing.assert_array_equal(whole["index"], np.arange(n))  # every jet once, in file order
    for k in whole:
        _close(joined[k], whole[k], k)


def test_chunk_rows_keep_whole_hdf5_chunks():
    from types import SimpleNamespace

    from kerahep.tasks.jet_ssl.predict import chunk_rows

    def rows(chunk_size, hdf5):
        return chunk_rows(SimpleNamespace(chunk_size=chunk_size), SimpleNamespace(jet_bytes=500_000, chunk_rows=hdf5))

    assert rows(65536, None) == 134 and rows(65536, 4) == 132  # 64 MiB of 500 kB jets, in whole chunks
    assert rows(65536, 1000) == 1000 and rows(6, 4) == 4 and rows(6, 32) == 6 and rows(3, None) == 3


def test_block_rows_share_the_memory_bound_among_the_blocks_in_flight():
    """The threads + 1 blocks read ahead hold at most chunk_rows jets, in whole HDF5 chunks
    (one chunk at least, even when that is more)."""
    from types import SimpleNamespace

    from kerahep.tasks.jet_ssl.predict import block_rows, chunk_rows

    def rows(chunk_size, hdf5, threads):
        run, info = SimpleNamespace(chunk_size=chunk_size), SimpleNamespace(jet_bytes=500_000, chunk_rows=hdf5)
        return block_rows(run, info, threads), chunk_rows(run, info)

    for chunk_size, hdf5, threads in [(65536, None, 2), (65536, 4, 2), (65536, 4, 3), (12, 2, 2), (6, None, 1)]:
        block, bound = rows(chunk_size, hdf5, threads)
        assert block * (threads + 1) <= bound and block % (hdf5 or 1) == 0
    assert rows(65536, None, 2)[0] == 44 and rows(65536, 4, 2)[0] == 44 and rows(12, 2, 2)[0] == 4
    assert rows(6, 32, 2)[0] == 32  # one HDF5 chunk is the least a read can be


# ----------------------------------------------------------------------- written files
def test_written_hdf5_and_parquet_outputs(smoke, run, tmp_path):
    import pyarrow.parquet as pq

    files = [smoke["unlabelled"], smoke["labelled"]]
    out = tmp_path / "scores"
    res = predict_files(smoke["run_dir"], files, out=out, embedding=True, batch_size=16)  # hdf5: the default
    for r, path in zip(res, files):
        assert r["format"] == "hdf5" and Path(r["output"]) == out / (path.stem + ".h5")
        jets, = _read(path, "jet")
        assert r["rows"] == len(jets)
        with h5py.File(r["output"], "r") as f:
            cols = {k: f[k][...] for k in f}
        assert set(cols) == {"index", "latent", *PRED} | (set(LABELS) if path == smoke["labelled"] else set())
        np.testing.assert_array_equal(cols["index"], np.arange(len(jets)))
        for col, want in _model(run, jets).items():
            _close(cols[col], want, col)
        assert cols["latent"].shape == (len(jets), run.models["encoder"].output.shape[-1])
        prov = read_provenance(r["output"])
        assert prov["task"] == "jet_ssl" and set(prov["models"]) == {"model", "encoder"}
    res = predict_files(smoke["run_dir"], [smoke["labelled"]], out=out, fmt="parquet")
    table = pq.read_table(res[0]["output"]).to_pandas()
    assert list(table.columns) == ["index", *PRED, *LABELS]
    h5 = dict(zip(("index", *PRED), _read(out / (smoke["labelled"].stem + ".h5"), "index", *PRED)))
    for col in h5:
        _close(table[col].to_numpy(), h5[col], col)


def test_empty_file_gets_its_columns(smoke, tmp_path):
    jets = np.zeros((0, 125, 125, 8), np.float32)
    targets = {k: np.zeros((0, 1), np.float32) for k in ("Y", "m", "pT")}
    path = _write(tmp_path / "empty.h5", jets, targets)
    erun = open_run(smoke["run_dir"], embedding=True)
    chunks = list(erun.task.predict_file(erun, path))
    dim = erun.models["encoder"].output.shape[-1]
    assert len(chunks) == 1
    assert {k: (v.dtype, v.shape) for k, v in chunks[0].items()} == {
        "index": (np.int64, (0,)), **{k: (np.float32, (0,)) for k in PRED + LABELS}, "latent": (np.float32, (0, dim))}
    res = predict_files(smoke["run_dir"], [path], out=tmp_path / "out")
    assert res[0]["rows"] == 0


# ---------------------------------------------------------------------------- bad input
def _bad_files(folder: Path, jets, targets):
    (folder / "text.h5").write_text("not a jet file\n")
    yield folder / "text.h5", "an unreadable file"
    with h5py.File(folder / "no_jet.h5", "w") as f:
        f["X"] = jets[:2]
    yield folder / "no_jet.h5", "keys ['X']"
    yield _write(folder / "channels.h5", jets[:2, ..., :3]), "3 channels"
    yield _write(folder / "pixels.h5", jets[:2, :64, :64]), "shape (2, 64, 64, 8)"
    yield _write(folder / "ints.h5", jets[:2].astype(np.int16)), "dtype int16"
    yield _write(folder / "no_pt.h5", jets[:3], {"Y": targets["Y"][:3], "m": targets["m"][:3]}), "missing ['pT']"
    yield _write(folder / "short_m.h5", jets[:3], {"Y": targets["Y"][:3], "m": targets["m"][:2],
                                                  "pT": targets["pT"][:3]}), "2 entries in 'm'"
    odd = {k: v[:3].copy() for k, v in targets.items()}
    odd["Y"][1] = 3.0
    yield _write(folder / "labels.h5", jets[:3], odd), "other values"
    nan = jets[:3].copy()
    nan[0, 60, 60, 3] = np.nan
    yield _write(folder / "nan_first.h5", nan), "NaN or infinity in jet 0"
    yield folder / "missing.h5", "no such file"


def test_bad_input_raises_data_error_naming_the_file_before_any_chunk(smoke, run, tmp_path):
    jets, Y, m, pT = _read(smoke["labelled"], "jet", "Y", "m", "pT")
    for path, found in _bad_files(tmp_path, jets[:3], {"Y": Y, "m": m, "pT": pT}):
        with pytest.raises(DataError) as err:
            next(iter(run.task.predict_file(run, path)))
        assert err.value.path == str(path) and found in err.value.found, (path.name, str(err.value))


def test_nan_in_a_later_chunk_fails_and_leaves_no_output(smoke, tmp_path):
    jets, = _read(smoke["unlabelled"], "jet")
    bad = jets[:12].copy()
    bad[9, 10, 10, 0] = np.inf
    path = _write(tmp_path / "late_nan.h5", bad, chunk_rows=4)
    small = open_run(smoke["run_dir"], chunk_size=8)
    gen = small.task.predict_file(small, path)
    # blocks of one HDF5 chunk (4 jets); the damaged third is read ahead, and raises when it is reached
    assert [len(next(gen)["index"]) for _ in range(2)] == [4, 4]
    with pytest.raises(DataError, match="jet 9") as err:
        list(gen)
    assert err.value.path == str(path)
    out = tmp_path / "out"
    with pytest.raises(DataError):
        predict_files(smoke["run_dir"], [path], out=out, chunk_size=8)
    assert not out.exists() or not list(out.iterdir())
