"""``train(config) -> RunResult``: one run of one task, start to finish.

Seeds, precision policy, distribution strategy, the standard callbacks (TensorBoard,
CSVLogger, ModelCheckpoint of the best validation score, TerminateOnNaN,
BackupAndRestore), and the run directory (README, "What a run leaves") written atomically::

    results/<task>/<run_id>/config.json, model.keras, history.csv, metrics.json,
                             plots/*.png, tensorboard/
    results/<task>/LATEST     (names the newest complete run)

Its TensorBoard logs hold the whole run (:func:`~kerahep.training.board.publish_tensorboard`,
in :mod:`kerahep.training.board` with what a later evaluation adds): one folder of curves
per training stage (``tensorboard/<stage>/train``, ``.../validation``); the test metrics as
scalars (``test/roc_auc``), the report's tables as text and the plots as images
(``tensorboard/evaluation``); the resolved configuration as HParams (``tensorboard/``), so
``tensorboard --logdir results/<task>`` compares runs side by side.

Example::

    from kerahep.registry import get_task
    from kerahep.training import train

    cfg = get_task("dy_electron").preset().override(["training.epochs=2"])
    result = train(cfg)
    print(result.metrics["test"]["roc_auc"])
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import artifacts
from ..config import Config
from ..errors import ConfigError, KerahepError, user_os_errors
from .board import (flat_items, flat_numbers, log_hparams, log_plots_to_tensorboard,  # noqa: F401 - old path
                    publish_tensorboard, read_csv_table, read_json_or_empty)
from .context import RunContext, TrainingDiverged
from .distribution import is_chief, join_processes, make_strategy, num_processes_configured, resolve_precision
from ..tasks.base import FitResult
from .rundir import (latest_run, make_run_dir, plot_histories, publication_pending, repair_history, resume_config,
                     run_status)

log = logging.getLogger("kerahep")


@dataclass
class RunResult:
    """What a run leaves behind."""

    run_dir: Path
    config: Config
    metrics: dict
    models: dict = field(default_factory=dict)
    fit_result: object = None
    #: one record per training stage (:attr:`~kerahep.training.context.RunContext.stages`)
    stages: list = field(default_factory=list)

    @property
    def model(self):
        return self.models.get("model")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend (``keras.utils.set_random_seed``)."""
    import keras

    keras.utils.set_random_seed(int(seed))


def train(config: Config) -> RunResult:
    """Run the task of ``config`` end to end and write its run directory.

    With ``run.resume``, a run killed after it was complete but before it was published
    (:func:`~kerahep.training.rundir.publication_pending`) is published without training
    again (:func:`finish_publication`): its RunResult then has the saved metrics and no
    models in memory (load ``model.keras`` from the run directory).

    Returns:
        RunResult with the run directory, metrics and the trained models.

    Raises:
        KerahepError: for user mistakes (bad data, bad configuration) and diverged runs.
    """
    import keras

    from ..registry import get_task

    task = get_task(config.task)
    config, run_dir, resumed = open_run(config)
    if resumed and publication_pending(run_dir):
        return finish_publication(config, run_dir)
    set_seed(config.run.seed)
    precision = resolve_precision(config.training.precision)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    status = {"status": "running"}
    try:
        artifacts.write_json(run_dir / "config.json", config.to_dict())
        strategy = make_strategy(config.run.strategy)
        data = load_task_data(task, config)
        from ..data.fingerprint import data_fingerprint

        fingerprint = data_fingerprint(data)  # checked by evaluate_run before rebuilding the test split
        if data.source == "synthetic":
            log.warning("No input files given: training %s on its built-in SYNTHETIC twin (%s).",
                        config.task, ", ".join(str(p) for p in data.paths))
        ctx = RunContext(config, task, data, run_dir, strategy, resumed)
        t0 = time.perf_counter()
        try:
            result = fit_task(task, ctx)
        except TrainingDiverged as exc:
            status = {"status": "failed", "reason": str(exc)}
            raise
        wall = time.perf_counter() - t0
        for name, model in result.models.items():
            artifacts.save_model(model, run_dir / f"{name}.keras")
        result.save(run_dir)  # what only training can compute, for evaluate_run
        t1 = time.perf_counter()
        test = task.evaluate(ctx, result, data)
        eval_s = time.perf_counter() - t1
        plot_histories(run_dir, config)
        metrics = {
            "task": config.task,
            "model": task.describe_model(config),
            "preset": config.preset,
            "status": "complete",
            "data": {**data.describe(), "fingerprint": fingerprint},
            "test": to_plain(test),
            "timing": run_timing(ctx, wall, eval_s),
            "environment": {"backend": keras.backend.backend(), "precision": precision,
                            "strategy": strategy.name, "replicas": strategy.num_replicas,
                            "processes": strategy.num_processes,
                            "keras": keras.__version__, "seed": config.run.seed, "resumed": resumed},
        }
        artifacts.write_json(run_dir / "metrics.json", metrics)
        close_run(run_dir, ctx.stages)
        status = {"status": "complete"}
        return RunResult(run_dir=run_dir, config=config, metrics=metrics, models=result.models, fit_result=result,
                         stages=ctx.stages)
    except BaseException as exc:
        if status.get("status") != "complete":
            mark_failed(config, run_dir, status.get("reason") or f"{type(exc).__name__}: {exc}")
        raise
    finally:
        keras.config.set_dtype_policy(previous_policy)


def open_run(config: Config) -> tuple:
    """``(config, run_dir, resumed)``: join the other processes, then create or find the run
    directory (a resumed run continues with its saved configuration)."""
    join_processes(config.run.strategy)  # before anything touches the JAX backend
    if config.run.resume and num_processes_configured() > 1:
        raise ConfigError("--resume of a multi-process run is not supported: only process 0 keeps resume state, "
                          "so the other workers would start afresh and the processes would drift apart; start a "
                          "new run (or resume it as a single process)")
    if not is_chief():  # other workers of a multi-worker run: same work, artifacts in scratch space
        import tempfile

        config = config.set("run.output_dir", tempfile.mkdtemp(prefix="kerahep-worker-"))
    run_dir, resumed = make_run_dir(config)
    if resumed:
        config = resume_config(config, run_dir)
        for history in sorted(run_dir.glob("history*.csv")):
            repair_history(history)  # a last line cut by the kill: appended rows start on their own line
    return config, run_dir, resumed


def load_task_data(task, config: Config, **kwargs):
    """``task.load_data(config, **kwargs)`` with the file-system mistakes met on the way (an
    input without read permission, a directory given for a file, a ``data.data_dir`` that
    cannot be written) raised as :class:`~kerahep.errors.DataError` naming the path."""
    data_dir = os.path.realpath(config.data.data_dir)
    given = {os.path.realpath(p) for p in (kwargs.get("paths") or config.data.paths or ())}

    def expected(path: str):
        real = os.path.realpath(path)
        if real in given:
            return f"an input file of {config.task} that kerahep may read (--data)"
        if (real == data_dir or real.startswith(data_dir + os.sep)) and not os.path.isfile(path):
            return (f"a folder kerahep may write into (data.data_dir={config.data.data_dir!r}, where synthetic "
                    "twins and prepared datasets are written)")
        return None

    with user_os_errors(expected):
        return task.load_data(config, **kwargs)


def fit_task(task, ctx) -> FitResult:
    """``task.fit(ctx)``, refusing anything but a :class:`~kerahep.tasks.base.FitResult`."""
    result = task.fit(ctx)
    if not isinstance(result, FitResult):
        raise TypeError(f"{type(task).__name__}.fit must return a FitResult (kerahep.tasks.base), "
                        f"got {type(result).__name__}")
    return result


def run_timing(ctx, wall: float, eval_s: float) -> dict:
    """``metrics.json["timing"]``: wall, fit and evaluation seconds, training samples per second."""
    fit_s, seen = ctx.timing["fit_seconds"], ctx.timing["train_samples_seen"]
    return {
        "train_seconds": round(wall, 3),
        "fit_seconds": round(fit_s, 3),
        "evaluate_seconds": round(eval_s, 3),
        "train_samples_per_second": round(seen / fit_s, 2) if fit_s > 0 and seen else None,
    }


def close_run(run_dir: Path, stages=()) -> None:
    """Publish a complete run: its report into TensorBoard (:func:`publish_tensorboard`),
    LATEST pointed at it (unless LATEST names a run completed later), and its resume state
    removed, last (so a run killed on the way is found again, see
    :func:`~kerahep.training.rundir.publication_pending`).

    Safe to repeat: the TensorBoard summaries a cut-short publication wrote are written anew.
    """
    publish_tensorboard(run_dir, stages)
    newer = newer_complete_run(run_dir)
    if newer is None:
        artifacts.write_text(run_dir.parent / "LATEST", run_dir.name + "\n")
    else:
        log.warning("LATEST keeps naming %s, completed after %s", newer, run_dir)
    for scratch in ("backup", "stages"):  # resume state, useless once the run is complete
        shutil.rmtree(run_dir / scratch, ignore_errors=True)


def newer_complete_run(run_dir: Path) -> Path | None:
    """The run LATEST names when it is another run whose ``metrics.json`` is newer than
    ``run_dir``'s (it completed later), else None."""
    try:
        latest = latest_run(run_dir.parent)
        if latest is None or latest.resolve() == run_dir.resolve():
            return None
        newer = (latest / "metrics.json").stat().st_mtime > (run_dir / "metrics.json").stat().st_mtime
    except (KerahepError, OSError):  # a damaged LATEST, a run without metrics: LATEST is rewritten
        return None
    return latest if newer else None


def finish_publication(config: Config, run_dir: Path) -> RunResult:
    """Publish a complete run that a kill stopped before it was published (:func:`close_run`),
    without training or evaluating it again; its metrics are read from ``metrics.json``."""
    log.warning("--resume: %s is complete (metrics.json written) but was stopped before it was published; "
                "publishing it without training again: TensorBoard plots, LATEST, resume state removed", run_dir)
    metrics = artifacts.read_json(run_dir / "metrics.json")
    close_run(run_dir)
    log.info("published %s", run_dir)
    return RunResult(run_dir=run_dir, config=config, metrics=metrics)


def mark_failed(config: Config, run_dir: Path, reason: str) -> None:
    """Record a failed run in ``metrics.json`` (never over a complete run's metrics)."""
    failed = {"task": config.task, "status": "failed", "reason": reason}
    with contextlib.suppress(Exception):
        if run_status(run_dir) != "complete":
            artifacts.write_json(run_dir / "metrics.json", failed)


def to_plain(d):
    """Metrics as plain JSON values (drop arrays that belong in plots)."""
    import numpy as np

    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = to_plain(v)
        elif isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, np.generic):
            out[k] = v.item()
        else:
            out[k] = v
    return out
