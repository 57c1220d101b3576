"""NanoAOD reader, flattening, preparation, synthetic twin and bad-input errors (dy_electron data)."""

from __future__ import annotations

import json
import math
import os
import sys

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot

from kerahep.data import nanoaod
from kerahep.data.nanoaod import (
    ELECTRON_FIELDS,
    ID_COLUMNS,
    JET_FIELDS,
    FeatureSpec,
    expand_inputs,
    expand_samples,
    flatten_events,
    iterate_file,
    load_prepared,
    prepare_dataset,
    preselection_mask,
    process_chunk,
)
from kerahep.data.synthetic.nanoaod import make_twin
from kerahep.errors import ConfigError, DataError, KerahepError

DEEPFLAV_WP = nanoaod.DEEPFLAVB_MEDIUM
REAL = ("nano_dy.root", "nano_tt_v12.root", "nanoAOD_2015_CMS_Open_Data_ttbar.root")


# ----------------------------------------------------------------------------- helpers
def write_nano(path, electrons: dict, jets: dict | None = None, scalars: dict | None = None, tree="Events",
               ids: bool = True):
    """Write a NanoAOD-style file from python lists: ``electrons={"pt": [[..], ..], ...}``; with
    ``ids``, NanoAOD's run, luminosityBlock and event (1, 1, 1..n) as every NanoAOD file has."""
    etypes = {f: ("int32" if f == "charge" else "float32") for f in electrons}
    types = {"Electron": ak.types.from_datashape(
        "var * {" + ", ".join(f"{f}: {t}" for f, t in etypes.items()) + "}", highlevel=False)}
    data = {"Electron": ak.zip({f: ak.values_astype(ak.Array(v), etypes[f]) for f, v in electrons.items()})}
    if jets:
        types["Jet"] = ak.types.from_datashape("var * {" + ", ".join(f"{f}: float32" for f in jets) + "}",
                                               highlevel=False)
        data["Jet"] = ak.zip({f: ak.values_astype(ak.Array(v), np.float32) for f, v in jets.items()})
    for k, v in (scalars or {}).items():
        types[k] = np.float32
        data[k] = np.asarray(v, np.float32)
    if ids:
        n = len(data["Electron"])
        types.update(run=np.uint32, luminosityBlock=np.uint32, event=np.uint64)
        data.update(run=np.ones(n, np.uint32), luminosityBlock=np.ones(n, np.uint32),
                    event=np.arange(1, n + 1, dtype=np.uint64))
    with uproot.recreate(path) as f:
        t = f.mktree(tree, types, counter_name=lambda c: "n" + c, field_name=lambda o, i: o + "_" + i)
        t.extend(data)
    return str(path)


def small_events():
    """Hand-made events: 3 electrons (clipped), 1 electron (padded), none; 5, 0, 2 jets."""
    ele = {
        "pt": [[50.0, 30.0, 12.0], [25.0], []],
        "eta": [[0.5, -1.0, 2.0], [2.4], []],
        "phi": [[0.1, 3.0, -2.0], [1.5], []],
        "miniPFRelIso_all": [[0.01, 0.2, 0.5], [0.05], []],
        "miniPFRelIso_chg": [[0.005, 0.1, 0.3], [0.02], []],
        "dz": [[0.01, -0.02, 0.3], [0.001], []],
        "dxy": [[0.002, 0.004, -0.1], [0.0005], []],
        "ip3d": [[0.01, 0.02, 0.3], [0.001], []],
        "charge": [[1, -1, 1], [-1], []],
    }
    jets = {
        "pt": [[100.0, 80.0, 60.0, 40.0, 20.0], [], [35.0, 25.0]],
        "eta": [[0.1, 0.2, 0.3, 0.4, 0.5], [], [-1.0, 1.0]],
        "phi": [[1.0, 2.0, 3.0, -1.0, -2.0], [], [0.0, 0.5]],
        "btagDeepFlavB": [[0.9, 0.1, DEEPFLAV_WP, 0.5, 0.95], [], [0.05, 0.3]],
    }
    return ele, jets


def flat_events(ele, jets, met=None, gw=None):
    d = {f"Electron_{k}": ak.Array(v) for k, v in ele.items()}
    d["Electron_charge"] = ak.values_astype(d["Electron_charge"], np.int32)
    d.update({f"Jet_{k}": ak.Array(v) for k, v in jets.items()})
    if met is not None:
        d["MET_pt"] = ak.Array(np.asarray(met, np.float32))
    if gw is not None:
        d["genWeight"] = ak.Array(np.asarray(gw, np.float32))
    return ak.Array(d)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    out = tmp_path_factory.mktemp("twin")
    return make_twin(out, 300, seed=3)


@pytest.fixture(scope="module")
def prepared(twin, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "electron_dataset.csv"
    report = prepare_dataset(twin["signal"], twin["background"], out, progress=False)
    return report, load_prepared(out)


# ----------------------------------------------------------------------------- spec and flattening
def test_feature_spec_columns_physics_and_seed():
    phys = FeatureSpec(n_electrons=2, n_jets=3)
    seed = FeatureSpec(n_electrons=2, n_jets=3, preset="seed")
    assert len(seed.columns) == 2 * len(ELECTRON_FIELDS) + 3 * len(JET_FIELDS) + 2
    assert phys.columns == seed.columns + ["m_ee", "pt_ee", "dphi_ee", "os_ee", "MET_pt", "n_bjets"]
    assert seed.columns[:2] == ["Electron_pt_0", "Electron_eta_0"] and "Jet_btagDeepFlavB_2" in seed.columns
    assert phys.output_columns[-8:] == ["genWeight", "target", "sample", "run", "luminosityBlock", "event", "file",
                                        "entry"]
    assert phys.output_columns[:len(phys.columns)] == phys.columns


@pytest.mark.parametrize("kwargs", [dict(preset="fancy"), dict(n_jets=-1), dict(n_electrons=0),
                                    dict(max_abs_eta=0), dict(btag_wp=2.0), dict(min_electrons=-1)])
def test_feature_spec_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        FeatureSpec(**kwargs)


def test_flatten_pads_with_zero_and_clips_exactly():
    ele, jets = small_events()
    spec = FeatureSpec(n_electrons=2, n_jets=4, preset="seed")
    cols = flatten_events(flat_events(ele, jets), spec)
    assert set(cols) == set(spec.columns) | {"genWeight"}
    for f in ELECTRON_FIELDS:
        for i in range(2):
            want = [ev[i] if len(ev) > i else 0 for ev in ele[f]]
            np.testing.assert_array_equal(cols[f"Electron_{f}_{i}"], np.asarray(want, cols[f"Electron_{f}_{i}"].dtype))
    for f in JET_FIELDS:
        for i in range(4):
            want = [ev[i] if len(ev) > i else 0 for ev in jets[f]]
            np.testing.assert_array_equal(cols[f"Jet_{f}_{i}"], np.asarray(want, np.float32))
    np.testing.assert_array_equal(cols["nElectron"], [3, 1, 0])  # every stored electron, not only kept ones
    np.testing.assert_array_equal(cols["nJet"], [5, 0, 2])
    assert cols["Electron_charge_1"].dtype == np.int32 and cols["Electron_pt_0"].dtype == np.float32
    np.testing.assert_array_equal(cols["genWeight"], [1, 1, 1])  # absent optional branch -> default 1


def test_flatten_physics_pair_features_exact():
    ele = {f: [[0.0, 0.0], [0.0, 0.0], [0.0]] for f in ELECTRON_FIELDS}
    ele["pt"] = [[45.0, 45.0], [40.0, 20.0], [30.0]]
    ele["eta"] = [[0.0, 0.0], [1.0, -1.0], [0.3]]
    ele["phi"] = [[0.0, math.pi], [0.5, 0.5 + 2 * math.pi - 0.2], [1.0]]
    ele["charge"] = [[1, -1], [1, 1], [-1]]
    jets = {"pt": [[50.0, 40.0, 30.0], [], [30.0]], "eta": [[0, 0, 0], [], [0]], "phi": [[0, 0, 0], [], [0]],
            "btagDeepFlavB": [[0.9, DEEPFLAV_WP, 0.5], [], [0.1]]}
    cols = flatten_events(flat_events(ele, jets, met=[12.5, 0.0, 7.0], gw=[-2.0, 1.0, 3.0]), FeatureSpec())
    # event 0: back to back at eta 0 -> m = 2 * 45 = 90, pair pT 0, dphi pi, opposite sign
    m1 = math.sqrt(2 * 40 * 20 * (math.cosh(2.0) - math.cos(0.2)))
    pt1 = math.sqrt(40**2 + 20**2 + 2 * 40 * 20 * math.cos(0.2))
    np.testing.assert_allclose(cols["m_ee"], [90.0, m1, 0.0], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(cols["pt_ee"], [0.0, pt1, 0.0], atol=1e-4)
    np.testing.assert_allclose(cols["dphi_ee"], [math.pi, 0.2, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(cols["os_ee"], [1, 0, 0])
    np.testing.assert_array_equal(cols["n_bjets"], [2, 0, 0])  # 0.2783 itself is not above the WP
    np.testing.assert_array_equal(cols["MET_pt"], np.float32([12.5, 0.0, 7.0]))
    np.testing.assert_array_equal(cols["genWeight"], np.float32([-2.0, 1.0, 3.0]))


def test_flatten_accepts_zipped_records_like_flat_names():
    ele, jets = small_events()
    flat = flat_events(ele, jets, met=[1, 2, 3])
    zipped = ak.Array({"Electron": ak.zip({f: flat[f"Electron_{f}"] for f in ELECTRON_FIELDS}),
                       "Jet": ak.zip({f: flat[f"Jet_{f}"] for f in JET_FIELDS}), "MET_pt": flat["MET_pt"]})
    a, b = flatten_events(flat), flatten_events(zipped)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_preselection_counts_good_electrons():
    ele = {"pt": [[9.0], [11.0], [11.0, 12.0], [11.0, 30.0], []], "eta": [[0.0], [2.6], [0.0, 2.4], [0, 0], []]}
    ev = ak.Array({f"Electron_{k}": v for k, v in ele.items()})
    np.testing.assert_array_equal(preselection_mask(ev, FeatureSpec()), [False, False, True, True, False])
    np.testing.assert_array_equal(preselection_mask(ev, FeatureSpec(min_electrons=2)), [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(preselection_mask(ev, FeatureSpec(min_pt=20.0)), [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(preselection_mask(ev, FeatureSpec(min_electrons=0)), [1] * 5)


# ----------------------------------------------------------------------------- synthetic twin
def test_twin_writes_nanoaod_schema(twin):
    names = [os.path.basename(p) for p in twin["signal"] + twin["background"]]
    assert names[:2] == ["DYJetsToLL_M-10to50.root", "DYJetsToLL_M-50.root"]
    assert {"TTJets.root", "ST_t-channel_top.root", "ST_tW_antitop.root", "WW.root", "WZ.root", "ZZ.root"} <= set(names)
    with uproot.open(twin["background"][0]) as f:
        t = f["Events"]
        assert t.num_entries == 300
        assert t["nElectron"].typename in ("int32_t", "uint32_t") and t["nJet"].typename in ("int32_t", "uint32_t")
        assert t["Electron_charge"].typename == "int32_t[]"
        for b in [f"Electron_{x}" for x in ELECTRON_FIELDS if x != "charge"] + [f"Jet_{x}" for x in JET_FIELDS]:
            assert t[b].typename == "float[]", b
        assert t["MET_pt"].typename == "float" and t["genWeight"].typename == "float"
        assert str(t.file.compression) == "ZLIB(1)"
        assert t["Electron_pt"].compressed_bytes < t["Electron_pt"].uncompressed_bytes
    with open(os.path.join(os.path.dirname(twin["signal"][0]), "twin.json")) as f:
        meta = json.load(f)
    assert meta["params"]["n_events_per_sample"] == 300 and meta["params"]["seed"] == 3
    assert 0.8 < meta["oracle_auc"] < 1.0


def test_twin_is_reused_when_parameters_match_and_remade_otherwise(tmp_path):
    files = make_twin(tmp_path, 50, seed=1)
    stamp = os.path.getmtime(files["signal"][0])
    again = make_twin(tmp_path, 50, seed=1)
    assert again == files and os.path.getmtime(files["signal"][0]) == stamp
    make_twin(tmp_path, 60, seed=1)
    with uproot.open(files["signal"][0]) as f:
        assert f["Events"].num_entries == 60


def test_twin_classes_differ_like_real_processes(prepared):
    _, df = prepared
    dy = df[df["sample"] == "DYJetsToLL_M-50"]
    tt = df[df["sample"] == "TTJets"]
    two_dy, two_tt = dy[dy.nElectron >= 2], tt[tt.nElectron >= 2]
    z_dy = ((two_dy.m_ee > 80) & (two_dy.m_ee < 100)).mean()
    z_tt = ((two_tt.m_ee > 80) & (two_tt.m_ee < 100)).mean()
    assert z_dy > 0.6 > 3 * z_tt  # Z peak in Drell-Yan, broad m_ee in ttbar
    assert tt.n_bjets.mean() > 3 * dy.n_bjets.mean() and tt.nJet.mean() > 2 * dy.nJet.mean()
    assert tt.MET_pt.mean() > 2 * dy.MET_pt.mean()
    # real Z -> ee pairs are 95% opposite-sign (issue 19); ttbar pairs far less (non-prompt electrons)
    assert two_dy.os_ee.mean() == pytest.approx(0.95, abs=0.04) and two_tt.os_ee.mean() < 0.85
    assert dy.Electron_miniPFRelIso_all_0.median() < tt.Electron_miniPFRelIso_all_0.median()


# ----------------------------------------------------------------------------- reading and preparing
def test_iterate_file_reads_in_bounded_steps(twin):
    path = twin["background"][0]
    steps = list(iterate_file(path, FeatureSpec(), step_size=100))
    assert [n for _, n, _ in steps] == [100, 100, 100]
    assert all(len(c["Electron_pt_0"]) == s for c, _, s in steps)
    capped = list(iterate_file(path, FeatureSpec(), step_size=100, max_events=150))
    assert [n for _, n, _ in capped] == [100, 50]
    whole = list(iterate_file(path, FeatureSpec()))
    assert sum(s for *_, s in steps) == sum(s for *_, s in whole)


def test_prepare_writes_one_row_per_selected_event(prepared, twin):
    report, df = prepared
    assert len(df) == report.selected == sum(s["selected"] for s in report.samples.values())
    assert report.events_read == 10 * 300 and report.failed_preselection == report.events_read - report.selected
    assert report.failed_preselection > 0
    assert list(df.columns) == FeatureSpec().output_columns
    for name, s in report.samples.items():
        assert (df["sample"] == name).sum() == s["selected"]
        assert s["events_read"] == 300 and s["failed_preselection"] == 300 - s["selected"]
        assert set(df.loc[df["sample"] == name, "target"]) == {1 if name.startswith("DYJets") else 0}
    # the counts agree with an independent awkward selection on the files
    with uproot.open(twin["signal"][1]) as f:
        e = f["Events"].arrays(["Electron_pt", "Electron_eta"])
    n_good = int(ak.sum(ak.sum((e.Electron_pt > 10) & (abs(e.Electron_eta) < 2.5), axis=1) >= 1))
    assert report.samples["DYJetsToLL_M-50"]["selected"] == n_good
    with open(report.output + ".report.json") as f:
        side = json.load(f)
    assert side["selected"] == report.selected and side["samples"]["WW"]["role"] == "background"


def test_prepare_matches_the_plain_awkward_pandas_method(twin, tmp_path):
    from kerahep.benchmarks.dy_electron import plain_prepare

    spec = FeatureSpec(preset="seed")
    sig, bkg = twin["signal"][:1], twin["background"][-2:]
    n = plain_prepare(sig, bkg, tmp_path / "plain.csv", spec)
    report = prepare_dataset(sig, bkg, tmp_path / "k.csv", spec=spec, progress=False)
    a, b = pd.read_csv(tmp_path / "plain.csv"), load_prepared(tmp_path / "k.csv")
    # the plain method keeps no event identifiers: the same columns, then ours
    assert n == report.selected == len(b) and list(b.columns) == list(a.columns) + list(ID_COLUMNS)
    num = [c for c in a.columns if c != "sample"]
    np.testing.assert_array_equal(a[num].to_numpy(np.float32), b[num].to_numpy(np.float32))
    assert (a["sample"] == b["sample"]).all()


def test_parquet_output_equals_csv(twin, tmp_path):
    files = twin["signal"][:1]
    prepare_dataset(files, [], tmp_path / "a.csv", progress=False, max_events=120)
    r = prepare_dataset(files, [], tmp_path / "a.parquet", progress=False, max_events=120)
    assert r.fmt == "parquet"
    a, b = load_prepared(tmp_path / "a.csv"), load_prepared(tmp_path / "a.parquet")
    assert list(a.columns) == list(b.columns)
    num = [c for c in a.columns if c not in ("sample",) + ID_COLUMNS]
    np.testing.assert_array_equal(a[num].to_numpy(np.float32), b[num].to_numpy(np.float32))
    ids = ["run", "luminosityBlock", "event", "entry"]
    np.testing.assert_array_equal(a[ids].to_numpy(np.uint64), b[ids].to_numpy(np.uint64))
    assert (a["file"] == b["file"]).all() and (a["sample"] == b["sample"]).all()
    assert b["event"].dtype == np.uint64 and b["run"].dtype == np.uint32  # as NanoAOD stores them


def test_max_events_caps_each_sample_over_its_files(tmp_path, capfd):
    ele = {f: [[0.0]] * 40 for f in ELECTRON_FIELDS}
    ele["pt"], ele["charge"] = [[20.0]] * 40, [[1]] * 40
    jets = {"pt": [[30.0]] * 40}
    d = tmp_path / "DYJetsToLL_M-50"
    d.mkdir()
    for i in range(3):
        write_nano(d / f"part{i}.root", ele, jets)
    r = prepare_dataset([d], [], tmp_path / "o.csv", spec=FeatureSpec(n_jets=0), max_events=50, progress=True)
    assert "events" in capfd.readouterr().err  # the rich progress bar over files and events
    s = r.samples["DYJetsToLL_M-50"]  # the folder names the sample
    assert s["events_read"] == 50 and len(s["files"]) == 2 and s["files_skipped"] == 1
    assert len(load_prepared(tmp_path / "o.csv")) == 50


def test_optional_branches_filled_and_reported(tmp_path):
    ele = {f: [[0.0, 0.0], [0.0]] for f in ELECTRON_FIELDS}
    ele["pt"], ele["charge"] = [[20.0, 15.0], [12.0]], [[1, -1], [1]]
    path = write_nano(tmp_path / "run3.root", ele, {"pt": [[30.0], []], "eta": [[0.0], []], "phi": [[0.0], []]})
    r = prepare_dataset([path], [], tmp_path / "o.csv", progress=False)
    assert sorted(r.missing_optional[path]) == ["Jet_btagDeepFlavB", "MET_pt", "genWeight"]
    df = load_prepared(tmp_path / "o.csv")
    assert (df.MET_pt == 0).all() and (df.genWeight == 1).all() and (df.Jet_btagDeepFlavB_0 == 0).all()
    assert (df.n_bjets == 0).all() and list(df.Jet_pt_0) == [30.0, 0.0]


def _ids_at(path, entries):
    with uproot.open(path) as f:
        t = f["Events"].arrays(["run", "luminosityBlock", "event"], library="np")
    return {k: v[np.asarray(entries, dtype=np.int64)] for k, v in t.items()}


def _assert_rows_join_back(df):
    """Every prepared row's (file, entry) is the NanoAOD event with the row's run, lumi and event."""
    assert df["file"].notna().all()
    for path, rows in df.groupby("file"):
        assert os.path.isabs(path)
        assert rows["entry"].is_unique and rows["entry"].is_monotonic_increasing
        ids = _ids_at(path, rows["entry"])
        for k in ("run", "luminosityBlock", "event"):
            np.testing.assert_array_equal(rows[k].to_numpy(np.uint64), ids[k].astype(np.uint64), err_msg=f"{path} {k}")


def test_prepared_rows_join_back_to_their_nanoaod_events(twin, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative inputs: the file column is absolute all the same
    rel = [os.path.relpath(p, tmp_path) for p in twin["signal"]]
    r = prepare_dataset(rel, twin["background"][:2], "ids.csv", progress=False, step_size=70)  # several steps a file
    df = load_prepared("ids.csv")
    assert len(df) == r.selected and list(df.columns[-5:]) == list(ID_COLUMNS)
    assert set(df["file"]) == {os.path.abspath(p) for p in rel + twin["background"][:2]}
    _assert_rows_join_back(df)
    # the entries are of the events that passed: the rest failed the preselection
    with uproot.open(twin["signal"][0]) as f:
        e = f["Events"].arrays(["Electron_pt", "Electron_eta", "genWeight"])
    good = np.flatnonzero(ak.to_numpy(ak.sum((e.Electron_pt > 10) & (abs(e.Electron_eta) < 2.5), axis=1) >= 1))
    np.testing.assert_array_equal(df.loc[df["file"] == os.path.abspath(rel[0]), "entry"], good)
    # the sum of generator weights over every event read (not only the selected ones)
    gw = ak.to_numpy(e.genWeight).astype(np.float64)
    assert r.samples["DYJetsToLL_M-10to50"]["sum_genWeight"] == pytest.approx(gw.sum(), rel=1e-12)
    assert gw[good].sum() != pytest.approx(gw.sum(), rel=1e-6)  # preselection left some out
    whole = prepare_dataset(rel, twin["background"][:2], "one_step.csv", progress=False)
    pd.testing.assert_frame_equal(load_prepared("one_step.csv"), df)
    assert whole.samples == r.samples


def test_a_file_without_event_ids_is_a_data_error(tmp_path):
    ele = {f: [[20.0]] for f in ELECTRON_FIELDS}
    path = write_nano(tmp_path / "skim.root", ele, {"pt": [[30.0]], "eta": [[0.0]], "phi": [[0.0]]}, ids=False)
    with pytest.raises(DataError, match=r"skim\.root.*'run'.*missing: run, luminosityBlock, event"):
        prepare_dataset([path], [], tmp_path / "o.csv", progress=False)


# ----------------------------------------------------------------------------- real files
@pytest.fixture(scope="module")
def real_truth():
    """Per real file: its electrons read directly with uproot, and the preselection by awkward."""
    from conftest import realdata_path

    out = {}
    for name in REAL:
        path = str(realdata_path("nanoaod", name))
        with uproot.open(path) as f:
            t = f["Events"]
            e = t.arrays(["Electron_pt", "Electron_eta", "Electron_charge", "nElectron"])
        good = ak.to_numpy(ak.sum((e.Electron_pt > 10) & (abs(e.Electron_eta) < 2.5), axis=1) >= 1)
        out[name] = dict(path=path, n=len(e), good=good, nElectron=ak.to_numpy(e.nElectron),
                         q0=ak.to_numpy(ak.fill_none(ak.firsts(e.Electron_charge), 0)))
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("name", REAL)
def test_reader_on_real_nanoaod(real_truth, name):
    truth = real_truth[name]
    chunks = list(iterate_file(truth["path"], FeatureSpec(), step_size=64))
    assert sum(r for _, r, _ in chunks) == truth["n"] and len(chunks) == math.ceil(truth["n"] / 64)
    assert sum(s for *_, s in chunks) == int(truth["good"].sum()) > 0
    nele = np.concatenate([c["nElectron"] for c, _, _ in chunks])
    np.testing.assert_array_equal(nele, truth["nElectron"][truth["good"]])
    q0 = np.concatenate([c["Electron_charge_0"] for c, _, _ in chunks])
    np.testing.assert_array_equal(q0, truth["q0"][truth["good"]])


@pytest.mark.realdata
def test_prepare_real_files_one_row_per_selected_event(real_truth, tmp_path):
    sig = [real_truth[REAL[0]]["path"]]
    bkg = [real_truth[REAL[1]]["path"], real_truth[REAL[2]]["path"]]
    r = prepare_dataset(sig, bkg, tmp_path / "electron_dataset.csv", progress=False)
    df = load_prepared(tmp_path / "electron_dataset.csv")
    expected = {name[:-5]: int(t["good"].sum()) for name, t in real_truth.items()}
    assert df["sample"].value_counts().to_dict() == expected
    assert len(df) == r.selected == sum(expected.values())
    assert r.events_read == 440 and r.missing_optional == {}
    assert set(df.loc[df["sample"] == "nano_dy", "target"]) == {1} and df.target.sum() == expected["nano_dy"]
    assert np.isfinite(df.drop(columns=["sample", "file"]).to_numpy(float)).all()


@pytest.mark.realdata
def test_real_prepared_rows_join_back_to_their_nanoaod_events(real_truth, tmp_path):
    paths = [real_truth[name]["path"] for name in REAL]
    r = prepare_dataset(paths[:1], paths[1:], tmp_path / "ids.parquet", progress=False, step_size=64)
    df = load_prepared(tmp_path / "ids.parquet")
    assert set(df["file"]) == {os.path.abspath(p) for p in paths}
    _assert_rows_join_back(df)
    for name in REAL:  # the selected entries are the events passing the preselection
        rows = df[df["file"] == os.path.abspath(real_truth[name]["path"])]
        np.testing.assert_array_equal(rows["entry"], np.flatnonzero(real_truth[name]["good"]))
        with uproot.open(real_truth[name]["path"]) as f:
            gw = f["Events"]["genWeight"].array(library="np").astype(np.float64)
        assert r.samples[name[:-5]]["sum_genWeight"] == pytest.approx(gw.sum(), rel=1e-12)


# ----------------------------------------------------------------------------- bad input
def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file") as e:
        prepare_dataset([tmp_path / "nope.root"], [], tmp_path / "o.csv", progress=False)
    assert "nope.root" in str(e.value)


def test_file_that_is_not_root_is_a_data_error(tmp_path):
    bad = tmp_path / "notes.root"
    bad.write_text("event,pt\n1,20\n")
    with pytest.raises(DataError, match="not a readable ROOT file") as e:
        prepare_dataset([bad], [], tmp_path / "o.csv", progress=False)
    assert str(bad) in str(e.value)


def test_truncated_root_file_is_a_data_error(twin, tmp_path):
    data = open(twin["signal"][0], "rb").read()
    cut = tmp_path / "DYJetsToLL_M-50.root"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="DYJetsToLL_M-50.root.*(not a readable ROOT file|read error)"):
        prepare_dataset([cut], [], tmp_path / "o.csv", progress=False)
    assert not (tmp_path / "o.csv").exists()


def test_missing_tree_is_a_data_error(tmp_path):
    ele = {f: [[20.0]] for f in ELECTRON_FIELDS}
    path = write_nano(tmp_path / "x.root", ele, {"pt": [[1.0]]}, tree="Tree")
    with pytest.raises(DataError, match="TTree 'Events'") as e:
        list(iterate_file(path))
    assert "Tree" in e.value.found


def test_missing_required_branch_names_branch_and_file(tmp_path):
    ele = {f: [[20.0]] for f in ELECTRON_FIELDS if f != "ip3d"}
    path = write_nano(tmp_path / "old.root", ele, {"pt": [[1.0]], "eta": [[0.0]], "phi": [[0.0]]})
    with pytest.raises(DataError) as e:
        prepare_dataset([path], [], tmp_path / "o.csv", progress=False)
    assert "Electron_ip3d" in str(e.value) and "old.root" in str(e.value)
    assert not (tmp_path / "o.csv").exists()


def test_empty_selection_says_nothing_passed(twin, tmp_path):
    out = tmp_path / "o.csv"
    with pytest.raises(DataError, match="nothing passed the preselection") as e:
        prepare_dataset(twin["signal"][:1], [], out, spec=FeatureSpec(min_pt=1e6), progress=False)
    assert "0 of 300 events" in str(e.value)
    assert not out.exists() and not any(p.name.startswith(".o.") for p in tmp_path.iterdir())


def _good_csv(path):
    pd.DataFrame({"Electron_pt_0": [20.0, 30.0, 40.0], "target": [1, 0, 1], "sample": ["a", "b", "a"]}).to_csv(
        path, index=False)


def test_corrupt_csv_is_a_data_error_naming_the_file(tmp_path):
    good = tmp_path / "good.csv"
    _good_csv(good)
    assert len(load_prepared(good)) == 3
    truncated = tmp_path / "truncated.csv"
    truncated.write_text(good.read_text().rstrip("\n").rsplit(",", 2)[0] + "\n")
    with pytest.raises(DataError, match="truncated.csv.*empty value .*row 3"):
        load_prepared(truncated)
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"Electron_pt_0,target,sample\n1,2,3,4,5,6\n\x00\xff\xfe\n")
    with pytest.raises(DataError, match="garbage.csv"):
        load_prepared(garbage)
    parquet = tmp_path / "broken.parquet"
    parquet.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match="broken.parquet.*corrupt"):
        load_prepared(parquet)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty file"):
        load_prepared(empty)
    text = tmp_path / "text.csv"
    text.write_text("Electron_pt_0,target,sample\n20.0,1,a\nabc,0,b\n")
    with pytest.raises(DataError, match="'Electron_pt_0'.*'abc'"):
        load_prepared(text)


def test_missing_columns_is_a_data_error(tmp_path):
    p = tmp_path / "nolabel.csv"
    pd.DataFrame({"Electron_pt_0": [1.0], "sample": ["a"]}).to_csv(p, index=False)
    with pytest.raises(DataError, match="missing target"):
        load_prepared(p)
    good = tmp_path / "good.csv"
    _good_csv(good)
    with pytest.raises(DataError, match="missing Electron_eta_0"):
        load_prepared(good, spec=FeatureSpec())
    with pytest.raises(DataError, match="no such file"):
        load_prepared(tmp_path / "absent.csv")


# ----------------------------------------------------------------------------- input expansion
def test_expand_inputs_files_dirs_globs_and_index_lists(twin, tmp_path, monkeypatch):
    folder = os.path.dirname(twin["signal"][0])
    assert expand_inputs(folder) == sorted(twin["signal"] + twin["background"])
    assert expand_inputs([os.path.join(folder, "ST_*.root")]) == sorted(
        p for p in twin["background"] if os.path.basename(p).startswith("ST_"))
    index = tmp_path / "CMS_mc_RunIIFall15MiniAODv2_DYJetsToLL_M-50_TuneCUETP8M1_13TeV-amcatnloFXFX_file_index.txt"
    rel = os.path.relpath(twin["signal"][1], tmp_path)
    index.write_text(f"# CERN Open Data index\n{twin['signal'][0]}\n\n{rel}\n")
    pairs = expand_samples([index])
    assert pairs == [("DYJetsToLL_M-50", twin["signal"][0]), ("DYJetsToLL_M-50", str(tmp_path / rel))]
    assert expand_samples([twin["background"][-1]]) == [("ZZ", twin["background"][-1])]
    broken = tmp_path / "broken_file_index.txt"
    broken.write_text("missing/file.root\n")
    with pytest.raises(DataError, match="missing/file.root.*no such file"):
        expand_inputs([broken])
    with pytest.raises(DataError, match="no match"):
        expand_inputs([str(tmp_path / "*.nothing")])
    with pytest.raises(DataError, match="no such file"):
        expand_inputs([tmp_path / "absent_dir" / "x.root"])


def test_xrootd_urls_without_fsspec_xrootd_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec_xrootd", None)  # makes the import fail
    index = tmp_path / "CMS_mc_TTJets_file_index.txt"
    index.write_text("root://eospublic.cern.ch//eos/opendata/cms/mc/TTJets/0001.root\n")
    with pytest.raises(KerahepError, match="fsspec-xrootd"):
        expand_inputs([index])
    with pytest.raises(KerahepError, match="pip install fsspec-xrootd"):
        expand_inputs(["root://eospublic.cern.ch//eos/x.root"])


@pytest.mark.parametrize("damaged, expected", [
    ({"Electron_eta": [[0.1, 0.2], [0.3, -0.1]]}, r"Electron_eta with one entry per electron.*4 entries against 3"),
    ({"Electron_eta": [[0.1], [0.3, -0.1]]}, r"Electron_eta with one entry per electron.*1 entries against 2 in event 0"),
    ({"Jet_eta": [[1.0, 2.0], []]}, r"Jet_eta with one entry per jet.*2 entries against 1 in event 0"),
])
def test_branches_of_one_collection_that_do_not_line_up_are_a_data_error_naming_the_file(damaged, expected):
    """A damaged file (the fuzzer's bit flip) whose Electron_eta does not line up with Electron_pt
    is refused naming the branch, not a NumPy broadcast error from deep inside the features."""
    events = {f"Electron_{f}": [[0.0, 0.0], [0.0]] for f in ELECTRON_FIELDS}
    events.update({"Electron_pt": [[50.0, 40.0], [30.0]], "Electron_eta": [[0.1, 0.2], [0.3]],
                   "Electron_charge": [[1, -1], [1]], "MET_pt": [20.0, 30.0], "genWeight": [1.0, 1.0]})
    events.update({f"Jet_{f}": [[40.0], [35.0]] if f == "pt" else [[0.5], [0.5]] for f in JET_FIELDS})
    events.update(damaged)
    events = {k: ak.Array(v) for k, v in events.items()}
    with pytest.raises(DataError, match=expected) as e:
        process_chunk(events, FeatureSpec(n_electrons=2, n_jets=1), "skim.root")
    assert "skim.root" in str(e.value)
