"""Run directories: creating and finding them, resuming one, and the history files of its
stages (one row per epoch, the best value so far for checkpoints and early stopping).
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import os
import secrets
from pathlib import Path

from .. import artifacts
from ..config import Config
from ..errors import ConfigError, DataError, KerahepError, check_output_path, user_os_errors

log = logging.getLogger("kerahep")


def new_run_id() -> str:
    return f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"


def task_dir(config: Config) -> Path:
    artifacts.check_name(config.task, "task name")
    return Path(config.run.output_dir) / config.task


#: LATEST holds one run name (at most 128 characters); anything longer is not one
LATEST_MAX_BYTES = 256


def latest_run(task_root: Path) -> Path | None:
    """The run named by ``<task_root>/LATEST``, or None (no LATEST, or it names no folder).

    LATEST is a small plain file kerahep writes; anything else there is refused without
    reading (a link is not followed), and a file that does not hold a run name is refused
    without printing what it holds.

    Raises:
        DataError: LATEST is a link, a directory or another non-file, unreadable, not
            UTF-8 text, or not a run folder's name.
    """
    latest = Path(task_root) / "LATEST"
    expected = "a small text file naming the newest complete run (written by kerahep)"
    if latest.is_symlink():
        raise DataError(latest, expected, "a symbolic link (not followed)")
    if not latest.exists():
        return None
    if latest.is_dir():
        raise DataError(latest, expected, "a directory")
    if not latest.is_file():
        raise DataError(latest, expected, "a special file (not a regular file)")
    with user_os_errors(expected, latest), open(latest, "rb") as f:
        raw = f.read(LATEST_MAX_BYTES + 1)
    if len(raw) > LATEST_MAX_BYTES:
        raise DataError(latest, expected, f"a file of more than {LATEST_MAX_BYTES} bytes (contents not shown)")
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DataError(latest, expected, "bytes that are not UTF-8 text (contents not shown)") from None
    try:
        artifacts.check_name(name, "run name")
    except ConfigError:
        raise DataError(latest, "the name of a run folder (letters, digits, '_', '-' or '.')",
                        f"{len(name)} characters that are not one (contents not shown)") from None
    path = Path(task_root) / name
    return path if path.is_dir() else None


def run_status(run_dir: Path) -> str | None:
    """``metrics.json["status"]`` of a run (``running``, ``failed``, ``complete``), or None when
    the file is absent or damaged (not readable JSON, not an object)."""
    try:
        metrics = artifacts.read_json(Path(run_dir) / "metrics.json")
    except (OSError, ValueError):
        return None
    status = metrics.get("status") if isinstance(metrics, dict) else None
    return status if isinstance(status, str) else None


#: what a run keeps to resume from; :func:`~kerahep.training.trainer.close_run` removes it last
RESUME_STATE = ("backup", "stages")


def publication_pending(run_dir: Path) -> bool:
    """True for a complete run whose publication a kill cut short.

    ``metrics.json`` says ``complete`` but the run's resume state (``backup/``, ``stages/``)
    is still there and ``LATEST`` does not name it: the run was stopped after writing its
    metrics and before :func:`~kerahep.training.trainer.close_run` was done (that removes
    the resume state after moving ``LATEST``). A run that ``LATEST`` names, or whose resume
    state is gone (published, and since followed by a newer run), is not pending.
    """
    run_dir = Path(run_dir)
    if run_status(run_dir) != "complete" or not any((run_dir / d).is_dir() for d in RESUME_STATE):
        return False
    try:
        latest = latest_run(run_dir.parent)
    except DataError:  # a damaged LATEST names no run; publishing writes a good one
        latest = None
    return latest is None or latest.resolve() != run_dir.resolve()


def data_choice(paths, force_synthetic) -> tuple:
    """What a run is trained on, comparable across runs and folders: the input files as real
    paths, in order, or ``("<synthetic twin>",)`` when it uses its task's synthetic twin."""
    if force_synthetic or not paths:
        return ("<synthetic twin>",)
    return tuple(str(p) if "\0" in str(p) else os.path.realpath(str(p)) for p in paths)  # NUL: no path


def saved_data(run_dir: Path) -> tuple | None:
    """:func:`data_choice` of the run's saved ``config.json``; None when it cannot be read
    (:func:`resume_config` then names the damage)."""
    try:
        data = artifacts.read_json(Path(run_dir) / "config.json")["data"]
        return data_choice(data.get("paths") or (), data.get("force_synthetic", data.get("synthetic", False)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def given_data(config: Config) -> tuple | None:
    """:func:`data_choice` of ``config`` when it chooses data of its own (``--data``,
    ``--synthetic``, ``data.paths``, ``--config FILE``), or None when its data are its preset's
    (nothing chosen: a resumed run continues on its saved data)."""
    from ..registry import get_task

    try:
        preset = get_task(config.task).preset(config.preset).data
    except KerahepError:
        preset = None
    now = (tuple(config.data.paths or ()), bool(config.data.force_synthetic))
    if preset is not None and now == (tuple(preset.paths or ()), bool(preset.force_synthetic)):
        return None
    return data_choice(*now)


def describe_data(choice: tuple) -> str:
    return "the synthetic twin" if choice == ("<synthetic twin>",) else ", ".join(choice)


def resumable_runs(root: Path) -> list:
    """The runs under ``root`` that ``--resume`` continues, newest first (by folder time):
    unfinished ones (no ``complete`` status) and complete ones whose publication is
    pending (:func:`publication_pending`)."""
    runs = [d for d in (root.iterdir() if root.is_dir() else ())
            if d.is_dir() and (d / "config.json").exists()
            and (run_status(d) != "complete" or publication_pending(d))]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def unfinished_run(root: Path, data: tuple | None = None) -> Path | None:
    """The newest of :func:`resumable_runs` trained on ``data`` (a :func:`data_choice`; None:
    on any data), or None. Runs on other data are skipped with a log line."""
    for run in resumable_runs(root):
        saved = saved_data(run)
        if data is None or saved == data:
            return run
        log.info("--resume: skipping %s, a run on other data (%s)", run, describe_data(saved) if saved else
                 "unreadable config.json")
    return None


def resume_target(config: Config, root: Path) -> Path | None:
    """The run ``--resume`` continues, or None (a new run is started).

    With ``run.run_id``: that run, when its folder exists. Without: the newest unfinished
    run of the task on the same data. Data count as the same when the configuration
    chooses none of its own (its preset's data: the run continues on its saved ones), or
    when its input files (real paths, in order) or its use of the synthetic twin are the
    saved ones; unfinished runs on other data are skipped.

    Raises:
        ConfigError: the run named by ``run.run_id`` is complete and published, or was
            started on other data than the configuration now chooses.
    """
    data = given_data(config)
    if not config.run.run_id:
        run = unfinished_run(root, data)
        if run is None:
            log.warning("--resume: no unfinished %s run under %s%s; starting a new one", config.task, root,
                        f" on {describe_data(data)}" if data else "")
        return run
    run = root / config.run.run_id
    if not run.is_dir():
        return None
    if run_status(run) == "complete" and not publication_pending(run):  # its resume state is gone
        raise ConfigError(f"run directory {run} holds a complete run: nothing to resume (score it with "
                          f"python -m scripts.evaluate --run {run}, or start a new run)")
    saved = saved_data(run)
    if data is not None and saved is not None and saved != data:
        raise ConfigError(f"--resume of {run}: the run was started on {describe_data(saved)} (data.paths in "
                          f"{run / 'config.json'}), not on the data given now, {describe_data(data)}; resume it "
                          "choosing no data (no --data, --synthetic or data.paths), or start a new run on the new data (without --resume)")
    return run


def make_run_dir(config: Config) -> tuple[Path, bool]:
    """Create (or, with ``run.resume``, find: :func:`resume_target`) the run directory;
    return (path, resumed). The run resumed is logged with its path.

    Raises:
        DataError: ``run.output_dir`` (or its task folder) is a file, or a folder kerahep
            may not write into.
        ConfigError: the run exists (without resume), or is complete (with resume), or
            was started on other data than given now (with resume).
    """
    root = task_dir(config)
    what = f"run directories, run.output_dir={config.run.output_dir!r}"
    check_output_path(root, what, folder=True)
    with user_os_errors(f"a folder kerahep may write into, for {what}"):
        root.mkdir(parents=True, exist_ok=True)
    if config.run.resume:
        run = resume_target(config, root)
        if run is not None:
            log.info("--resume: continuing %s run %s", config.task, run)
            return run, True
    run_id = config.run.run_id or new_run_id()
    run = root / run_id
    with user_os_errors(f"a folder kerahep may write into, for {what}"):
        try:
            run.mkdir(parents=False, exist_ok=False)
        except FileExistsError:
            raise ConfigError(f"run directory {run} already exists; pass --resume to continue it or choose "
                              "another --run-id") from None
    return run, False


def resume_config(config: Config, run_dir: Path) -> Config:
    """The configuration a resumed run continues with: the run's own ``config.json``.

    Data, model and training settings (and the seed) come from the saved file, so
    ``--resume`` needs none of the original ``--set`` options; the ``run`` settings given
    now (output folder, verbosity, strategy) are kept. Given values that differ from the
    saved ones are listed in a warning, never applied half-way.
    """
    import dataclasses

    saved_path = Path(run_dir) / "config.json"
    if not saved_path.exists():
        return config
    try:
        saved = Config.from_file(saved_path)  # names the file: empty, not JSON, a section not an object
    except KerahepError as exc:
        raise ConfigError(f"cannot resume {run_dir} from its configuration: {exc}") from None
    if saved.task != config.task:
        raise ConfigError(f"{saved_path}: expected a {config.task} run, found one of task {saved.task!r}")
    given, kept = config.to_dict(), saved.to_dict()
    diffs = [f"{sec}.{k}={given[sec][k]!r} (saved: {kept[sec][k]!r})"
             for sec in ("data", "model", "training") for k in kept[sec] if given[sec].get(k) != kept[sec][k]]
    if config.run.seed != saved.run.seed:
        diffs.append(f"run.seed={config.run.seed!r} (saved: {saved.run.seed!r})")
    if diffs:
        log.warning("--resume continues %s with its saved configuration; ignoring %s", run_dir, "; ".join(diffs))
    return dataclasses.replace(saved, run=dataclasses.replace(config.run, seed=saved.run.seed))


def stage_file(stage: str, stem: str, ext: str) -> str:
    return f"{stem}{ext}" if stage == "main" else f"{stem}_{stage}{ext}"


def read_history(path: Path) -> tuple[list, list]:
    """``(header, rows)`` of a CSVLogger file; rows whose field count is not the header's
    (a line cut by a kill, a damaged line) are left out, with a warning naming the file."""
    with user_os_errors("a readable history file of the run", path), open(path, newline="", encoding="utf-8",
                                                                          errors="replace") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        return [], []
    header, body, bad = rows[0], [], 0
    for r in rows[1:]:
        if r == header:
            continue
        if len(r) != len(header) or not _is_number(r[0]):
            bad += 1
            continue
        body.append(r)
    if bad:
        log.warning("%s: left out %d damaged or incomplete line(s) (a write cut by a kill?)", path, bad)
    return header, body


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def repair_history(path: Path) -> bool:
    """Drop a last line cut off by a kill (no line end) from a CSVLogger file, so that the
    rows a resumed run appends start on a line of their own; True when something was cut."""
    path = Path(path)
    if not path.is_file():
        return False
    with user_os_errors("a readable history file of the run", path):
        data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    keep = data[:data.rfind(b"\n") + 1]  # empty when even the header was cut
    log.warning("%s: its last line was cut off (the run was killed while writing it); dropped it: %d bytes",
                path, len(data) - len(keep))
    with artifacts.atomic_path(path, suffix=".csv") as tmp:
        tmp.write_bytes(keep)
    return True


def dedupe_history(path: Path) -> None:
    """Keep one row per epoch (the last written) in a CSVLogger file, in epoch order (damaged
    lines are dropped, see :func:`read_history`)."""
    if not path.exists():
        return
    header, body = read_history(path)
    if not header:
        return
    by_epoch = {}
    for r in body:
        by_epoch[int(float(r[0]))] = r
    lines = [",".join(header)] + [",".join(by_epoch[k]) for k in sorted(by_epoch)]
    artifacts.write_text(path, "\n".join(lines) + "\n")


def best_in_history(path: Path, monitor: str, mode: str):
    """Best finite value of ``monitor`` in a history.csv, or None."""
    return history_progress(path, monitor, mode)[0]


def history_progress(path: Path, monitor: str, mode: str) -> tuple:
    """``(best finite value of monitor, epochs since it improved)`` over a history.csv, as
    Keras' EarlyStopping counts them (a non-finite or missing value is no improvement;
    damaged lines are not epochs, see :func:`read_history`)."""
    import math

    best, wait = None, 0
    if not path.exists():
        return best, wait
    header, body = read_history(path)
    col = header.index(monitor) if monitor in header else None
    for row in body:
        v = float(row[col]) if col is not None and _is_number(row[col]) else float("nan")
        if math.isfinite(v) and (best is None or (v > best if mode == "max" else v < best)):
            best, wait = v, 0
        else:
            wait += 1
    return best, wait


def plot_histories(run_dir, config=None) -> list:
    """Draw ``plots/history*.png`` (and ``.pdf``) from the run's ``history*.csv`` files (one
    per stage), at the PNG resolution of ``config`` (``run.plot_dpi``, as every figure of the
    run; None: the default), through :func:`kerahep.plotting.save_figure`.

    Drawn from the files rather than from Keras' in-memory history, so a resumed run
    shows every epoch (also when every stage had finished before the interruption and
    none is trained again), and re-evaluating a run redraws the same figures. Damaged
    lines are left out (:func:`read_history`); a file with no epoch is not drawn, with a
    warning naming it.
    """
    from .. import plotting

    run_dir = Path(run_dir)
    out = []
    with plotting.figure_settings(config):
        for csv_path in sorted(run_dir.glob("history*.csv")):
            drawn = plot_history_file(csv_path, run_dir / "plots")
            if drawn is not None:
                out.append(drawn)
    return out


def plot_history_file(csv_path: Path, plots_dir: Path) -> Path | None:
    """``<plots_dir>/<csv stem>.png`` of one history file (see :func:`plot_histories`), or None."""
    from .. import plotting

    try:
        header, body = read_history(csv_path)
    except KerahepError as exc:  # unreadable: the run's other artifacts still count
        log.warning("%s; not drawn", exc)
        return None
    hist = {k: [float(r[i]) if _is_number(r[i]) else float("nan") for r in body]
            for i, k in enumerate(header) if k != "epoch"}
    if not hist or not body:
        log.warning("%s: no epoch to draw (empty or damaged history); %s.png not drawn", csv_path, csv_path.stem)
        return None
    return plotting.history(hist, plots_dir / (csv_path.stem + ".png"))
