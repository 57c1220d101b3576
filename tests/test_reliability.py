"""Interrupted runs resume; concurrent runs never collide."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import toytask
from kerahep.training import train
t = toytask.register()
cfg = t.preset().override(["training.epochs=6", "data.sleep=0.05", "run.run_id=killed"] + sys.argv[1:])
train(cfg)
"""


def _run(args, cwd, wait=True):
    code = SCRIPT.format(tests=str(TESTS))
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if wait:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    return proc


def _epochs(path):
    with open(path, newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_continues(tmp_path):
    run = tmp_path / "results" / "toy" / "killed"
    proc = _run([], tmp_path, wait=False)
    hist = run / "history.csv"
    deadline = time.time() + 240
    while time.time() < deadline:
        if hist.exists() and len(_epochs(hist)) >= 2:
            break
        if proc.poll() is not None:
            pytest.fail("training ended before it could be killed: " + proc.stderr.read()[-2000:])
        time.sleep(0.05)
    time.sleep(0.15)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done_before = len(_epochs(hist))
    assert 2 <= done_before < 6
    assert not (run.parent / "LATEST").exists()
    assert json.loads((run / "config.json").read_text())["task"] == "toy"

    _run(["run.resume=true"], tmp_path)
    assert _epochs(hist) == [0, 1, 2, 3, 4, 5]  # every epoch exactly once
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["environment"]["resumed"] is True
    assert (run.parent / "LATEST").read_text().strip() == "killed"

    # the optimizer state and the learning-rate schedule continued across the kill: the
    # learning rate logged after each epoch is the schedule's value at that global step
    import toytask

    from kerahep.training import make_schedule

    cfg = toytask.ToyTask().preset().override(["training.epochs=6"])
    schedule = make_schedule(cfg.training, steps_per_epoch=14, epochs=6)  # 420 rows / 32 = 14 steps
    with open(hist, newline="") as f:
        logged = [float(r["learning_rate"]) for r in csv.DictReader(f)]
    expected = [float(schedule(14 * (e + 1))) for e in range(6)]
    assert logged == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_two_runs_at_once_get_distinct_directories(tmp_path):
    code = SCRIPT.format(tests=str(TESTS)).replace('"run.run_id=killed"', '"run.verbose=0"')
    procs = [subprocess.Popen([sys.executable, "-c", code, "training.epochs=1", "data.sleep=0"], cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    runs = [d for d in (tmp_path / "results" / "toy").iterdir() if d.is_dir()]
    assert len(runs) == 2
    for d in runs:
        assert json.loads((d / "metrics.json").read_text())["status"] == "complete"
    latest = (tmp_path / "results" / "toy" / "LATEST").read_text().strip()
    assert latest in {d.name for d in runs}


def test_crash_while_saving_model_keeps_previous_model(tmp_path, monkeypatch):
    import keras
    import numpy as np

    from kerahep import artifacts

    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    target = tmp_path / "model.keras"
    artifacts.save_model(model, target)
    before = target.read_bytes()
    real_save = keras.Model.save

    def crashing_save(self, filepath, *a, **k):
        real_save(self, filepath, *a, **k)
        with open(filepath, "r+b") as f:  # half-written archive, then the process "dies"
            f.truncate(100)
        raise KeyboardInterrupt("injected kill during save")

    monkeypatch.setattr(keras.Model, "save", crashing_save)
    model.layers[1].set_weights([np.ones((3, 1)), np.ones(1)])
    with pytest.raises(KeyboardInterrupt):
        artifacts.save_model(model, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary left behind


def test_artifacts_contain_no_pickle(tmp_path, monkeypatch):
    import zipfile

    sys.path.insert(0, str(TESTS))
    import toytask

    from kerahep.training import train

    monkeypatch.chdir(tmp_path)
    res = train(toytask.register().preset().override(["training.epochs=1"]))
    for path in res.run_dir.rglob("*"):
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as z:
                assert not [n for n in z.namelist() if n.endswith((".pkl", ".pickle"))]
                assert all(not z.read(n).startswith(b"\x80") for n in z.namelist() if not n.endswith(".h5"))
        elif path.is_file() and path.suffix in (".pkl", ".pickle", ".npy"):
            pytest.fail(f"pickle-capable artifact {path}")
