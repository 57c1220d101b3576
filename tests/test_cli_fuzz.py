"""The command line against random combinations of user mistakes (issue 17).

Hypothesis draws a command (``train`` on each task's input files, ``train --resume``,
``evaluate``, ``prepare``, ``compare-variants``) and a random set of the mistakes of
:mod:`mistakes` (unreadable inputs, a directory or a truncated ``.csv.gz`` for ``--data``,
an output folder that is a file or not writable, a ``data_dir`` that is a file, damaged
``config.json``/``LATEST``/``history.csv``/``metrics.json``, an evaluation that fails
half-way), made in a fresh copy of one prepared folder. Whatever the combination:

- the exit status is 0 or 2, and 2 comes with exactly one ``error:`` line;
- nothing on stderr is a traceback;
- no new file appears outside a run directory (``results/<task>/<run>/``), a refused
  output (``--out``) is refused before any input is read, and the file a ``LATEST`` link
  points to is never printed.

Commands run in-process (``kerahep.commands.main``); two cases run as real processes, to
see their whole stderr. Combinations that could train a real task always hold a mistake
that stops it first, so the fuzzer stays cheap (the toy task trains where a run succeeds).
The cases run are counted in :data:`fuzzing.CASES` (printed at the end of the session).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import mistakes  # noqa: E402
from fuzzing import CASES  # noqa: E402
from mistakes import SECRET, cli, error_lines  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

#: the input files of each task's ``--data`` (relative to the folder) and the one made unreadable
INPUTS = {"dy_electron": (["inputs/prepared.csv"], 0),
          "electron_photon": (["inputs/calo/SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5",
                               "inputs/calo/SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5"], 0),
          "higgs_mae": (["inputs/HIGGS.csv"], 0)}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """The folder every case starts from (copied): the toy runs ``done`` (LATEST) and ``killed``
    (:func:`mistakes.toy_runs`), two electron_photon runs, each task's inputs, a file ``afile``,
    a folder ``adir.csv`` and a folder ``ro`` (made unwritable by the mistake that needs it)."""
    root = tmp_path_factory.mktemp("cli-fuzz-golden")
    shutil.copytree(mistakes.toy_runs(tmp_path_factory), root / "results", symlinks=True)
    mistakes.electron_photon_runs(root / "results")
    (root / "inputs").mkdir()
    mistakes.make_prepared_csv(root / "inputs" / "prepared.csv")
    mistakes.make_calo_pair(root / "inputs" / "calo")
    mistakes.make_higgs(root / "inputs" / "HIGGS.csv")
    mistakes.make_truncated_gz(root / "inputs" / "HIGGS.csv.gz")
    (root / "afile").write_text("a file, not a folder\n")
    (root / "adir.csv").mkdir()
    (root / "ro").mkdir()
    (root / "new.npy").write_bytes(b"\x93NUMPY")  # what evaluate --data is given (the toy task ignores it)
    assert sorted(p.name for p in (root / "inputs" / "calo").glob("*.hdf5")) == sorted(
        Path(p).name for p in INPUTS["electron_photon"][0])
    return root


@contextlib.contextmanager
def workspace(golden: Path):
    """A fresh copy of ``golden`` as the current folder."""
    base = Path(tempfile.mkdtemp(prefix="cli-fuzz-"))
    work = base / "w"
    shutil.copytree(golden, work, symlinks=True)
    old = os.getcwd()
    os.chdir(work)
    try:
        yield work
    finally:
        os.chdir(old)
        for p in work.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                os.chmod(p, 0o755)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------ the strategies
OUTPUT_DIR = {"file": "afile", "under_a_file": "afile/results", "unwritable": "ro"}
DATA_DIR = {"file": "afile", "under_a_file": "afile/data"}
OUT = {"dir": "adir.csv", "under_a_file": "afile/table.csv", "unwritable": "ro/table.csv"}
maybe = lambda strategy: st.one_of(st.none(), strategy)


@st.composite
def damage(draw):
    """Mistakes in the folder itself (any command may meet them)."""
    return {
        "config": draw(maybe(st.tuples(st.sampled_from(["done", "killed"]),
                                       st.sampled_from(sorted(mistakes.CONFIG_DAMAGE))))),
        "latest": draw(maybe(st.sampled_from(mistakes.LATEST_DAMAGE))),
        "history_cut": draw(maybe(st.integers(0, 60))),
        "metrics": draw(maybe(st.sampled_from(sorted(mistakes.METRICS_DAMAGE)))),
        "unreadable": draw(st.sets(st.sampled_from(sorted(INPUTS)))),
    }


@st.composite
def command(draw):
    """``(argv, mistakes in the arguments)``."""
    kind = draw(st.sampled_from(["train", "resume", "evaluate", "prepare", "compare"]))
    made: dict = {}
    if kind == "train":
        task = draw(st.sampled_from(sorted(INPUTS)))
        files = list(INPUTS[task][0])
        data = draw(maybe(st.sampled_from(["dir", "missing"] + (["truncated_gz"] if task == "higgs_mae" else []))))
        if data:
            files[0] = {"dir": "adir.csv", "missing": "inputs/missing.csv", "truncated_gz": "inputs/HIGGS.csv.gz"}[data]
            made["data"] = data
        argv = ["train", "--task", task, "--data", *files, "--quiet"]
        made["task"] = task
    elif kind == "resume":
        argv = ["train", "--task", "toy", "--resume", "--quiet"]
        if draw(st.booleans()):
            argv += ["--run-id", "killed"]
    elif kind == "evaluate":
        argv = ["evaluate"] + draw(st.sampled_from([[], ["--task", "toy"], ["--run", "results/toy/done"]]))
        if draw(st.booleans()):
            argv += ["--data", "new.npy"]
            made["evaluate_fails"] = draw(st.booleans())
    elif kind == "prepare":
        argv = ["prepare", "--task", "dy_electron", "--signal", "missing.root", "--background", "missing.root"]
    else:
        argv = ["compare-variants"]
    if kind in ("prepare", "compare"):
        out = draw(maybe(st.sampled_from(sorted(OUT))))
        if out:
            argv += ["--out", OUT[out]]
            made["out"] = out
        elif kind == "compare" and draw(st.booleans()):
            argv += ["--out", "table.csv"]
    if kind != "prepare":
        out_dir = draw(maybe(st.sampled_from(sorted(OUTPUT_DIR))))
        if out_dir:
            argv += ["--output-dir", OUTPUT_DIR[out_dir]]
            made["output_dir"] = out_dir
    if kind in ("train", "prepare"):
        data_dir = draw(maybe(st.sampled_from(sorted(DATA_DIR))))
        if data_dir:
            argv += ["--set", f"data.data_dir={DATA_DIR[data_dir]!r}"]
            made["data_dir"] = data_dir
    return kind, argv, made


def apply_damage(work: Path, d: dict) -> None:
    if d["config"]:
        mistakes.damage_config(work / "results" / "toy" / d["config"][0], d["config"][1])
    if d["latest"]:
        mistakes.damage_latest(work / "results" / "toy", d["latest"])
    if d["history_cut"] is not None:
        mistakes.cut_history(work / "results" / "toy" / "killed", d["history_cut"])
    if d["metrics"]:
        (work / "results" / "electron_photon" / "b" / "metrics.json").write_bytes(mistakes.METRICS_DAMAGE[d["metrics"]])


def stops_before_training(kind: str, made: dict, d: dict) -> bool:
    """A ``train`` of a real task needs a mistake that stops it before it trains (cheap fuzzing)."""
    if kind != "train":
        return True
    return bool(made.get("data") or made.get("output_dir") or made["task"] in d["unreadable"])


def in_a_run_directory(rel: str, work: Path) -> bool:
    """``results/<task>/<run>/...``, or the ``results/<task>`` folder that holds a new run."""
    parts = Path(rel).parts
    return parts[:1] == ("results",) and (len(parts) >= 3 or (len(parts) == 2 and (work / rel).is_dir()))


# ------------------------------------------------------------------ the property
@FUZZ
@given(d=damage(), cmd=command())
def test_any_combination_of_mistakes_exits_0_or_2_in_one_line(golden, d, cmd):
    from hypothesis import assume

    kind, argv, made = cmd
    assume(stops_before_training(kind, made, d))
    CASES[f"cli_{kind}"] += 1
    with workspace(golden) as work:
        apply_damage(work, d)
        before = mistakes.listing(work)
        unreadable = [work / INPUTS[t][0][INPUTS[t][1]] for t in sorted(d["unreadable"])]
        with contextlib.ExitStack() as stack:
            stack.enter_context(mistakes.unreadable(*unreadable))
            if made.get("output_dir") == "unwritable" or made.get("out") == "unwritable":
                stack.enter_context(mistakes.unwritable(work / "ro"))
            if made.get("evaluate_fails"):
                stack.enter_context(failing_toy_evaluation())
            stack.enter_context(stop_at_training())
            rc, out, err = cli(*argv)
        assert "Traceback" not in err, (argv, d, err[-3000:])
        assert rc in (0, 2), (argv, d, rc, err[-3000:])
        if rc == 2:
            assert len(error_lines(err)) == 1, (argv, d, err[-3000:])
            if REACHED in error_lines(err)[0]:
                pass  # a run that passed every check (see stop_at_training)
        assert SECRET not in out + err
        if made.get("out"):  # refused before anything was read: the error names the output
            blocker = {"dir": "adir.csv", "under_a_file": "afile", "unwritable": "ro"}[made["out"]]
            assert rc == 2 and error_lines(err)[0].startswith(f"error: {blocker}: expected"), (argv, d, err[-3000:])
        new = {p for p in mistakes.listing(work) - before if not in_a_run_directory(p, work)}
        if rc == 0 and kind == "compare" and "--out" in argv:
            new -= {"table.csv", "table.png"}
        assert not new, (argv, d, sorted(new))
        assert not (work / "ro").exists() or not any((work / "ro").iterdir())


REACHED = "training reached (the fuzzer stops a run here)"


@contextlib.contextmanager
def stop_at_training():
    """A run that passed every check stops where its task would start training (as a user
    mistake would, exit 2): training costs seconds a case, and a resumed run trained to
    its end is tested in test_user_mistakes.py."""
    from kerahep.errors import KerahepError
    from kerahep.training import trainer

    def reached(task, ctx):
        raise KerahepError(REACHED)

    saved = trainer.fit_task
    trainer.fit_task = reached
    try:
        yield
    finally:
        trainer.fit_task = saved


@contextlib.contextmanager
def failing_toy_evaluation():
    """The toy task's evaluation fails half-way: a plot written, then an error."""
    from kerahep.errors import KerahepError

    toy = mistakes.toytask.ToyTask

    def fail(self, ctx, result, data):
        (ctx.plots_dir / "half.png").write_bytes(b"x")
        raise KerahepError("the scores could not be computed")

    saved = toy.__dict__.get("evaluate")
    toy.evaluate = fail
    try:
        yield
    finally:
        if saved is None:
            del toy.evaluate
        else:
            toy.evaluate = saved


# ------------------------------------------------------------------ real processes
def test_real_processes_print_one_line_and_no_traceback(golden):
    """Two cases as real processes (their whole stderr, Python's own exit included): a
    LATEST linked to another file, and a truncated ``.csv.gz`` given to higgs_mae."""
    with workspace(golden) as work:
        task_root = work / "results" / "dy_electron"
        task_root.mkdir()
        mistakes.damage_latest(task_root, "link")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        runs = [[sys.executable, "-m", "kerahep", "evaluate", "--task", "dy_electron"],
                [sys.executable, "-m", "scripts.train", "--task", "higgs_mae", "--data", "inputs/HIGGS.csv.gz",
                 "--quiet"]]
        procs = [subprocess.Popen(r, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for r in runs]
        done = [(p.communicate(timeout=300), p.returncode) for p in procs]
        CASES["cli_subprocess"] += len(done)
        for ((out, err), rc), expect in zip(done, ("LATEST: expected", "HIGGS.csv.gz: expected a complete gzip")):
            assert rc == 2 and "Traceback" not in err, err[-3000:]
            assert len(error_lines(err)) == 1 and expect in error_lines(err)[0], err[-3000:]
            assert SECRET not in out + err
