"""dy_electron predict (issue 14): NanoAOD files scored directly, one output row per entry of
their ``Events`` tree, in order, with the entry's run, luminosityBlock and event.

The scores of the selected events must be what the model gives on the same events after
``prepare_dataset`` and the task's own data pipeline (``load_data(..., for_evaluation=True)``
and ``predict_dataset``), joined per (run, luminosityBlock, event); the events failing the
preselection get -1. One smoke run is trained once for the module.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import require_backend  # skips, or fails with KERAHEP_REQUIRE_BACKENDS=1 (CI)

from kerahep.data.nanoaod import FeatureSpec, inspect_file, preselection_mask, prepare_dataset
from kerahep.errors import DataError
from kerahep.prediction import open_run, predict_files, read_provenance
from kerahep.registry import get_task
from kerahep.tasks.dy_electron.config import feature_spec
from kerahep.tasks.dy_electron.predict import COLUMNS, NOT_SELECTED, SCORE, SELECTED

ATOL = 1e-5
IDS = ("run", "luminosityBlock", "event")
REAL = ("nano_dy.root", "nano_tt_v12.root", "nanoAOD_2015_CMS_Open_Data_ttbar.root")


# ------------------------------------------------------------------ the run, trained once
@pytest.fixture(scope="module")
def smoke(smoke_run):
    """The shared smoke run of dy_electron and the NanoAOD twin files it was trained on."""
    shared = smoke_run("dy_electron")
    root = shared.root
    twin = root / "data" / "synthetic" / "dy_electron" / "nanoaod"
    return {"run_dir": shared.run_dir, "config": shared.config, "task": get_task("dy_electron"), "twin": twin,
            "root": root}


@pytest.fixture(scope="module")
def run(smoke):
    return open_run(smoke["run_dir"])


# ------------------------------------------------------------------ helpers
def predict(run, path) -> dict:
    chunks = list(run.task.predict_file(run, path))
    assert chunks, "predict_file yielded no chunk"
    check_chunks(chunks)
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def check_chunks(chunks):
    first = chunks[0]
    assert tuple(first) == COLUMNS
    for c in chunks:
        assert tuple(c) == COLUMNS
        assert {k: v.dtype for k, v in c.items()} == {k: v.dtype for k, v in first.items()}
        assert len({len(v) for v in c.values()}) == 1
        assert all(v.ndim == 1 for v in c.values())
    assert first[SCORE].dtype == np.float32 and first[SELECTED].dtype == np.bool_


def file_branches(path, names) -> dict:
    import uproot

    with uproot.open(path) as f:
        return f["Events"].arrays(list(names), library="np")


def expected_scores(smoke, run, files, tmp_path, name="prepared") -> dict:
    """{(run, lumi, event): score} of ``files`` through prepare_dataset and the task's pipeline."""
    from kerahep.evaluation import predict_dataset
    from kerahep.data.nanoaod import load_prepared

    cfg = smoke["config"]
    out = tmp_path / f"{name}.csv"
    prepare_dataset([], list(map(str, files)), out, spec=feature_spec(cfg.data), progress=False)
    data = smoke["task"].load_data(cfg, paths=[str(out)], for_evaluation=True)
    assert list(data.split[2]) == list(range(len(data.y)))  # the test split is the file, in order
    _, scores = predict_dataset(run.models["model"], data.test)
    df = load_prepared(out)
    keys = list(zip(*(df[c].to_numpy().astype(np.uint64) for c in IDS)))
    assert len(set(keys)) == len(keys), "the prepared events' identifiers are not unique"
    return dict(zip(keys, scores))


def check_join(out: dict, path, want: dict):
    """One row per entry, in order, with the file's identifiers; scores as the prepared pipeline."""
    ids = file_branches(path, IDS)
    n = len(ids["event"])
    assert len(out[SCORE]) == n
    for k in IDS:
        np.testing.assert_array_equal(out[k], ids[k])
        assert out[k].dtype == ids[k].dtype.newbyteorder("=")
    sel = out[SELECTED]
    np.testing.assert_array_equal(out[SCORE][~sel], NOT_SELECTED)
    assert ((out[SCORE][sel] >= 0) & (out[SCORE][sel] <= 1)).all()
    got = {tuple(int(out[k][i]) for k in IDS): float(out[SCORE][i]) for i in np.flatnonzero(sel)}
    assert set(got) == set(want), "the selected events are not the prepared ones"
    keys = sorted(want)
    np.testing.assert_allclose([got[k] for k in keys], [want[k] for k in keys], rtol=0, atol=ATOL)


# ------------------------------------------------------------------ synthetic twin
@pytest.mark.parametrize("sample", ["DYJetsToLL_M-50", "TTJets"])
def test_twin_file_rows_align_and_scores_equal_the_prepared_pipeline(smoke, run, sample, tmp_path):
    path = smoke["twin"] / f"{sample}.root"
    out = predict(run, path)
    check_join(out, path, expected_scores(smoke, run, [path], tmp_path))
    sel = out[SELECTED]
    assert 0 < sel.sum() < len(sel), "the twin should have events on both sides of the preselection"
    # the preselection is the reader's own
    import uproot

    with uproot.open(path) as f:
        ev = f["Events"].arrays(["Electron_pt", "Electron_eta"], library="ak", how=dict)
    np.testing.assert_array_equal(sel, preselection_mask(ev, feature_spec(smoke["config"].data)))


def test_small_chunks_bound_memory_and_give_the_same_rows(smoke, tmp_path):
    path = smoke["twin"] / "DYJetsToLL_M-10to50.root"
    n = inspect_file(path, FeatureSpec()).num_entries
    small = open_run(smoke["run_dir"], chunk_size=7, batch_size=5)
    chunks = list(small.task.predict_file(small, path))
    check_chunks(chunks)
    assert max(len(c[SCORE]) for c in chunks) <= 7
    assert len(chunks) == math.ceil(n / 7)
    whole = list(small.task.predict_file(open_run(smoke["run_dir"], chunk_size=10 ** 6), path))
    assert len(whole) == 1 and len(whole[0][SCORE]) == n
    for k in COLUMNS:
        got = np.concatenate([c[k] for c in chunks])
        if k == SCORE:
            np.testing.assert_allclose(got, whole[0][k], rtol=0, atol=ATOL)
        else:
            np.testing.assert_array_equal(got, whole[0][k])


# ------------------------------------------------------------------ real NanoAOD
@pytest.mark.realdata
@pytest.mark.parametrize("name", REAL)
def test_real_nanoaod_rows_align_and_scores_equal_the_prepared_pipeline(smoke, run, realdata, name, tmp_path):
    path = realdata("nanoaod", name)
    spec = feature_spec(smoke["config"].data)
    required, _ = spec.branches()
    import uproot

    with uproot.open(path) as f:
        absent = [b for b in required if b not in f["Events"].keys()]
    if absent:  # then the test is that predict names the branch and the file, as prepare does
        with pytest.raises(DataError, match=rf"{name}.*{absent[0]}"):
            next(iter(run.task.predict_file(run, path)))
        return
    out = predict(run, path)
    check_join(out, path, expected_scores(smoke, run, [path], tmp_path))
    assert out[SELECTED].any()


# ------------------------------------------------------------------ bad input
def _write_tree(path, drop=(), n=5, tree="Events"):
    """A small NanoAOD-like ROOT file (NanoAOD's flat branch names) without the branches ``drop``."""
    import awkward as ak
    import uproot

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, n)
    ele = {f: ak.unflatten(rng.uniform(5, 60, counts.sum()).astype(np.float32), counts)
           for f in ("pt", "eta", "phi", "miniPFRelIso_all", "miniPFRelIso_chg", "dz", "dxy", "ip3d")}
    ele["charge"] = ak.unflatten(rng.choice([-1, 1], counts.sum()).astype(np.int32), counts)
    jets = {f: ak.unflatten(rng.uniform(0.1, 2, 2 * n).astype(np.float32), np.full(n, 2))
            for f in ("pt", "eta", "phi", "btagDeepFlavB")}
    data = {"run": np.ones(n, np.uint32), "luminosityBlock": np.full(n, 3, np.uint32),
            "event": np.arange(n, dtype=np.uint64) + 100, "Electron": ak.zip(ele), "Jet": ak.zip(jets),
            "MET_pt": np.full(n, 10.0, np.float32)}
    for d in drop:
        data.pop(d)
    types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
    with uproot.recreate(path) as f:
        t = f.mktree(tree, types, counter_name=lambda c: "n" + c, field_name=lambda outer, inner: f"{outer}_{inner}")
        if n:
            t.extend(data)
    return path


@pytest.mark.parametrize("branch", IDS)
def test_a_file_without_an_event_identifier_is_refused_naming_it(run, tmp_path, branch):
    path = _write_tree(tmp_path / f"no_{branch}.root", drop=[branch])
    gen = run.task.predict_file(run, path)
    with pytest.raises(DataError, match=rf"no_{branch}\.root.*'{branch}'"):
        next(gen)  # before the first chunk


@pytest.mark.parametrize("kind", ["csv", "no_events", "missing", "no_electrons"])
def test_wrong_files_give_a_data_error_naming_the_file(run, tmp_path, kind):
    path = tmp_path / f"{kind}.root"
    if kind == "csv":
        path.write_text("a,b\n1,2\n")
    elif kind == "no_events":
        _write_tree(path, tree="Other")
    elif kind == "no_electrons":
        _write_tree(path, drop=["Electron"])
    with pytest.raises(DataError, match=rf"{kind}\.root") as err:
        next(iter(run.task.predict_file(run, path)))
    assert err.value.path == str(path)


def test_a_small_hand_made_file_and_an_empty_tree(run, tmp_path):
    path = _write_tree(tmp_path / "tiny.root", n=6)
    out = predict(run, path)
    np.testing.assert_array_equal(out["event"], np.arange(6, dtype=np.uint64) + 100)
    assert out["run"].dtype == np.uint32 and out["event"].dtype == np.uint64
    empty = _write_tree(tmp_path / "empty.root", n=0)
    chunks = list(run.task.predict_file(run, empty))
    check_chunks(chunks)
    assert len(chunks) == 1 and len(chunks[0][SCORE]) == 0
    assert chunks[0]["event"].dtype == np.uint64


# ------------------------------------------------------------------ written outputs
def check_provenance(output, run, path):
    prov = read_provenance(output)
    assert prov["task"] == "dy_electron" and prov["run_id"] == run.run_dir.name
    assert prov["input"]["path"] == str(Path(path).resolve())
    assert len(prov["models"]["model"]["sha256"]) == 64


def test_root_friend_tree_beside_its_input_aligns_entry_by_entry(smoke, run, tmp_path):
    """The friend tree, read with uproot beside its input: same entries, same identifiers."""
    import uproot

    path = smoke["twin"] / "WW.root"
    want = predict(run, path)
    res = predict_files(smoke["run_dir"], [path], out=tmp_path / "out", chunk_size=100)  # default format: root
    assert len(res) == 1 and res[0]["rows"] == len(want[SCORE]) and res[0]["format"] == "root"
    friend = Path(res[0]["output"])
    assert friend == tmp_path / "out" / "WW.root"
    with uproot.open(friend) as f, uproot.open(path) as src:
        assert f["Events"].num_entries == src["Events"].num_entries
        got = f["Events"].arrays(list(COLUMNS), library="np")
        ids = src["Events"].arrays(list(IDS), library="np")
    for k in IDS:
        np.testing.assert_array_equal(got[k], ids[k])
    np.testing.assert_array_equal(got[SELECTED], want[SELECTED])
    np.testing.assert_allclose(got[SCORE], want[SCORE], rtol=0, atol=ATOL)
    check_provenance(friend, run, path)


@pytest.mark.realdata
def test_real_file_friend_tree_and_parquet_give_the_same_columns(run, realdata, tmp_path):
    import pyarrow.parquet as pq
    import uproot

    path = realdata("nanoaod", "nano_tt_v12.root")
    want = predict(run, path)
    friend = predict_files(run.run_dir, [path], out=tmp_path / "root")[0]["output"]
    table = predict_files(run.run_dir, [path], out=tmp_path / "pq", fmt="parquet")[0]["output"]
    assert Path(table).name == "nano_tt_v12.parquet"
    with uproot.open(friend) as f, uproot.open(path) as src:
        from_root = f["Events"].arrays(list(COLUMNS), library="np")
        assert f["Events"].num_entries == src["Events"].num_entries
    from_pq = pq.read_table(table)
    assert set(COLUMNS) <= set(from_pq.column_names) and from_pq.num_rows == len(want[SCORE])
    for k in COLUMNS:
        for got in (from_root[k], from_pq.column(k).to_numpy()):
            if k == SCORE:
                np.testing.assert_allclose(got, want[k], rtol=0, atol=ATOL)
            else:
                np.testing.assert_array_equal(got, want[k])
    check_provenance(table, run, path)


@pytest.mark.realdata
def test_dask_scores_every_real_file_into_the_serial_outputs(run, realdata, tmp_path):
    """``--dask`` on a local dask.distributed cluster over loopback: one friend tree per file, identical to the
    serial ones (and through the command line, as a user runs it)."""
    require_backend("distributed")
    import uproot

    from kerahep.commands import main

    files = [realdata("nanoaod", name) for name in REAL]
    serial = predict_files(run.run_dir, files, out=tmp_path / "serial", chunk_size=500)
    assert main(["predict", "--run", str(run.run_dir), *map(str, files), "--out", str(tmp_path / "dask"),
                 "--chunk-size", "500", "--dask"]) == 0
    for res, path in zip(serial, files):
        parallel = tmp_path / "dask" / Path(res["output"]).name
        with uproot.open(res["output"]) as a, uproot.open(parallel) as b, uproot.open(path) as src:
            assert a["Events"].num_entries == b["Events"].num_entries == src["Events"].num_entries
            x, y = a["Events"].arrays(library="np"), b["Events"].arrays(library="np")
            for k in COLUMNS:
                np.testing.assert_array_equal(x[k], y[k])
