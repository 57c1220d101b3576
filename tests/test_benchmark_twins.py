"""The twins fidelity report: its features on hand-made crops and events, and a quick run."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from kerahep.benchmarks import twins
from kerahep.errors import DataError


def _crops(*hits):
    """Crops ``(n, 32, 32, 2)``: one per argument, a list of ``(eta, phi, energy)`` hits (time 0.5 where hit)."""
    x = np.zeros((len(hits), 32, 32, 2), np.float32)
    for n, crop in enumerate(hits):
        for i, j, e in crop:
            x[n, i, j] = (e, 0.5)
    return x


def test_calo_features_on_hand_made_crops():
    """One hit: widths 0, max/sum 1, one hit pixel; two equal hits two pixels apart in phi:
    phi width 1, eta width 0, max/sum 0.5; an empty crop gives zeros, not NaN; the time channel
    is ignored; a (n, 32, 32) energy array gives the same."""
    x = _crops([(16, 16, 1.2)], [(16, 15, 0.3), (16, 17, 0.3)], [], [(10, 16, 0.1), (14, 16, 0.3)])
    np.testing.assert_allclose(twins.shower_widths(x)[:3], [[0, 0], [0, 1], [0, 0]], atol=1e-12)
    # eta hits at 10 (0.1) and 14 (0.3): mean 13, variance 0.25 * 9 + 0.75 * 1 = 3
    np.testing.assert_allclose(twins.shower_widths(x)[3], [math.sqrt(3), 0], atol=1e-6)
    np.testing.assert_allclose(twins.max_over_sum(x), [1, 0.5, 0, 0.75], atol=1e-6)
    np.testing.assert_array_equal(twins.hit_pixels(x), [1, 2, 0, 2])
    np.testing.assert_allclose(twins.shower_widths(x[..., 0]), twins.shower_widths(x))
    with pytest.raises(DataError, match="expected an array"):
        twins.hit_pixels(np.zeros((3, 32)))


def test_wide_axis_and_auc_direction():
    """The wide axis is the one with the larger mean electron width; the AUC has electrons as
    positives (a feature larger for photons gives an AUC below 0.5)."""
    phi_wide = _crops([(16, 14, 1), (16, 18, 1)], [(16, 16, 1)])
    eta_wide = _crops([(13, 16, 1), (19, 16, 1)])
    assert twins.wide_axis(twins.shower_widths(phi_wide)) == 2
    assert twins.wide_axis(twins.shower_widths(eta_wide)) == 1
    feats, axis = twins.calo_features(_crops([(16, 16, 1)]), eta_wide)
    assert axis == 1 and feats["width_wide_auc"][1].tolist() == [3.0]
    assert twins.feature_auc([1, 2], [3, 4]) == 1.0
    assert twins.feature_auc([3, 4], [1, 2]) == 0.0


def test_dy_quantities_on_hand_made_events():
    """Only events with two or more electrons count; jets above 30 GeV, all jets, medians of
    the leading (first) electron and the charge of the first two as computed by hand."""
    import awkward as ak

    events = ak.Array({
        "Jet_pt": [[50.0, 35.0, 20.0], [31.0], [100.0, 100.0, 100.0, 100.0], []],
        "MET_pt": [10.0, 30.0, 500.0, 20.0],
        "Electron_dz": [[-0.001, 0.5], [0.003, 0.1, 0.2], [0.9], [0.002, -0.4]],
        "Electron_dxy": [[0.002, 0.5], [-0.004, 0.1, 0.2], [0.9], [0.0, 0.3]],
        "Electron_miniPFRelIso_all": [[0.0, 0.5], [0.1, 0.1, 0.2], [0.9], [0.0, 0.0]],
        "Electron_charge": [[1, -1], [1, 1, -1], [1], [-1, 1]],
    })
    q = twins.dy_quantities(events)
    assert q["events"] == 3
    assert q["jets30_mean"] == pytest.approx(1.0) and q["jets30_mean_collision"] == q["jets30_mean"]
    assert q["jets_mean"] == pytest.approx(4 / 3)
    assert q["met_median"] == pytest.approx(20.0)
    assert q["dz_median"] == pytest.approx(0.002)
    assert q["dxy_median"] == pytest.approx(0.002)
    assert q["iso_median"] == pytest.approx(0.0)
    assert q["opposite_charge"] == pytest.approx(2 / 3)
    none = twins.dy_quantities(events[2:3])
    assert none["events"] == 0 and math.isnan(none["met_median"])


def test_tolerance_rows():
    """Relative tolerance: 20% of the real value; the iso row's absolute 0.005; no tolerance: passed None."""
    ok = twins.tolerance_row("dy_electron", "met_median", "MET", 30.0, 0.2, relative=True)
    bad = twins.tolerance_row("dy_electron", "met_median", "MET", 27.0, 0.2, relative=True)
    assert (ok.baseline, ok.candidate, ok.passed, bad.passed) == (35.0, 30.0, True, False)
    assert ok.extra["tolerance"] == pytest.approx(7.0) and ok.ratio == pytest.approx(30 / 35)
    iso = twins.tolerance_row("dy_electron", "iso_median", "iso", 0.004, 0.005)
    assert iso.passed is True and math.isnan(iso.ratio)
    assert twins.tolerance_row("dy_electron", "iso_median", "iso", 0.006, 0.005).passed is False
    pub = twins.tolerance_row("jet_ssl", "oracle_auc", "oracle", 0.9, None)
    assert pub.passed is None and pub.target == "" and "published" in pub.notes


def test_quick_report_on_small_twins(tmp_path, monkeypatch):
    """``kerahep benchmark --task twins --quick`` (the quick sizes made smaller still): one row
    per quantity of :data:`REAL`, the real value as baseline, a finite twin value; the
    electron_photon rows compare max(auc, 1 - auc) and keep the raw AUC. ``--out`` gets the
    report, ``--workdir`` keeps the twins, ``--verbose`` lets TensorFlow's warnings through."""
    from helpers import retracing_warnings_shown
    from kerahep import commands

    monkeypatch.setitem(twins.SIZES, "quick", {"electron_photon": 200, "dy_electron": 300, "jet_ssl": (100, 100)})
    monkeypatch.setitem(twins.SIZES, "full", {})  # a run without --quick fails: nothing to measure
    out, work = tmp_path / "bench.json", tmp_path / "work"
    assert commands.main(["benchmark", "--task", "twins", "--quick", "--out", str(out), "--workdir", str(work),
                          "--verbose"]) == 0
    assert retracing_warnings_shown()
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["not_measured"] == {}
    rows = [SimpleNamespace(**r) for r in report["rows"]]
    higgs = [r for r in rows if r.task == "higgs_mae"]  # its own real values (tests/test_benchmark_twins_higgs.py)
    rows = [r for r in rows if r.task != "higgs_mae"]
    expected = [(task, value) for task, table in twins.REAL.items() for value, _, _ in table.values()]
    assert [(r.task, r.baseline) for r in rows] == expected  # --task twins: its rows only
    assert len(higgs) == 3 and all(r.passed in (True, False) for r in higgs)  # --quick: the three tree rows
    assert len({r.name for r in rows + higgs}) == len(rows) + len(higgs)
    for r in rows:
        assert math.isfinite(r.candidate), r
        assert r.passed in (True, False), r  # every row has a tolerance
    for r in rows[:3]:
        auc = r.extra["auc_electrons_positive"]
        assert r.candidate == pytest.approx(max(auc, 1 - auc)) and r.candidate >= 0.5
        assert r.extra["wide_axis"] == 2  # the twin's electrons spread along phi
    assert sorted(p.name for p in (work / "twins").iterdir()) == sorted(twins.TASKS)  # kept in --workdir
    with h5py.File(next((work / "twins" / "electron_photon").rglob("SinglePhoton*.hdf5"))) as f:
        assert len(f["y"]) == 200  # the quick size


def test_dy_electron_rows_are_within_tolerance_on_a_small_twin(tmp_path):
    """Every dy_electron row of the report passes on a twin of 1000 events per sample: the
    Drell-Yan ee events carry about two jets above 30 GeV (NanoAOD keeps the electrons in the
    Jet collection; ISR and pile-up add more), a MET median near 35 GeV, the real impact
    parameters, zero isolation for most prompt electrons and 95% opposite charge."""
    rows = twins.run(tasks=["dy_electron"], workdir=tmp_path, sizes={"dy_electron": 1000})
    assert [r.baseline for r in rows] == [value for value, _, _ in twins.REAL["dy_electron"].values()]
    assert rows[0].extra["events"] > 500  # the twin's M-50 events with two electrons
    failed = [(r.name, round(r.candidate, 4), r.baseline, r.extra["tolerance"]) for r in rows if r.passed is not True]
    assert not failed, failed


def test_electron_photon_rows_are_within_tolerance_on_a_small_twin(tmp_path):
    """Every electron_photon row passes on the twin of 2000 crops per class (the quick size):
    the width along phi, the maximum over the sum and the hit count each separate with an AUC
    within 0.03 of the real 0.62, and the twin records the same AUCs in its twin.json."""
    from kerahep.artifacts import read_json

    rows = twins.run(quick=True, tasks=["electron_photon"], workdir=tmp_path, sizes={"electron_photon": 2000})
    assert [r.baseline for r in rows] == [value for value, _, _ in twins.REAL["electron_photon"].values()]
    failed = [(r.name, round(r.candidate, 3)) for r in rows if r.passed is not True]
    assert not failed, failed
    recorded = read_json(next(tmp_path.rglob("twin.json")))["feature_aucs"]
    for r, key in zip(rows, twins.REAL["electron_photon"]):
        assert recorded[key] == pytest.approx(r.candidate, abs=1e-12)


def test_variant_rows_compare_the_mean_over_seeds_with_the_published_auc(tmp_path, monkeypatch):
    """The full report's ResNet-15 variant rows (here the smoke preset, two seeds, two
    variants): the published AUC as baseline, the mean of the runs' own test AUCs (their
    metrics.json) as candidate, pass within 0.02 of it; each seed trains its own run on one
    shared twin; ``--quick`` reports have no such rows and the full report has one per variant."""
    from kerahep.artifacts import read_json
    from kerahep.benchmarks import twins_variants

    rows = twins_variants.variant_rows(tmp_path, seeds=(1, 2), variants=("time", "energy"), preset="smoke")
    assert [r.extra["variant"] for r in rows] == ["time", "energy"]
    assert [r.baseline for r in rows] == [0.667, 0.816]
    assert len(list((tmp_path / "data").rglob("twin.json"))) == 1  # one twin for every run
    for r in rows:
        aucs = []
        for seed, run in zip(r.extra["seeds"], r.extra["runs"]):
            config = read_json(tmp_path / "results" / "electron_photon" / run / "config.json")
            assert config["run"]["seed"] == seed and config["model"]["variant"] == r.extra["variant"]
            aucs.append(read_json(tmp_path / "results" / "electron_photon" / run / "metrics.json")["test"]["roc_auc"])
        assert r.extra["seeds"] == [1, 2] and len(set(r.extra["runs"])) == 2
        assert r.extra["aucs"] == pytest.approx(aucs, abs=1e-12)
        assert r.candidate == pytest.approx(sum(aucs) / 2, abs=1e-12)
        assert r.passed is (abs(r.candidate - r.baseline) <= 0.02)
        assert "seed 1:" in r.notes and "seed 2:" in r.notes

    calls = []
    monkeypatch.setattr(twins, "variant_rows", lambda d: calls.append(d) or [])
    monkeypatch.setattr(twins, "electron_photon_rows", lambda d, n: [])
    twins.run(quick=True, tasks=["electron_photon"], workdir=tmp_path / "quick")
    assert calls == []
    twins.run(quick=False, tasks=["electron_photon"], workdir=tmp_path / "full")
    assert calls == [tmp_path / "full" / "electron_photon" / "variants"]
