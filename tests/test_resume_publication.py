"""Resume at every kill point (issue 17): a run killed after it was complete but before it was
published is published by ``--resume`` without training again; a run killed after its
training (during evaluation) still gets every history plot; ``--resume`` continues a run
of the same data only.

Trainings use the toy task (tests/toytask.py); the other states are laid out on disk as
the trainer leaves them.
"""

import json
import logging
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import toytask  # noqa: E402
from helpers import assert_image_not_blank  # noqa: E402

from kerahep.errors import ConfigError, DataError  # noqa: E402
from kerahep.training import train  # noqa: E402


class Killed(KeyboardInterrupt):
    """Stands for the process being killed at the injected point."""


@pytest.fixture
def toy():
    return toytask.register()


@pytest.fixture
def cli_main(monkeypatch):
    """``python -m scripts.train ARGS`` in-process: ``main(argv) -> exit status`` (logging left to caplog)."""
    from kerahep import cli
    from kerahep.commands.train import main

    monkeypatch.setattr(cli, "setup_logging", lambda *a, **k: None)
    return lambda *argv: main(list(argv), prog="python -m scripts.train")


def _register(cls):
    from kerahep.registry import _TASKS, register_task

    if cls.name not in _TASKS:
        register_task(cls)
    return _TASKS[cls.name]


def _fake_run(workdir, name, cfg, status, resume_state=True):
    """A run folder as the trainer leaves it: ``config.json``, ``metrics.json`` with ``status``,
    and (``resume_state``) the ``stages/`` a kill before :func:`close_run` leaves."""
    run = Path("results", cfg.task, name)  # as the trainer names it: relative to the current folder
    (run / "plots").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    metrics = {"task": cfg.task, "status": status}
    if status == "complete":
        metrics.update({"data": {"source": "synthetic"}, "test": {"roc_auc": 0.9}})
    (run / "metrics.json").write_text(json.dumps(metrics))
    if resume_state:
        (run / "stages").mkdir()
        (run / "stages" / "main.weights.h5").write_bytes(b"")
    return run


def _no_training(monkeypatch):
    def refuse(task, ctx):
        raise AssertionError("trained again")

    monkeypatch.setattr("kerahep.training.trainer.fit_task", refuse)


# ---------------------------------------------------------------- killed before LATEST moved
def test_killed_between_metrics_and_latest_then_resume_publishes_without_training(
        toy, workdir, monkeypatch, caplog, cli_main, capsys):
    from kerahep import artifacts

    write_text = artifacts.write_text

    def killed_at_latest(path, text):
        if Path(path).name == "LATEST":
            raise Killed("killed just before LATEST is moved")
        return write_text(path, text)

    monkeypatch.setattr(artifacts, "write_text", killed_at_latest)
    with pytest.raises(Killed):
        train(toy.preset().override(["run.run_id=cut"]))
    monkeypatch.setattr(artifacts, "write_text", write_text)
    run = Path("results", "toy", "cut")
    metrics = (run / "metrics.json").read_bytes()
    assert json.loads(metrics)["status"] == "complete"  # the state the kill leaves
    assert not (run.parent / "LATEST").exists() and (run / "stages").is_dir()

    _no_training(monkeypatch)
    with caplog.at_level(logging.INFO, logger="kerahep"):
        assert cli_main("--task", "toy", "--resume") == 0  # no --run-id: found as the run to resume
    assert (run.parent / "LATEST").read_text().strip() == "cut"
    assert (run / "metrics.json").read_bytes() == metrics  # not evaluated again
    assert not (run / "stages").exists() and not (run / "backup").exists()
    assert list((run / "tensorboard" / "evaluation").iterdir())  # the plots in TensorBoard
    assert f"{run} is complete" in caplog.text and "publishing it without training again" in caplog.text
    assert f"run directory: {run}" in capsys.readouterr().out

    with pytest.raises(ConfigError, match="complete run: nothing to resume"):  # published now: refused
        cli_main("--task", "toy", "--resume", "--run-id", "cut")


def test_pending_run_completed_before_the_latest_one_leaves_latest_alone(toy, workdir, monkeypatch, caplog):
    cfg = toy.preset()
    old = _fake_run(workdir, "old", cfg, "complete")
    new = _fake_run(workdir, "new", cfg, "complete", resume_state=False)
    (new.parent / "LATEST").write_text("new\n")
    os.utime(old / "metrics.json", (1_000_000, 1_000_000))  # completed long before "new"
    _no_training(monkeypatch)
    with caplog.at_level(logging.INFO, logger="kerahep"):
        res = train(cfg.override(["run.resume=true", "run.run_id=old"]))
    assert res.run_dir == old and res.metrics["test"] == {"roc_auc": 0.9}
    assert not (old / "stages").exists()
    assert (old.parent / "LATEST").read_text().strip() == "new"
    assert f"LATEST keeps naming {new}" in caplog.text


def test_complete_published_runs_are_still_refused(toy, workdir):
    cfg = toy.preset()
    _fake_run(workdir, "named", cfg, "complete", resume_state=True)  # LATEST names it: published
    _fake_run(workdir, "older", cfg, "complete", resume_state=False)  # published, since followed by "named"
    (workdir / "results" / "toy" / "LATEST").write_text("named\n")
    for name in ("named", "older"):
        with pytest.raises(ConfigError, match=f"{name} holds a complete run: nothing to resume"):
            train(cfg.override(["run.resume=true", f"run.run_id={name}"]))
    assert (workdir / "results" / "toy" / "LATEST").read_text() == "named\n"


# ---------------------------------------------------------------- killed after training
class ToyTwoStage(toytask.ToyTask):
    """The toy task in two stages (``pre``, then ``main``); evaluation is killed while ``KILL``."""

    name = "toy_two_stage"
    KILL = False

    def fit(self, ctx):
        model = ctx.build(lambda: self.build_model(ctx.config, ctx.data))
        ctx.fit(model, stage="pre", epochs=1)
        ctx.fit(model, stage="main")
        return self.result_type(models={"model": model})

    def evaluate(self, ctx, result, data):
        if ToyTwoStage.KILL:
            raise Killed("killed during evaluation")
        return super().evaluate(ctx, result, data)


def test_resumed_after_training_finished_still_draws_every_history(workdir, monkeypatch, caplog):
    task = _register(ToyTwoStage)
    monkeypatch.setattr(ToyTwoStage, "KILL", True)
    with pytest.raises(Killed):
        train(task.preset().override(["run.run_id=r"]))
    run = Path("results", "toy_two_stage", "r")
    assert {p.name for p in (run / "stages").iterdir()} == {"pre.weights.h5", "main.weights.h5"}
    assert not list((run / "plots").glob("history*.png"))

    monkeypatch.setattr(ToyTwoStage, "KILL", False)
    with caplog.at_level(logging.INFO, logger="kerahep"):
        res = train(task.preset().override(["run.run_id=r", "run.resume=true"]))
    assert "stage pre already complete" in caplog.text and "stage main already complete" in caplog.text
    assert_image_not_blank(run / "plots" / "history.png")
    assert_image_not_blank(run / "plots" / "history_pre.png")
    assert res.metrics["status"] == "complete" and res.metrics["environment"]["resumed"] is True
    assert (run.parent / "LATEST").read_text().strip() == "r"


def test_history_with_a_damaged_line_is_still_drawn(tmp_path, caplog):
    from kerahep.training.rundir import plot_histories

    (tmp_path / "history.csv").write_text("epoch,loss,val_auc\n0,0.6,0.8\n1,0.5,0.7,9\n2,0.4,0.9\n")
    (tmp_path / "history_empty.csv").write_text("epoch,loss\n")
    with caplog.at_level(logging.WARNING, logger="kerahep"):
        drawn = plot_histories(tmp_path)
    assert [Path(p).name for p in drawn] == ["history.png"]
    assert "left out 1 damaged" in caplog.text and "history_empty.png not drawn" in caplog.text


# ---------------------------------------------------------------- same data only
class ToyFiles(toytask.ToyTask):
    """The toy task, refusing input files that do not exist (as a real task's reader does)."""

    name = "toy_files"

    def load_data(self, config, paths=None, for_evaluation=False):
        for p in config.data.paths:
            if not Path(p).is_file():
                raise DataError(p, "an input file of toy_files", "no such file")
        return super().load_data(config, paths, for_evaluation)


def test_run_failed_on_its_data_is_not_resumed_with_other_data(workdir, caplog):
    task = _register(ToyFiles)
    Path("good.npy").write_bytes(b"")
    with pytest.raises(DataError, match="missing.npy"):
        train(task.preset().override(["data.paths=('missing.npy',)", "run.run_id=bad"]))
    bad = Path("results", "toy_files", "bad")
    assert json.loads((bad / "metrics.json").read_text())["status"] == "failed"

    with pytest.raises(ConfigError) as err:  # named run: refused, naming the run, saved and given data
        train(task.preset().override(["data.paths=('good.npy',)", "run.run_id=bad", "run.resume=true"]))
    assert str(bad) in str(err.value) and "missing.npy" in str(err.value) and "good.npy" in str(err.value)
    assert [d.name for d in bad.parent.iterdir()] == ["bad"]  # nothing started

    with caplog.at_level(logging.INFO, logger="kerahep"):  # no run id: skipped, a new run started
        res = train(task.preset().override(["data.paths=('good.npy',)", "run.resume=true"]))
    assert res.run_dir != bad and res.metrics["status"] == "complete" and res.metrics["environment"]["resumed"] is False
    assert f"skipping {bad}" in caplog.text and "no unfinished toy_files run" in caplog.text

    with pytest.raises(DataError, match="missing.npy"):  # no data chosen: it continues on its saved data
        train(task.preset().override(["run.resume=true"]))


def test_resume_picks_the_newest_unfinished_run_on_the_same_data(toy, workdir, caplog):
    from kerahep.training.rundir import make_run_dir

    cfg = toy.preset()
    a = _fake_run(workdir, "a", cfg.override(["data.paths=('a.npy',)"]), "failed")
    b = _fake_run(workdir, "b", cfg.override(["data.paths=('b.npy',)"]), "running")
    done = _fake_run(workdir, "done", cfg.override(["data.paths=('a.npy',)"]), "complete", resume_state=False)
    for age, run in ((3000, a), (2000, b), (1000, done)):  # a oldest, "done" newest
        os.utime(run, (1e9 - age, 1e9 - age))
    with caplog.at_level(logging.INFO, logger="kerahep"):
        given_absolute = str(workdir / "a.npy")  # the same file, named otherwise
        assert make_run_dir(cfg.override([f"data.paths=('{given_absolute}',)", "run.resume=true"])) == (a, True)
    assert f"skipping {b}" in caplog.text and f"continuing toy run {a}" in caplog.text
    assert make_run_dir(cfg.override(["run.resume=true"])) == (b, True)  # no data chosen: the newest
    assert make_run_dir(cfg.override(["data.force_synthetic=true", "run.resume=true"]))[1] is False
