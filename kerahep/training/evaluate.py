"""Re-evaluating a saved run: ``evaluate_run(run_dir)`` reloads its models and rebuilds its
report; ``resolve_run`` finds the run a command means (given, LATEST of a task, newest)."""

from __future__ import annotations

def resolve_run(run: str | None = None, task: str | None = None, output_dir: str = "results"):
    """The run directory to evaluate: ``run``, else the task's LATEST, else the newest of all."""
    from pathlib import Path

    from ..errors import KerahepError
    from .rundir import latest_run

    if run:
        p = Path(run)
        if not (p / "config.json").exists():
            raise KerahepError(f"{p}: expected a run directory with config.json, found none")
        return p
    root = Path(output_dir)
    if root.exists() and not root.is_dir():
        from ..errors import DataError

        raise DataError(root, "a results folder (--output-dir) holding <task>/<run_id> run directories", "a file")
    if task:
        from ..artifacts import check_name

        check_name(task, "task name")
        p = latest_run(root / task)
        if p is None:
            raise KerahepError(f"{root / task}: no complete run of task {task!r} (LATEST missing); train one first")
        return p
    runs = [latest_run(d) for d in root.iterdir() if d.is_dir()] if root.exists() else []
    runs = [r for r in runs if r is not None]
    if not runs:
        raise KerahepError(f"{root}: no complete runs found; run python -m scripts.train --task NAME first")
    return max(runs, key=lambda r: (r / "metrics.json").stat().st_mtime if (r / "metrics.json").exists() else 0)


def evaluate_run(run_dir, data_paths=None, unsafe_load: bool = False) -> dict:
    """Reload a run's models (safe mode) and recompute its test metrics and plots.

    Without ``data_paths`` the run's own test split is rebuilt from its configuration and
    the results go to ``<run>/evaluation.json`` and ``<run>/plots/``. With ``data_paths`` the
    files are scored in full as an independent sample (same reader and checks as training)
    into ``<run>/external/<id>/``; the run's training metrics are never touched.

    Rebuilding the test split selects events by seed and position in the input files, so
    it is only the run's test split if the files are the ones the run was trained on.
    Training records a fingerprint of them in ``metrics.json["data"]["fingerprint"]``
    (source, split sizes and per file its resolved path, size and mtime; no content hash,
    see :mod:`kerahep.data.fingerprint`; stamped synthetic twins are compared by size and
    parameter stamp, since a regenerated identical twin has a new mtime). Before anything
    is written, the fingerprint of the freshly loaded data is compared with it; a
    difference (a file re-prepared or replaced, a real file now read where the run used
    the synthetic twin) raises :class:`~kerahep.errors.DataError`. To score new files,
    pass them as ``data_paths`` (``python -m scripts.evaluate --data FILES``): they are
    then an independent sample. Runs recorded before fingerprints existed are evaluated
    with a logged warning that their data could not be checked.

    Raises:
        DataError: the input files differ from those the run was trained on, or the run's
            ``metrics.json`` is damaged (nothing is written then); an input file cannot be
            read. A failed evaluation of ``data_paths`` leaves no folder under ``external/``.
        ConfigError: the run's ``config.json`` is empty, not JSON, or holds refused values.

    Returns:
        dict with ``run_dir``, ``output`` (where results went) and ``test`` metrics.
    """
    import datetime as _dt
    import secrets
    from pathlib import Path

    from ..artifacts import write_json
    from ..config import Config
    from ..registry import get_task
    from ..saving import load_model
    from .context import RunContext
    from .rundir import plot_histories
    from .trainer import load_task_data, to_plain

    run_dir = Path(run_dir)
    cfg = Config.from_file(run_dir / "config.json")  # names the file: empty, not JSON, a bad section
    task = get_task(cfg.task)
    models = {}
    for name in task.artifacts:
        path = run_dir / f"{name}.keras"
        if path.exists():
            models[name] = load_model(path, safe_mode=not unsafe_load)
    if "model" not in models:
        from ..errors import KerahepError

        raise KerahepError(f"{run_dir}: expected model.keras, found none (did the run finish?)")
    data = load_task_data(task, cfg, paths=list(data_paths) if data_paths else None,
                          for_evaluation=bool(data_paths))
    if not data_paths:
        check_same_data(run_dir, data)  # before anything is written into the run
        out = run_dir
    else:
        out = run_dir / "external" / f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(cfg, task, data, out)
        result = task.result_type.load(run_dir, models)
        test = to_plain(task.evaluate(ctx, result, data))
        if not data_paths:
            plot_histories(run_dir)
        record = {"task": cfg.task, "run_dir": str(run_dir), "data": data.describe(), "test": test,
                  "independent_sample": bool(data_paths)}
        write_json(out / ("evaluation.json" if not data_paths else "metrics.json"), record)
    except BaseException:
        if data_paths:  # a failed independent evaluation leaves nothing: no half-filled or empty folder
            remove_external(out)
        raise
    record["output"] = str(out)
    return record


def remove_external(out) -> None:
    """Remove ``<run>/external/<id>`` and, when nothing else is left in it, ``<run>/external``."""
    import contextlib
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    with contextlib.suppress(OSError):
        out.parent.rmdir()  # only when empty


def check_same_data(run_dir, data) -> None:
    """Refuse to rebuild ``run_dir``'s test split from data other than it was trained on."""
    import logging

    from ..data.fingerprint import compare_fingerprints, data_fingerprint
    from ..errors import DataError
    from ..artifacts import read_json

    log = logging.getLogger(__name__)
    metrics_path = run_dir / "metrics.json"
    recorded = None
    if metrics_path.exists():
        expected = "the run's metrics.json: a JSON object (with the data fingerprint of its training)"
        try:
            metrics = read_json(metrics_path)
        except UnicodeDecodeError:
            raise DataError(metrics_path, expected, "bytes that are not UTF-8 text") from None
        except ValueError as exc:
            raise DataError(metrics_path, expected, f"a damaged file ({str(exc).splitlines()[0][:120]})") from None
        except OSError as exc:
            raise DataError(metrics_path, expected, f"an unreadable file ({exc.strerror or exc})") from None
        if not isinstance(metrics, dict) or not isinstance(metrics.get("data") or {}, dict):
            raise DataError(metrics_path, expected, f"a JSON {type(metrics).__name__}" if not isinstance(metrics, dict)
                            else "a 'data' entry that is not an object")
        recorded = metrics["data"].get("fingerprint") if metrics.get("data") else None
    if not recorded:
        log.warning("%s: no data fingerprint recorded (run made before fingerprints); cannot check that "
                    "%s are the files it was trained on: if they changed since, the rebuilt test split "
                    "may hold other events, including training events", run_dir,
                    ", ".join(str(p) for p in data.paths) or "the inputs")
        return
    try:
        diff = compare_fingerprints(recorded, data_fingerprint(data))
    except (AttributeError, TypeError, KeyError, IndexError, ValueError):
        raise DataError(metrics_path, "the run's metrics.json with the data fingerprint kerahep wrote at training",
                        "a damaged fingerprint (edited by hand?); nothing was written") from None
    if diff is not None:
        path, expected, found = diff
        raise DataError(
            path, expected,
            f"{found}. The input data of run {run_dir} changed since training, so its test split "
            "cannot be rebuilt (the same indices would select other events, training events "
            "among them); nothing was written. Restore the original files, or score the new "
            "files as an independent sample: python -m scripts.evaluate --run "
            f"{run_dir} --data FILES")
