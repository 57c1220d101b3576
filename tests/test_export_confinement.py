"""A run folder cannot steer the writes of ``kerahep export`` elsewhere (issue 17): the test
events are rebuilt as evaluation rebuilds them (kerahep.training.evaluate.load_confined), so a
foreign ``config.json``'s ``data.data_dir`` gets nothing, a missing or broken data fingerprint
is refused unless ``--no-data-check`` is passed, a fingerprint that differs is refused even
then, and a link in the run leading out of it is refused.

The trained run is the shared ``smoke_run("dy_electron")``, always copied into ``tmp_path``
before anything in it is changed (the same copies as tests/test_run_confinement.py makes).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import require_backend  # noqa: E402
from mistakes import assert_one_line_error, cli, copy_smoke_run, mtime_listing, set_fingerprint  # noqa: E402

from kerahep.errors import DataError  # noqa: E402
from kerahep.export import export_run, load_run  # noqa: E402
from kerahep.training.evaluate import SANDBOX_PREFIX  # noqa: E402

EVENTS = 64




def _same_events(a, b) -> None:
    for got, want in zip(keras.tree.flatten(a), keras.tree.flatten(b), strict=True):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ (a) data.data_dir
def test_foreign_data_dir_gets_nothing_the_same_test_events_come_from_a_twin_inside_the_run(
        smoke_run, tmp_path, caplog):
    require_backend("onnx", "onnxruntime", "tf2onnx")
    elsewhere = tmp_path / "elsewhere"  # where a foreign config.json points: an existing folder
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine\n")
    run = copy_smoke_run(smoke_run, tmp_path, data_dir=elsewhere)
    before = mtime_listing(elsewhere)
    with caplog.at_level(logging.WARNING):
        inputs = load_run(run, max_events=EVENTS)
    assert mtime_listing(elsewhere) == before  # no twin written there
    assert inputs.info == {"split": "test", "twin_regenerated": True}
    assert any("regenerating" in r.getMessage() and str(run) in r.getMessage() for r in caplog.records)
    assert not list(run.glob(SANDBOX_PREFIX + "*"))  # the twin made in the run is gone again
    own = load_run(smoke_run("dy_electron").run_dir, max_events=EVENTS)  # the run's own twin, read in place
    assert inputs.n_events == own.n_events == EVENTS
    _same_events(inputs.x, own.x)  # the deterministic twin: the same test events, stamp check passed
    _same_events(inputs.y, own.y)
    # the whole command: the export lands in the run, nothing anywhere else
    outside = mtime_listing(tmp_path / "results" / "dy_electron")
    rc, out, err = cli("export", "--run", run, "--format", "onnx", "--events", EVENTS, "--route", "keras",
                       "--route", "tf2onnx")
    assert rc == 0, err[-3000:]
    assert mtime_listing(elsewhere) == before and (run / "export" / "model.onnx").is_file()
    new = set(mtime_listing(tmp_path / "results" / "dy_electron")) - set(outside)
    assert all(p.startswith(f"{run.name}/export") for p in new), new
    prov = json.loads((run / "export" / "model.onnx.provenance.json").read_text())
    assert prov["check"]["events"] == EVENTS and prov["check"]["passed"]


def test_run_trained_on_files_that_are_gone_is_refused_without_making_the_twin(smoke_run, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = copy_smoke_run(smoke_run, tmp_path, data_dir=elsewhere)
    gone = elsewhere / "processed" / "electron_dataset.csv"  # the prepared dataset, deleted since
    fp = json.loads((run / "metrics.json").read_text())["data"]["fingerprint"]
    set_fingerprint(run, {**fp, "source": "files", "files": [{"path": str(gone), "size": 10, "mtime_ns": 1}]})
    before = mtime_listing(run)
    with pytest.raises(DataError) as err:
        export_run(run, "saved_model")
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
        export_run(run, "saved_model")
    assert err.value.path == str(run / "metrics.json") and "--no-data-check" in str(err.value)
    assert mtime_listing(run) == before  # no export/, no sandbox


def test_no_data_check_flag_exports_a_run_without_fingerprint(smoke_run, tmp_path):
    require_backend("onnx", "onnxruntime", "tf2onnx")
    run = copy_smoke_run(smoke_run, tmp_path)
    set_fingerprint(run, None)
    out = tmp_path / "model.onnx"
    rc, _, err = cli("export", "--run", run, "--format", "onnx", "--out", out, "--events", 16)
    assert_one_line_error(rc, err, run / "metrics.json", "--no-data-check")
    assert not out.exists() and not (run / "export").exists()
    rc, text, err = cli("export", "--run", run, "--format", "onnx", "--out", out, "--events", 16,
                        "--route", "keras", "--route", "tf2onnx", "--no-data-check")
    assert rc == 0, err[-3000:]
    assert "cannot be checked" in " ".join((text + err).split()) and out.is_file()
    assert json.loads(Path(str(out) + ".provenance.json").read_text())["check"]["events"] == 16


def test_no_data_check_does_not_hide_a_fingerprint_that_differs(smoke_run, tmp_path):
    run = copy_smoke_run(smoke_run, tmp_path)
    fp = json.loads((run / "metrics.json").read_text())["data"]["fingerprint"]
    set_fingerprint(run, {**fp, "n_test": fp["n_test"] + 1})
    for no_check in (False, True):
        with pytest.raises(DataError, match="n_test"):
            export_run(run, "saved_model", no_data_check=no_check)
    assert not (run / "export").exists()


def test_link_inside_the_run_leading_out_is_refused(smoke_run, tmp_path):
    run = copy_smoke_run(smoke_run, tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (run / "export").symlink_to(victim)  # the default target folder of an export
    with pytest.raises(DataError) as err:
        export_run(run, "saved_model")
    assert err.value.path == str(run / "export") and os.path.realpath(victim) in err.value.found
    assert list(victim.iterdir()) == []
