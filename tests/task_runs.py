"""What the task-run tests share (tests/test_task_runs_torch.py, tests/test_task_runs_jax.py):
the command-line runner with a backend, the kill-mid-epoch wrapper, and comparisons of
histories, tables and JSON reports."""

import csv
import os
import subprocess
import sys
from pathlib import Path

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
