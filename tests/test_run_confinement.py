"""A run folder cannot steer writes elsewhere (issue 17): evaluation writes only inside the run
directory, whatever its config.json says; a run without a data fingerprint is refused unless
the user says to go on (--no-data-check); a run folder that is a symbolic link is reported,
and one found by --task/LATEST or the newest-run search that leads out of the results folder
is refused unless named with --run.

The trained run is the shared ``smoke_run("dy_electron")``, always copied into ``tmp_path``
before anything in it is changed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mistakes import assert_one_line_error, cli, copy_smoke_run, mtime_listing, set_fingerprint  # noqa: E402

from kerahep.errors import DataError  # noqa: E402
from kerahep.training import evaluate_run, resolve_run  # noqa: E402
from kerahep.training.evaluate import SANDBOX_PREFIX  # noqa: E402




def _test_auc(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["test"]["roc_auc"]


# ------------------------------------------------------------------ (a) data.data_dir
def test_foreign_data_dir_gets_nothing_the_twin_is_regenerated_inside_the_run(smoke_run, tmp_path, caplog):
    elsewhere = tmp_path / "elsewhere"  # where a foreign config.json points: an existing folder
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine\n")
    run = copy_smoke_run(smoke_run, tmp_path, data_dir=elsewhere)
    before = mtime_listing(elsewhere)
    with caplog.at_level(logging.WARNING):
        out = evaluate_run(run)
    assert mtime_listing(elsewhere) == before  # no twin written there
    assert out["twin_regenerated"] is True
    assert json.loads((run / "evaluation.json").read_text())["twin_regenerated"] is True
    assert out["data"]["paths"][0].startswith(str(run / SANDBOX_PREFIX))  # made inside the run ...
    assert not list(run.glob(SANDBOX_PREFIX + "*"))  # ... and removed afterwards
    assert any("regenerating" in r.getMessage() and str(run) in r.getMessage() for r in caplog.records)
    # the same deterministic twin: the stamp check passed and the metrics are the run's own
    assert out["test"]["roc_auc"] == pytest.approx(_test_auc(run), abs=1e-6)
    assert (run / "evaluation.json").exists()


def test_twin_in_place_is_read_not_rewritten(smoke_run, tmp_path, monkeypatch):
    # relative data_dir, evaluated from another folder that holds a copy of the same twin
    shared = smoke_run("dy_electron").root / "data" / "synthetic" / "dy_electron"
    twin = tmp_path / "data" / "synthetic" / "dy_electron"
    twin.mkdir(parents=True)
    for f in shared.glob("electron_dataset_*"):
        shutil.copy2(f, twin / f.name)
    run = copy_smoke_run(smoke_run, tmp_path, data_dir="data")
    monkeypatch.chdir(tmp_path)
    before = mtime_listing(tmp_path / "data")
    out = evaluate_run(run)
    assert "twin_regenerated" not in out
    assert out["data"]["paths"] == [str(Path("data/synthetic/dy_electron") / next(twin.glob("*.csv")).name)]
    assert mtime_listing(tmp_path / "data") == before  # read, not rewritten
    assert out["test"]["roc_auc"] == pytest.approx(_test_auc(run), abs=1e-6)


def test_run_trained_on_files_that_are_gone_is_refused_without_making_the_twin(smoke_run, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = copy_smoke_run(smoke_run, tmp_path, data_dir=elsewhere)
    gone = elsewhere / "processed" / "electron_dataset.csv"  # the prepared dataset, deleted since
    fp = json.loads((run / "metrics.json").read_text())["data"]["fingerprint"]
    set_fingerprint(run, {**fp, "source": "files", "files": [{"path": str(gone), "size": 10, "mtime_ns": 1}]})
    before = mtime_listing(run)
    with pytest.raises(DataError) as err:
        evaluate_run(run)
    assert err.value.path == str(gone) and "--data" in str(err.value) and "synthetic twin" in err.value.found
    assert list(elsewhere.iterdir()) == [] and mtime_listing(run) == before


# ------------------------------------------------------------------ (b) the data fingerprint
@pytest.mark.parametrize("damage", ["missing", "not_an_object", "files_not_a_list", "no_metrics"])
def test_missing_or_broken_fingerprint_is_refused_naming_the_flag(damage, smoke_run, tmp_path):
    run = copy_smoke_run(smoke_run, tmp_path)
    if damage == "no_metrics":
        (run / "metrics.json").unlink()
    else:
        set_fingerprint(run, {"missing": None, "not_an_object": "abc",
                               "files_not_a_list": {"source": "synthetic", "files": "x.csv"}}[damage])
    before = mtime_listing(run)
    with pytest.raises(DataError) as err:
        evaluate_run(run)
    assert err.value.path == str(run / "metrics.json")
    assert "--no-data-check" in str(err.value) and "no_data_check=True" in str(err.value)
    assert mtime_listing(run) == before


def test_no_data_check_flag_evaluates_a_run_without_fingerprint(smoke_run, tmp_path):
    run = copy_smoke_run(smoke_run, tmp_path)
    set_fingerprint(run, None)
    rc, _, err = cli("evaluate", "--run", run)
    assert_one_line_error(rc, err, run / "metrics.json", "--no-data-check")
    assert not (run / "evaluation.json").exists()
    rc, out, err = cli("evaluate", "--run", run, "--no-data-check")
    assert rc == 0, err[-3000:]
    assert "cannot be checked" in " ".join((out + err).split()) and (run / "evaluation.json").exists()
    assert not list(run.glob(SANDBOX_PREFIX + "*"))


def test_no_data_check_does_not_hide_a_fingerprint_that_differs(smoke_run, tmp_path):
    run = copy_smoke_run(smoke_run, tmp_path)
    fp = json.loads((run / "metrics.json").read_text())["data"]["fingerprint"]
    set_fingerprint(run, {**fp, "n_test": fp["n_test"] + 1})
    with pytest.raises(DataError, match="n_test"):
        evaluate_run(run, no_data_check=True)
    assert not (run / "evaluation.json").exists()


def test_link_inside_the_run_leading_out_is_refused(smoke_run, tmp_path):
    run = copy_smoke_run(smoke_run, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("do not overwrite\n")
    roc = run / "plots" / "roc.png"
    roc.unlink(missing_ok=True)
    roc.symlink_to(victim)
    with pytest.raises(DataError) as err:
        evaluate_run(run)
    assert err.value.path == str(roc) and os.path.realpath(victim) in err.value.found
    assert victim.read_text() == "do not overwrite\n" and not (run / "evaluation.json").exists()


# ------------------------------------------------------------------ (c) run folders that are links
def _fake_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "metrics.json").write_text("{}")
    return folder


def _results_with_link(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``results/toy/LATEST`` naming ``linked``, a link to a run folder outside results/."""
    results = tmp_path / "results"
    outside = _fake_run(tmp_path / "outside" / "run1")
    (results / "toy").mkdir(parents=True)
    link = results / "toy" / "linked"
    link.symlink_to(outside)
    (results / "toy" / "LATEST").write_text("linked\n")
    return results, link, outside


def test_latest_or_newest_run_linking_out_of_results_is_refused(tmp_path):
    results, link, outside = _results_with_link(tmp_path)
    for kwargs in ({"task": "toy"}, {}):
        with pytest.raises(DataError) as err:
            resolve_run(output_dir=str(results), **kwargs)
        assert err.value.path == str(link)
        assert os.path.realpath(outside) in err.value.found and f"--run {link}" in err.value.found


def test_task_folder_linking_out_of_results_is_refused(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _fake_run(tmp_path / "outside" / "toy" / "run1")
    (tmp_path / "outside" / "toy" / "LATEST").write_text("run1\n")
    (results / "toy").symlink_to(tmp_path / "outside" / "toy")
    with pytest.raises(DataError) as err:
        resolve_run(task="toy", output_dir=str(results))
    assert err.value.path == str(results / "toy")
    assert os.path.realpath(tmp_path / "outside" / "toy") in err.value.found


def test_link_given_with_run_or_inside_results_is_followed_and_reported(tmp_path, caplog):
    results, link, outside = _results_with_link(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert resolve_run(run=str(link)) == link
    assert any(str(link) in r.getMessage() and os.path.realpath(outside) in r.getMessage() for r in caplog.records)
    caplog.clear()
    real = _fake_run(results / "toy" / "real")
    link.unlink()
    link.symlink_to(real)  # a link that stays inside results/
    with caplog.at_level(logging.WARNING):
        assert resolve_run(task="toy", output_dir=str(results)) == link
    assert any(str(link) in r.getMessage() and os.path.realpath(real) in r.getMessage() for r in caplog.records)


def test_cli_refuses_latest_link_out_of_results(tmp_path, monkeypatch):
    results, link, outside = _results_with_link(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli("evaluate", "--task", "toy")
    assert_one_line_error(rc, err, Path("results/toy/linked"), os.path.realpath(outside), "--run")
    assert set(os.listdir(outside)) == {"config.json", "metrics.json"}  # nothing written there
