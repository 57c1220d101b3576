"""Every task through the real command lines, on the backends other than TensorFlow:

- killed with SIGKILL in the middle of an epoch on the torch backend, then continued with
  ``python -m scripts.train --resume`` (no ``--set`` repeated: the run's config.json is
  used): earlier stages are not trained again, every epoch of every stage is logged
  once, and the artifacts are complete;
- trained with ``python -m scripts.train --backend jax``, then re-evaluated with
  ``python -m scripts.evaluate`` on the same backend after its plots and tables were
  deleted: the task contract says evaluation reproduces training's report (same test
  metrics to 1e-6, the same plots and tables under the same names, nothing written outside
  the run directory); then all five runs are scored on ``--backend torch`` (one process)
  with the same test AUC.

Each task runs its ``smoke`` preset (every stage, tiny data). The TensorFlow path of
each task is covered by its own test file; the kill/resume mechanics (learning rate on
schedule, optimizer state) by tests/test_reliability.py.
"""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kerahep.artifacts import read_json

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

# task -> (the stage killed in its second epoch, the settings that give that stage two
# epochs of several batches)
KILL = {
    "dy_electron": ("main", ["training.epochs=2"]),
    "electron_photon": ("main", ["training.epochs=2"]),
    "higgs_mae": ("main", ["model.finetune_epochs=2"]),  # after pre-training and the frozen classifier
    "jet_ssl": ("finetune_", ["model.downstream_max_epochs=2", "model.downstream_batch_size=8"]),
    "hcal_dqm": ("autoencoder", ["model.ae_epochs=2"]),  # after the classifier
}

# Runs scripts.train with a callback that SIGKILLs the process at the start of the second
# batch of the second epoch of the named stage (a real kill, at a known point).
KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import keras
from kerahep import training

STAGE = sys.argv[1]

class KillMidEpoch(keras.callbacks.Callback):
    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

original = training.RunContext.callbacks

def callbacks(self, stage, *args, **kwargs):
    cbs = original(self, stage, *args, **kwargs)
    return cbs + [KillMidEpoch()] if stage.startswith(STAGE) else cbs

training.RunContext.callbacks = callbacks
from scripts.train import main
sys.exit(main(sys.argv[2:]))
"""


def _env(backend):
    return dict(os.environ, PYTHONPATH=str(REPO), KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="")


def _run(args, cwd, backend, code=None):
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(backend), capture_output=True, text=True, timeout=600)


def _ok(proc):
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])


def _epochs(path: Path) -> list[int]:
    with open(path, newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def _histories(run: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(run.glob("history*.csv"))}


@pytest.fixture(scope="module")
def workroot(tmp_path_factory):
    """One folder for the module, so each twin is written once."""
    return tmp_path_factory.mktemp("task_runs")


@pytest.mark.parametrize("task", sorted(KILL))
def test_sigkill_mid_epoch_then_resume_on_torch(task, workroot, backends):
    backends("torch")
    stage, extra = KILL[task]
    sets = [a for s in extra for a in ("--set", s)]
    run = workroot / "results" / task / "killed"
    killed = _run([stage, "--task", task, "--preset", "smoke", "--backend", "torch", "--quiet",
                   "--run-id", "killed", *sets], workroot, "torch", code=KILLER.format(repo=str(REPO)))
    assert killed.returncode == -signal.SIGKILL, ("the run was not killed", killed.stderr[-4000:])
    assert not (run / "metrics.json").exists() or json.loads((run / "metrics.json").read_text())["status"] != "complete"
    assert not (run / "model.keras").exists()
    before = _histories(run)
    killed_file = "history.csv" if stage == "main" else next(n for n in before if n.startswith(f"history_{stage}"))
    assert _epochs(run / killed_file) == [0]  # killed inside the second epoch of that stage
    finished_before = {n: b for n, b in before.items() if n != killed_file}

    # --resume alone: the smoke preset and the --set values come from the run's config.json
    resumed = _run(["scripts.train", "--task", task, "--backend", "torch", "--quiet", "--resume",
                    "--run-id", "killed"], workroot, "torch")
    _ok(resumed)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["preset"] == "smoke"
    assert metrics["environment"]["resumed"] is True and metrics["environment"]["backend"] == "torch"
    after = _histories(run)
    for name, content in finished_before.items():  # completed stages were not trained again
        assert after[name] == content, f"{name} changed on resume"
    assert _epochs(run / killed_file) == [0, 1]
    for name in after:  # every epoch of every stage exactly once
        epochs = _epochs(run / name)
        assert epochs == list(range(len(epochs))), (name, epochs)
    assert (run.parent / "LATEST").read_text().strip() == "killed"
    assert not (run / "backup").exists() and not (run / "stages").exists()

    from kerahep.saving import load_model
    from kerahep.registry import get_task

    for name in get_task(task).artifacts:
        path = run / f"{name}.keras"
        if name == "model" or path.exists():
            load_model(path)  # complete, and loads in safe mode on TensorFlow


@pytest.mark.parametrize("task", sorted(KILL))
def test_train_on_jax_then_evaluate_reproduces_the_report_and_torch_agrees(task, workroot, backends):
    backends("jax", "torch")
    out = workroot / "jax_results"
    _ok(_run(["scripts.train", "--task", task, "--preset", "smoke", "--backend", "jax", "--quiet",
              "--output-dir", str(out)], workroot, "jax"))
    run = out / task / (out / task / "LATEST").read_text().strip()
    metrics = read_json(run / "metrics.json")  # strict JSON, its non-finite numbers restored
    assert metrics["status"] == "complete" and metrics["environment"]["backend"] == "jax"

    # the report again from the saved run alone: delete what evaluation must redraw and rewrite
    plots = sorted(p.name for p in (run / "plots").glob("*.png"))
    tables = {p.name: _table(p) for p in _tables(run)}
    assert plots and any(n.startswith("history") for n in plots)
    for p in [*(run / "plots").glob("*.png"), *_tables(run)]:
        p.unlink()
    outside = sorted(p.name for p in (out / task).iterdir())
    _ok(_run(["scripts.evaluate", "--run", str(run), "--backend", "jax"], workroot, "jax"))
    again = read_json(run / "evaluation.json")["test"]
    _assert_same(again, metrics["test"], "test")
    assert sorted(p.name for p in (run / "plots").glob("*.png")) == plots
    assert sorted(p.name for p in _tables(run)) == sorted(tables)
    for name, frame in tables.items():
        _assert_same_table(_table(run / name), frame, name)
    assert sorted(p.name for p in (out / task).iterdir()) == outside  # nothing written beside the run
    assert not list(run.rglob("*_evaluation*"))

    assert _auc(metrics["test"]) is not None, sorted(metrics["test"])
    JAX_RUNS[task] = (run, _auc(metrics["test"]))


#: the runs the test above trained on JAX, by task: (run directory, test AUC)
JAX_RUNS: dict = {}

#: scripts.evaluate on the torch backend for every run given, in one process (one import of
#: torch and TensorFlow instead of one per task)
EVALUATE_ALL = """
import sys
sys.path.insert(0, {repo!r})
from scripts.evaluate import main
for run in sys.argv[1:]:
    assert main(["--run", run, "--backend", "torch"]) == 0
"""


def test_runs_trained_on_jax_score_the_same_test_auc_on_torch(workroot, backends):
    backends("torch")
    missing = sorted(set(KILL) - set(JAX_RUNS))
    assert not missing, f"no JAX run of {missing}: run the whole module (their JAX test failed or was deselected)"
    runs = [str(JAX_RUNS[t][0]) for t in sorted(JAX_RUNS)]
    _ok(_run(runs, workroot, "torch", code=EVALUATE_ALL.format(repo=str(REPO))))
    for task, (run, auc) in sorted(JAX_RUNS.items()):
        record = json.loads((run / "evaluation.json").read_text())
        assert record["independent_sample"] is False, task  # the run's own test split, rebuilt
        assert _auc(record["test"]) == pytest.approx(auc, abs=1e-4), task  # same model, same test events, other backend


def _tables(run: Path) -> list:
    """The report's tables: every CSV of the run directory but the training histories."""
    return sorted(p for p in run.rglob("*.csv") if not p.name.startswith("history") and "external" not in p.parts)


def _table(path: Path):
    import pandas as pd

    return pd.read_csv(path)


def _assert_same_table(found, expected, name):
    import pandas as pd

    pd.testing.assert_frame_equal(found, expected, check_exact=False, rtol=0, atol=1e-6, obj=name)


def _assert_same(found, expected, where):
    """Equal JSON trees, numbers to 1e-6 (NaN equals NaN)."""
    import math

    if isinstance(expected, dict):
        assert isinstance(found, dict) and sorted(found) == sorted(expected), (where, sorted(found), sorted(expected))
        for k in expected:
            _assert_same(found[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(found, list) and len(found) == len(expected), (where, found, expected)
        for i, (a, b) in enumerate(zip(found, expected)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, (int, float)) and not isinstance(expected, bool) and expected is not None:
        assert isinstance(found, (int, float)), (where, found, expected)
        assert (math.isnan(found) and math.isnan(expected)) or found == expected \
            or abs(found - expected) <= 1e-6, (where, found, expected)  # == : equal infinities (rejection)
    else:
        assert found == expected, (where, found, expected)


def _auc(test: dict):
    """The task's headline test AUC (jet_ssl reports it per method and label fraction)."""
    if "roc_auc" in test:
        return test["roc_auc"]
    for value in test.values():
        if isinstance(value, dict):
            found = _auc(value)
            if found is not None:
                return found
    return None
