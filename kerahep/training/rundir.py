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


def unfinished_run(root: Path) -> Path | None:
    candidates = [d for d in (root.iterdir() if root.is_dir() else ())
                  if d.is_dir() and (d / "config.json").exists() and run_status(d) != "complete"]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def make_run_dir(config: Config) -> tuple[Path, bool]:
    """Create (or, with ``run.resume``, find) the run directory; return (path, resumed).

    Raises:
        DataError: ``run.output_dir`` (or its task folder) is a file, or a folder kerahep
            may not write into.
        ConfigError: the run exists (without resume), or is complete (with resume).
    """
    root = task_dir(config)
    what = f"run directories, run.output_dir={config.run.output_dir!r}"
    check_output_path(root, what, folder=True)
    with user_os_errors(f"a folder kerahep may write into, for {what}"):
        root.mkdir(parents=True, exist_ok=True)
    if config.run.resume:
        run = root / config.run.run_id if config.run.run_id else unfinished_run(root)
        if run is not None and run.is_dir():
            if run_status(run) == "complete":  # its resume state is gone: it would train again from scratch
                raise ConfigError(f"run directory {run} holds a complete run: nothing to resume (score it with "
                                  f"python -m scripts.evaluate --run {run}, or start a new run)")
            return run, True
        if config.run.run_id is None:
            log.warning("--resume: no unfinished %s run under %s; starting a new one", config.task, root)
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


def plot_histories(run_dir) -> list:
    """Draw ``plots/history*.png`` from the run's ``history*.csv`` files (one per stage).

    Drawn from the files rather than from Keras' in-memory history, so a resumed run
    shows every epoch, and re-evaluating a run redraws the same figures.
    """
    import pandas as pd

    from .. import plotting

    run_dir = Path(run_dir)
    out = []
    for csv_path in sorted(run_dir.glob("history*.csv")):
        try:
            df = pd.read_csv(csv_path)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        hist = {k: df[k].tolist() for k in df.columns if k != "epoch"}
        if hist and len(df):
            out.append(plotting.history(hist, run_dir / "plots" / (csv_path.stem + ".png")))
    return out
