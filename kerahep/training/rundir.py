"""Run directories: creating and finding them, resuming one, and the history files of its
stages (one row per epoch, the best value so far for checkpoints and early stopping).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import logging
import os
import secrets
from pathlib import Path

from .. import artifacts
from ..config import Config
from ..errors import ConfigError, KerahepError

log = logging.getLogger("kerahep")


def new_run_id() -> str:
    return f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"


def task_dir(config: Config) -> Path:
    artifacts.check_name(config.task, "task name")
    return Path(config.run.output_dir) / config.task


def latest_run(task_root: Path) -> Path | None:
    """The run named by ``<task_root>/LATEST``, or None."""
    latest = Path(task_root) / "LATEST"
    if not latest.exists():
        return None
    name = latest.read_text(encoding="utf-8").strip()
    artifacts.check_name(name, f"run named in {latest}")
    path = Path(task_root) / name
    return path if path.is_dir() else None


def unfinished_run(root: Path) -> Path | None:
    candidates = []
    for d in root.iterdir() if root.exists() else ():
        if d.is_dir() and (d / "config.json").exists():
            status = None
            if (d / "metrics.json").exists():
                try:
                    status = artifacts.read_json(d / "metrics.json").get("status")
                except ValueError:
                    status = None
            if status != "complete":
                candidates.append(d)
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def make_run_dir(config: Config) -> tuple[Path, bool]:
    """Create (or, with ``run.resume``, find) the run directory; return (path, resumed)."""
    root = task_dir(config)
    root.mkdir(parents=True, exist_ok=True)
    if config.run.resume:
        run = root / config.run.run_id if config.run.run_id else unfinished_run(root)
        if run is not None and run.is_dir():
            status = None
            with contextlib.suppress(ValueError, OSError):
                status = artifacts.read_json(run / "metrics.json").get("status") if (run / "metrics.json").exists() else None
            if status == "complete":  # its resume state is gone: it would train again from scratch
                raise ConfigError(f"run directory {run} holds a complete run: nothing to resume (score it with "
                                  f"python -m scripts.evaluate --run {run}, or start a new run)")
            return run, True
        if config.run.run_id is None:
            log.warning("--resume: no unfinished %s run under %s; starting a new one", config.task, root)
    run_id = config.run.run_id or new_run_id()
    run = root / run_id
    try:
        run.mkdir(parents=False, exist_ok=False)
    except FileExistsError:
        raise ConfigError(f"run directory {run} already exists; pass --resume to continue it or choose another --run-id") from None
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
        saved = Config.from_dict(artifacts.read_json(saved_path))
    except (ValueError, KerahepError) as exc:
        raise ConfigError(f"{saved_path}: cannot resume from this configuration: {exc}") from None
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


def dedupe_history(path: Path) -> None:
    """Keep one row per epoch (the last written) in a CSVLogger file, in epoch order."""
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return
    header, body = rows[0], rows[1:]
    by_epoch = {}
    for r in body:
        if r and r != header:
            by_epoch[int(float(r[0]))] = r
    lines = [",".join(header)] + [",".join(by_epoch[k]) for k in sorted(by_epoch)]
    artifacts.write_text(path, "\n".join(lines) + "\n")


def best_in_history(path: Path, monitor: str, mode: str):
    """Best finite value of ``monitor`` in a history.csv, or None."""
    return history_progress(path, monitor, mode)[0]


def history_progress(path: Path, monitor: str, mode: str) -> tuple:
    """``(best finite value of monitor, epochs since it improved)`` over a history.csv, as
    Keras' EarlyStopping counts them (a non-finite or missing value is no improvement)."""
    import math

    best, wait = None, 0
    if not path.exists():
        return best, wait
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                v = float(row.get(monitor, "nan"))
            except ValueError:
                v = float("nan")
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
