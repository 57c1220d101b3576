"""Re-evaluating a saved run: ``evaluate_run(run_dir)`` reloads its models and rebuilds its
report, writing only inside the run directory; ``resolve_run`` finds the run a command means
(given, LATEST of a task, newest)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: name prefix of the temporary folder inside a run where a missing synthetic twin is
#: regenerated for one evaluation (removed afterwards)
SANDBOX_PREFIX = ".evaluate-data-"

_NO_CHECK = ("If you know the input files are unchanged, pass --no-data-check (evaluate_run(..., "
             "no_data_check=True)); to score other files, use --data FILES (an independent sample)")


def _within(path, folder) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it, links resolved on both sides."""
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _confined(run: Path, root: Path, how: str) -> Path:
    """``run`` (found under ``root`` by ``how``); a link is reported, and refused when it leads out of ``root``."""
    from ..errors import DataError

    below = [run, *run.parents]
    below = below[:below.index(root)] if root in below else [run]  # the run and its folders under root
    link = next((p for p in below if p.is_symlink()), None)
    if link is None:
        return run
    target = os.path.realpath(link)
    if not _within(run, root):
        raise DataError(link, f"a run directory inside {root} ({how})",
                        f"a symbolic link to {target}, outside {root}; not followed, nothing was written. "
                        f"If you trust it, name it explicitly: --run {link}")
    log.warning("%s is a symbolic link to %s (inside %s); using it", link, target, root)
    return run


def resolve_run(run: str | None = None, task: str | None = None, output_dir: str = "results"):
    """The run directory to evaluate: ``run``, else the task's LATEST, else the newest of all.

    A run directory that is a symbolic link is reported (link and target); one reached by
    LATEST or the newest-run search is refused (DataError) when it leads out of ``output_dir``,
    one given as ``run`` is followed. KerahepError: no such run.
    """
    from ..errors import DataError, KerahepError
    from .rundir import latest_run

    if run:
        p = Path(run)
        if not (p / "config.json").exists():
            raise KerahepError(f"{p}: expected a run directory with config.json, found none")
        if p.is_symlink():
            log.warning("%s is a symbolic link to %s (given with --run: followed)", p, os.path.realpath(p))
        return p
    root = Path(output_dir)
    if root.exists() and not root.is_dir():
        raise DataError(root, "a results folder (--output-dir) holding <task>/<run_id> run directories", "a file")
    if task:
        from ..artifacts import check_name

        check_name(task, "task name")
        p = latest_run(root / task)
        if p is None:
            raise KerahepError(f"{root / task}: no complete run of task {task!r} (LATEST missing); train one first")
        return _confined(p, root, f"the LATEST run of task {task!r}")
    runs = [latest_run(d) for d in root.iterdir() if d.is_dir()] if root.exists() else []
    runs = [r for r in runs if r is not None]
    if not runs:
        raise KerahepError(f"{root}: no complete runs found; run python -m scripts.train --task NAME first")
    newest = max(runs, key=lambda r: (r / "metrics.json").stat().st_mtime if (r / "metrics.json").exists() else 0)
    return _confined(newest, root, "the newest run")


def evaluate_run(run_dir, data_paths=None, unsafe_load: bool = False, no_data_check: bool = False) -> dict:
    """Reload a run's models (safe mode) and recompute its test metrics and plots.

    Without ``data_paths`` the run's own test split is rebuilt from its configuration and
    the results go to ``<run>/evaluation.json`` and ``<run>/plots/``. With ``data_paths`` the
    files are scored in full as an independent sample (same reader and checks as training)
    into ``<run>/external/<id>/``; the run's training metrics are never touched. Its test
    metrics go to TensorBoard too (:func:`~kerahep.training.board.publish_evaluation`).

    The test split is selected by seed and position in the input files, so it is only
    rebuilt from the files the run was trained on: their fingerprint, recorded at training
    in ``metrics.json["data"]["fingerprint"]`` (:mod:`kerahep.data.fingerprint`), must match
    the data loaded now. A missing or damaged one (a run made before fingerprints) is
    refused unless ``no_data_check`` (``--no-data-check``: evaluated with a warning); one
    that differs is refused even then.

    Nothing is written outside ``run_dir``: the synthetic twin is read from ``data.data_dir``
    only when the one trained on is there (same size and parameter stamp), else regenerated
    in ``<run>/.evaluate-data-<id>/`` and removed afterwards. A run trained on files that are
    gone is refused (not scored on the twin), and so is a link in the run leading out of it.

    Raises:
        DataError: other, missing or unreadable input data; a missing or damaged fingerprint
            or ``metrics.json`` (without ``no_data_check``); a link out of the run. Nothing is
            written then, and a failed evaluation of ``data_paths`` leaves no ``external/`` folder.
        ConfigError: the run's ``config.json`` is empty, not JSON, or holds refused values.

    Returns:
        dict with ``run_dir``, ``output`` (where results went), ``test`` metrics, and
        ``twin_regenerated`` when the twin was made in the run for this evaluation.
    """
    import shutil

    from ..config import Config
    from ..registry import get_task

    run_dir = Path(run_dir)
    cfg = Config.from_file(run_dir / "config.json")  # names the file: empty, not JSON, a bad section
    task = get_task(cfg.task)
    check_links_inside(run_dir)
    models = load_models(run_dir, task, unsafe_load)
    recorded = None if data_paths else recorded_fingerprint(run_dir, no_data_check)
    data, cfg, sandbox = load_confined(task, cfg, run_dir, recorded, data_paths)
    try:
        if not data_paths:
            check_same_data(run_dir, data, recorded, no_data_check, regenerated=sandbox is not None)
        extra = {"twin_regenerated": True} if sandbox is not None else {}  # its paths are gone afterwards
        record = write_evaluation(run_dir, cfg, task, models, data, data_paths, extra)
    finally:
        if sandbox is not None:
            shutil.rmtree(sandbox, ignore_errors=True)
    return record


def load_models(run_dir: Path, task, unsafe_load: bool) -> dict:
    """The run's saved models by artifact name (``model`` at least)."""
    from ..errors import KerahepError
    from ..saving import load_model

    models = {}
    for name in task.artifacts:
        path = run_dir / f"{name}.keras"
        if path.exists():
            models[name] = load_model(path, safe_mode=not unsafe_load)
    if "model" not in models:
        raise KerahepError(f"{run_dir}: expected model.keras, found none (did the run finish?)")
    return models


def write_evaluation(run_dir: Path, cfg, task, models, data, data_paths, extra=None) -> dict:
    """Score ``data``, write the record (``evaluation.json``, or ``external/<id>/metrics.json``), log it."""
    import datetime as _dt
    import secrets

    from ..artifacts import write_json
    from .board import publish_evaluation
    from .context import RunContext
    from .rundir import plot_histories
    from .trainer import to_plain

    if not data_paths:
        out = run_dir
    else:
        out = run_dir / "external" / f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(cfg, task, data, out)
        result = task.result_type.load(run_dir, models)
        test = to_plain(task.evaluate(ctx, result, data))
        if not data_paths:
            plot_histories(run_dir, cfg)
        record = {"task": cfg.task, "run_dir": str(run_dir), "data": data.describe(), "test": test,
                  "independent_sample": bool(data_paths), **(extra or {})}
        write_json(out / ("evaluation.json" if not data_paths else "metrics.json"), record)
        publish_evaluation(out, test, independent=bool(data_paths))  # its own folder, replaced: no duplicates
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


def check_links_inside(run_dir: Path) -> None:
    """Refuse a symbolic link inside ``run_dir`` that leads out of it (evaluation writes there)."""
    from ..errors import DataError

    for folder, dirs, files in os.walk(run_dir):  # links are listed, not followed
        for name in dirs + files:
            p = Path(folder, name)
            if p.is_symlink() and not _within(p, run_dir):
                raise DataError(p, f"a file or folder of run {run_dir} (evaluation writes only inside it)",
                                f"a symbolic link to {os.path.realpath(p)}, outside the run; nothing was written")


# ------------------------------------------------------------------ the data of the run
class _TwinNeeded(Exception):
    """Raised instead of writing the synthetic twin outside the run directory."""


def _twin_candidate(recorded_path: str, data_dir: str) -> Path | None:
    """Where, under ``data_dir`` now, the twin file trained on at ``recorded_path`` would be."""
    if _within(recorded_path, data_dir):
        return Path(recorded_path)
    rel = Path(os.path.normpath(data_dir))  # relative data_dir, the run made in another folder
    parts, n = Path(recorded_path).parts, len(rel.parts)
    if rel.is_absolute() or ".." in rel.parts or rel.parts in ((), (".",)):
        return None
    for i in range(len(parts) - n - 1, -1, -1):
        if parts[i:i + n] == rel.parts:
            return Path(os.path.realpath(data_dir), *parts[i + n:])
    return None


def twin_present(config, recorded: dict | None) -> bool:
    """Whether the synthetic twin the run was trained on (``recorded``) is in ``config.data.data_dir``
    with the same size and parameter stamp: the task then reads it and writes nothing."""
    from ..data.fingerprint import file_fingerprint

    if not recorded or recorded.get("source") != "synthetic" or not recorded.get("files"):
        return False
    for rec in recorded["files"]:
        where = _twin_candidate(rec["path"], config.data.data_dir) if rec.get("stamp") else None
        found = file_fingerprint(where, synthetic=True) if where is not None else None
        if not found or (found["size"], found.get("stamp")) != (rec.get("size"), rec["stamp"]):
            return False
    return True


def guarded(task, run_dir: Path, recorded: dict | None):
    """A copy of ``task`` whose ``make_synthetic`` runs only when the twin is in place
    (:func:`twin_present`) or ``data.data_dir`` is inside ``run_dir``, else raises _TwinNeeded."""
    import copy

    original = task.make_synthetic

    def make_synthetic(config):
        if _within(config.data.data_dir, run_dir) or twin_present(config, recorded):
            return original(config)
        raise _TwinNeeded

    task = copy.copy(task)
    task.make_synthetic = make_synthetic
    return task


def load_confined(task, cfg, run_dir: Path, recorded: dict | None, data_paths=None):
    """``(data, config used, sandbox or None)``: the run's data, loaded writing nothing outside it (a
    missing twin is made in the sandbox ``<run>/.evaluate-data-<id>``, which the caller removes).

    Raises:
        DataError: the run was trained on files that are gone (the task would use its twin).
    """
    import secrets
    import shutil

    from ..errors import DataError, user_os_errors
    from .trainer import load_task_data

    task = guarded(task, run_dir, recorded)
    kwargs = {"paths": list(data_paths) if data_paths else None, "for_evaluation": bool(data_paths)}
    try:
        return load_task_data(task, cfg, **kwargs), cfg, None
    except _TwinNeeded:
        pass
    if recorded and recorded.get("source") != "synthetic":
        files = [f["path"] for f in recorded["files"]]
        gone = next((p for p in files if not os.path.exists(p)), files[0] if files else run_dir / "metrics.json")
        raise DataError(gone, f"the input files run {run_dir} was trained on ({', '.join(files)})", "none there: "
                        "the task would fall back to its synthetic twin, other events; nothing was written. "
                        "Restore the files, or score other ones with --data FILES")
    sandbox = run_dir / f"{SANDBOX_PREFIX}{secrets.token_hex(3)}"
    log.warning("%s: the synthetic twin it was trained on is not in data.data_dir=%r; regenerating it for this "
                "evaluation in %s (removed afterwards; nothing is written outside the run)",
                run_dir, cfg.data.data_dir, sandbox)
    try:
        with user_os_errors(f"a run directory kerahep may write into ({run_dir})"):
            sandbox.mkdir()
        cfg = cfg.override([f"data.data_dir={str(sandbox)!r}"])
        return load_task_data(task, cfg, **kwargs), cfg, sandbox
    except BaseException:
        shutil.rmtree(sandbox, ignore_errors=True)
        raise


def recorded_fingerprint(run_dir: Path, no_data_check: bool = False) -> dict | None:
    """The data fingerprint in the run's ``metrics.json``; missing or damaged, a DataError naming
    ``--no-data-check``, or with ``no_data_check`` None and a logged warning."""
    from ..errors import DataError

    metrics_path = run_dir / "metrics.json"
    try:
        recorded = _read_fingerprint(metrics_path)
        if not recorded:
            raise DataError(metrics_path, "the data fingerprint kerahep records at training "
                            "(metrics.json[\"data\"][\"fingerprint\"])",
                            "none (a run made before fingerprints, or the entry removed); nothing shows the input "
                            "files are those it was trained on, and from other files its rebuilt test split would "
                            f"hold other events, training events among them; nothing was written. {_NO_CHECK}")
    except DataError as exc:
        if not no_data_check:
            raise
        log.warning("%s: expected %s, found %s (--no-data-check: evaluating anyway; the data of the run cannot be "
                    "checked, so if the input files changed since training its rebuilt test split may hold other "
                    "events, including training events)", exc.path, exc.expected, exc.found.split(";")[0])
        return None
    return recorded


def _read_fingerprint(metrics_path: Path, hint: str = _NO_CHECK) -> dict | None:
    """``metrics.json["data"]["fingerprint"]`` (None when absent), its structure checked.

    Raises:
        DataError: metrics.json missing, damaged, or holding a damaged fingerprint (``hint`` added).
    """
    from ..artifacts import read_json
    from ..errors import DataError

    expected, found = "the run's metrics.json: a JSON object (with the data fingerprint of its training)", None
    try:
        metrics = read_json(metrics_path)
    except FileNotFoundError:
        found = "no such file"
    except UnicodeDecodeError:
        found = "bytes that are not UTF-8 text"
    except ValueError as exc:
        found = f"a damaged file ({str(exc).splitlines()[0][:120]})"
    except OSError as exc:
        found = f"an unreadable file ({exc.strerror or exc})"
    else:
        if not isinstance(metrics, dict) or not isinstance(metrics.get("data") or {}, dict):
            found = f"a JSON {type(metrics).__name__}" if not isinstance(metrics, dict) else \
                "a 'data' entry that is not an object"
    recorded = None if found else (metrics.get("data") or {}).get("fingerprint")
    files = recorded.get("files") if isinstance(recorded, dict) else None
    if recorded and not (isinstance(files, list) and all(isinstance(f, dict) and isinstance(f.get("path"), str)
                                                         for f in files)):
        expected, found = "the run's metrics.json with the data fingerprint kerahep wrote at training", \
            "a damaged fingerprint (edited by hand?)"
    if found:
        raise DataError(metrics_path, expected, f"{found}; nothing was written" + (f". {hint}" if hint else ""))
    return recorded or None


def _twin_sizes_dropped(fp: dict) -> dict:
    return {**fp, "files": [{**f, "size": None} if f.get("stamp") else f for f in fp.get("files", [])]}


def check_same_data(run_dir, data, recorded: dict | None, no_data_check: bool = False,
                    regenerated: bool = False) -> None:
    """Refuse to rebuild ``run_dir``'s test split from data other than it was trained on.

    ``recorded`` is :func:`recorded_fingerprint`'s (None: not checked, the caller said so);
    evaluation and ``kerahep export`` both read it first. A fingerprint too damaged to compare
    is refused unless ``no_data_check``. A twin that evaluation has just ``regenerated`` in the
    run is compared by name, parameter stamp and split sizes, not bytes: its files may record
    the folder they were made in (dy_electron's ``file`` column), so the same events take
    other bytes there.
    """
    from ..data.fingerprint import compare_fingerprints, data_fingerprint
    from ..errors import DataError

    metrics_path = Path(run_dir) / "metrics.json"
    if recorded is None:
        return
    found = data_fingerprint(data)
    try:
        if regenerated:
            recorded, found = _twin_sizes_dropped(recorded), _twin_sizes_dropped(found)
        diff = compare_fingerprints(recorded, found)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError, OverflowError):
        err = DataError(metrics_path, "the run's metrics.json with the data fingerprint kerahep wrote at training",
                        f"a damaged fingerprint (edited by hand?); nothing was written. {_NO_CHECK}")
        if not no_data_check:
            raise err from None
        log.warning("%s: %s (--no-data-check: evaluating anyway, unchecked)", err.path, err.found.split(";")[0])
        return
    if diff is not None:
        path, expected, found = diff
        raise DataError(
            path, expected,
            f"{found}. The input data of run {run_dir} changed since training, so its test split "
            "cannot be rebuilt (the same indices would select other events, training events "
            "among them); nothing was written. Restore the original files, or score the new "
            "files as an independent sample: python -m scripts.evaluate --run "
            f"{run_dir} --data FILES")
