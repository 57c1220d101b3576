"""Every task through the real command lines on the torch backend: killed with SIGKILL in
the middle of an epoch, then continued with ``python -m scripts.train --resume`` (no
``--set`` repeated: the run's config.json is used): earlier stages are not trained again,
every epoch of every stage is logged once, and the artifacts are complete.

Each task runs its ``smoke`` preset (every stage, tiny data). The TensorFlow path of each
task is covered by its own test file; the kill/resume mechanics (learning rate on schedule,
optimizer state) by tests/test_reliability.py; JAX by tests/test_task_runs_jax.py.
"""

import json
import signal

import pytest
from task_runs import KILL, KILLER, REPO, _epochs, _histories, _ok, _run

pytestmark = pytest.mark.slow


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
