"""Every user mistake of issue 17 ends in kerahep's own one-line error (exit 2, no traceback)
naming the path, what was expected and what was found, and leaves nothing behind.

The commands run in-process (``kerahep.commands.main``); the unprivileged-user test runs
them in a subprocess as a user whom permissions really stop (the tests may run as root,
whom ``chmod 000`` does not stop: there :func:`mistakes.unreadable` simulates the refusal).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import mistakes  # noqa: E402
from mistakes import SECRET, assert_one_line_error, cli  # noqa: E402

from kerahep.errors import DataError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def results(workdir, tmp_path_factory):
    """A copy of :func:`mistakes.toy_runs` (``done`` and ``killed``) as ``results/`` of the current folder."""
    import shutil

    shutil.copytree(mistakes.toy_runs(tmp_path_factory), workdir / "results", symlinks=True)
    return workdir / "results"


# ------------------------------------------------------------------ inputs
def _inputs(folder: Path) -> dict:
    """``{case: (task, [paths given to --data], path made unreadable)}``."""
    calo = mistakes.make_calo_pair(folder / "calo")
    return {
        "prepared_csv": ("dy_electron", [mistakes.make_prepared_csv(folder / "prepared.csv")], 0),
        "calo_hdf5": ("electron_photon", calo, 1),
        "higgs_csv": ("higgs_mae", [mistakes.make_higgs(folder / "HIGGS.csv")], 0),
    }


@pytest.mark.parametrize("case", ["prepared_csv", "calo_hdf5", "higgs_csv"])
def test_input_without_read_permission(case, workdir):
    task, paths, which = _inputs(workdir)[case]
    with mistakes.unreadable(paths[which]):
        rc, _, err = cli("train", "--task", task, "--data", *paths, "--quiet")
    line = assert_one_line_error(rc, err, paths[which].name, "permission denied")
    assert "may read" in line


@pytest.mark.parametrize("task,name", [("dy_electron", "some_dir.csv"), ("higgs_mae", "some_dir.csv"),
                                       ("electron_photon", "some_dir.hdf5")])
def test_directory_given_where_a_file_is_expected(task, name, workdir):
    (workdir / name).mkdir()
    extra = [str(mistakes.make_calo_pair(workdir / "calo")[0])] if task == "electron_photon" else []
    rc, _, err = cli("train", "--task", task, "--data", name, *extra, "--quiet")
    assert_one_line_error(rc, err, name, "a directory")


def test_prepare_out_an_existing_directory_is_refused_before_any_input_is_read(workdir):
    (workdir / "existing").mkdir()
    rc, _, err = cli("prepare", "--task", "dy_electron", "--synthetic", "--out", "existing",
                     "--set", "data.synthetic_events=50")
    assert_one_line_error(rc, err, "existing", "an existing directory")
    assert sorted(p.name for p in workdir.iterdir()) == ["existing"]  # the twin was not made
    from kerahep.data.nanoaod import prepare_dataset

    with pytest.raises(DataError, match="existing: expected a file path"):  # not "missing.root: no such file"
        prepare_dataset(["missing.root"], ["missing.root"], workdir / "existing", progress=False)
    (workdir / "afile").write_text("x")
    rc, _, err = cli("prepare", "--signal", "missing.root", "--background", "missing.root", "--out", "afile/x.csv")
    assert_one_line_error(rc, err, "afile", "a file")


def test_truncated_csv_gz_for_higgs_mae(workdir):
    from kerahep.data.higgs import count_rows, read_higgs

    path = mistakes.make_truncated_gz(workdir / "HIGGS.csv.gz")
    for read in (read_higgs, count_rows):
        with pytest.raises(DataError, match="HIGGS.csv.gz: expected a complete gzip file .* ends early"):
            read(path)
    rc, _, err = cli("train", "--task", "higgs_mae", "--data", path.name, "--quiet")
    assert_one_line_error(rc, err, "HIGGS.csv.gz", "ends early")


def test_output_dir_that_is_a_file_or_not_writable(workdir):
    (workdir / "afile").write_text("x")
    for out in ("afile", "afile/sub"):
        rc, _, err = cli("train", "--task", "toy", "--output-dir", out, "--quiet")
        assert_one_line_error(rc, err, "afile: expected a folder for run directories", "found a file")
    for argv in (["evaluate"], ["compare-variants"]):
        rc, _, err = cli(*argv, "--output-dir", "afile")
        assert_one_line_error(rc, err, "afile: expected a results folder", "found a file")
    (workdir / "ro").mkdir()
    with mistakes.unwritable(workdir / "ro"):
        rc, _, err = cli("train", "--task", "toy", "--output-dir", "ro", "--quiet")
    assert_one_line_error(rc, err, "ro: expected a folder kerahep may write into", "no write permission")
    assert sorted(p.name for p in workdir.iterdir()) == ["afile", "ro"] and not any((workdir / "ro").iterdir())


def test_data_dir_that_is_a_file(workdir):
    (workdir / "afile").write_text("x")
    rc, _, err = cli("train", "--task", "dy_electron", "--set", "data.data_dir='afile'", "--quiet",
                     "--set", "data.synthetic_events=50")
    assert_one_line_error(rc, err, "afile", "data.data_dir", "found a file")
    rc, _, err = cli("prepare", "--task", "electron_photon", "--synthetic", "--set", "data.data_dir='afile'")
    assert_one_line_error(rc, err, "afile", "data.data_dir", "found a file")


def test_inputs_and_folders_refused_for_a_real_unprivileged_user(tmp_path):
    """The real thing: unreadable inputs, an output folder and a data_dir without write
    permission, for a user the permissions stop (as root: ``nobody``, through setpriv). One
    process runs every case (in-process, as :func:`mistakes.cli`), so Keras is imported once."""
    import shutil

    prefix = []
    if mistakes.is_root():
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: no unprivileged user to run as (the in-process "
                        "tests simulate the refusals)")
        prefix = [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"]
    work = Path(tempfile.mkdtemp(prefix="kerahep-perm-"))  # pytest's folders are closed to other users
    try:
        os.chmod(work, 0o777)
        paths = _inputs(work)
        for _, files, which in paths.values():
            os.chmod(files[which], 0)
        (work / "ro").mkdir()
        os.chmod(work / "ro", 0o555)
        cases = [["train", "--task", t, "--data", *map(str, files), "--quiet", "--output-dir", str(work / "res")]
                 for t, files, _ in paths.values()]
        cases += [["train", "--task", "dy_electron", "--output-dir", str(work / "ro"), "--quiet"],
                  ["train", "--task", "dy_electron", "--set", f"data.data_dir={str(work / 'ro')!r}",
                   "--output-dir", str(work / "res"), "--quiet"]]
        script = (f"import json, sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]\n"
                  "from mistakes import cli\n"
                  "print('RESULTS', json.dumps([cli(*c)[::2] for c in json.loads(sys.argv[1])]))\n")
        env = dict(os.environ, HOME=str(work), MPLCONFIGDIR=str(work / "mpl"))
        proc = subprocess.run([*prefix, sys.executable, "-c", script, json.dumps(cases)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)
        if "RESULTS" not in proc.stdout and ("ImportError" in proc.stderr or "ermission denied" in proc.stderr):
            pytest.skip(f"the unprivileged user cannot run this checkout's Python: {proc.stderr[-300:]}")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        results = json.loads(proc.stdout.split("RESULTS", 1)[1])
        for (rc, err), (_, files, which) in zip(results[:3], paths.values()):
            assert_one_line_error(rc, err, f"{files[which]}: expected", "found permission denied")
        for rc, err in results[3:]:
            assert_one_line_error(rc, err, f"{work / 'ro'}: expected a folder kerahep may write into")
        assert "data.data_dir" in results[4][1]
        assert list((work / "ro").iterdir()) == []
    finally:
        for p in work.rglob("*"):
            if not p.is_symlink():
                os.chmod(p, 0o755)
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ run directories
@pytest.mark.parametrize("kind", sorted(mistakes.CONFIG_DAMAGE))
def test_damaged_config_json_of_a_run(kind, results):
    done, killed = Path("results/toy/done"), Path("results/toy/killed")
    path = mistakes.damage_config(done, kind)
    rc, _, err = cli("evaluate", "--run", done)
    assert_one_line_error(rc, err, path)
    rc, _, err = cli("evaluate", "--task", "toy")  # LATEST names it
    assert_one_line_error(rc, err, path)
    path = mistakes.damage_config(killed, kind)
    before = mistakes.listing(killed)
    rc, _, err = cli("train", "--task", "toy", "--resume", "--run-id", "killed", "--quiet")
    assert_one_line_error(rc, err, path, "cannot resume")
    assert mistakes.listing(killed) == before


@pytest.mark.parametrize("kind", mistakes.LATEST_DAMAGE)
def test_damaged_latest(kind, results):
    latest = mistakes.damage_latest(Path("results/toy"), kind)
    for argv in (["evaluate", "--task", "toy"], ["evaluate"]):
        rc, out, err = cli(*argv)
        line = assert_one_line_error(rc, err, latest)
        assert SECRET not in out + err
        assert "no complete run" not in line  # it says what is wrong with LATEST
    assert not (results / "toy" / "done" / "evaluation.json").exists()


def test_history_csv_cut_by_a_kill_is_repaired_by_resume(results):
    import csv

    killed = results / "toy" / "killed"
    history = mistakes.cut_history(killed)
    assert not history.read_text().endswith("\n")
    rc, out, err = cli("train", "--task", "toy", "--resume", "--run-id", "killed", "--quiet")
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    assert "its last line was cut off" in " ".join((out + err).split())  # the warning, however it is wrapped
    with open(history, newline="") as f:
        rows = list(csv.reader(f))
    assert all(len(r) == len(rows[0]) for r in rows) and [r[0] for r in rows[1:]] == ["0", "1"]
    assert json.loads((killed / "metrics.json").read_text())["status"] == "complete"


def test_repair_history_keeps_whole_lines_only(tmp_path):
    from kerahep.training.rundir import dedupe_history, history_progress, repair_history

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_auc\n0,0.5,0.7\n1,0.4,0.8\n2,0.3")
    assert history_progress(path, "val_auc", "max") == (0.8, 0)  # the cut row is not an epoch
    assert repair_history(path) and path.read_text() == "epoch,loss,val_auc\n0,0.5,0.7\n1,0.4,0.8\n"
    assert not repair_history(path)
    path.write_text("epo")
    assert repair_history(path) and path.read_text() == ""
    path.write_text("epoch,loss,val_auc\n0,0.5,0.7\n1,0.4\n1,0.45,0.75\nx,1,1\n")
    dedupe_history(path)
    assert path.read_text() == "epoch,loss,val_auc\n0,0.5,0.7\n1,0.45,0.75\n"


@pytest.mark.parametrize("kind", sorted(mistakes.METRICS_DAMAGE))
def test_one_sibling_with_a_damaged_metrics_json_when_comparing_variants(kind, workdir):
    mistakes.electron_photon_runs(workdir / "results")
    assert cli("compare-variants")[0] == 0
    bad = Path("results/electron_photon/b/metrics.json")
    bad.write_bytes(mistakes.METRICS_DAMAGE[kind])
    before = mistakes.listing(workdir)
    rc, _, err = cli("compare-variants", "--out", "table.csv")
    assert_one_line_error(rc, err, bad, "move that run out")
    assert mistakes.listing(workdir) == before


def test_compare_variants_out_an_existing_directory_is_refused_before_reading(workdir):
    mistakes.electron_photon_runs(workdir / "results")
    (workdir / "table.csv").mkdir()
    rc, _, err = cli("compare-variants", "--out", "table.csv")
    assert_one_line_error(rc, err, "table.csv", "an existing directory")
    assert not (workdir / "table.png").exists()


def test_failed_evaluate_data_leaves_no_external_folder(results, monkeypatch):
    from kerahep.errors import KerahepError

    done = results / "toy" / "done"

    def fail(self, ctx, result, data):  # half-way through the report: a plot written, then a failure
        (ctx.plots_dir / "half.png").write_bytes(b"x")
        raise KerahepError("the scores could not be computed")

    monkeypatch.setattr(mistakes.toytask.ToyTask, "evaluate", fail)
    before = mistakes.listing(done)
    rc, _, err = cli("evaluate", "--run", done, "--data", "new.npy")
    assert_one_line_error(rc, err, "could not be computed")
    assert not (done / "external").exists() and mistakes.listing(done) == before
    (done / "external" / "earlier").mkdir(parents=True)  # an earlier evaluation's folder stays
    assert cli("evaluate", "--run", done, "--data", "new.npy")[0] == 2
    assert sorted(p.name for p in (done / "external").iterdir()) == ["earlier"]
