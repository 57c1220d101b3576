"""Every task through the real command lines on JAX, then on torch: trained with
``python -m scripts.train --backend jax``, then re-evaluated with ``python -m scripts.evaluate``
on the same backend after its plots and tables were deleted: the task contract says evaluation
reproduces training's report (same test metrics to 1e-6, the same plots and tables under the
same names, nothing written outside the run directory); then all five runs are scored on
``--backend torch`` (one process) with the same test AUC.

Each task runs its ``smoke`` preset (every stage, tiny data); tests/test_task_runs_torch.py
kills and resumes the same runs on torch.
"""

import json

import pytest
from task_runs import KILL, REPO, _assert_same, _assert_same_table, _auc, _ok, _run, _table, _tables

from kerahep.artifacts import read_json

pytestmark = pytest.mark.slow


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
