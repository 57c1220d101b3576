"""Scoring new files with a trained run: ``kerahep predict`` / ``python -m scripts.predict``.

:func:`predict_files` writes one output per input file, in a format the analysis reads
(a ROOT friend tree for NanoAOD, HDF5 beside crop and jet-image files, CSV or Parquet
tables), with the scores joined to the input's rows: the same rows in the same order,
their identifiers (``run``/``luminosityBlock``/``event``, the row index, the line number,
the lumisection) and the labels when the file has them. How a task reads its files and
what it writes per row is the task's :meth:`~kerahep.tasks.base.Task.predict_file`, a
generator of chunks; this module does the rest, the same for every task:

* the run and its models (safe mode), as :class:`PredictRun`;
* bounded memory: tasks read ``chunk_size`` rows at a time and the writers append;
* all or nothing per file: each output is written under a temporary name and renamed
  when complete; on any error the partial file is removed (earlier outputs stay);
* provenance in every output (:func:`provenance`): run id, the sha256 of each model
  file, kerahep version, the configuration's sha256, and the input's path, size and
  modification time;
* many files in parallel on Dask (``dask=True``): one task per file, each writing its
  own output exactly as the serial path does.

Example::

    from kerahep.prediction import predict_files

    predict_files("results/dy_electron/RUN", ["nano_dy.root"], out="scores/")
    # -> scores/nano_dy.root with tree Events: kerahep_score, kerahep_selected, run, ...
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifacts import sha256
from ..errors import DataError, KerahepError
from .writers import EXTENSIONS, FORMATS, WRITERS, read_provenance

__all__ = ["PredictRun", "open_run", "predict_files", "predict_file", "output_path", "provenance",
           "read_provenance", "FORMATS"]

log = logging.getLogger("kerahep")

#: input suffixes dropped to name the output (longest first)
INPUT_SUFFIXES = (".csv.gz", ".root", ".h5", ".hdf5", ".csv", ".npy", ".txt", ".gz")


@dataclass
class PredictRun:
    """A trained run, loaded for scoring.

    Attributes:
        run_dir: the run directory.
        config: its configuration (``config.json``).
        task: its task object.
        models: artifact name -> Keras model (every saved one of ``task.artifacts``; loaded on first use).
        result: the task's :class:`~kerahep.tasks.base.FitResult` with the stored fields.
        batch_size: events per model call.
        chunk_size: rows read from a file at a time: the memory bound.
        embedding: also write the embedding or latent vector, where the task has one.
    """

    run_dir: Path
    config: Any
    task: Any
    models: Mapping
    result: Any
    batch_size: int = 1024
    chunk_size: int = 65536
    embedding: bool = False

    def score(self, x, model: str = "model", output=None):
        """``kerahep.scoring.score`` with the run's model ``model`` and batch size."""
        from ..scoring import score

        return score(self.models[model], x, batch_size=self.batch_size, output=output)

    @property
    def run_id(self) -> str:
        return self.run_dir.name


class LazyModels(Mapping):
    """A run's saved models by artifact name, each loaded on first use (``model`` at once).

    A task's ``predict_file`` uses one or two of its artifacts (the pre-trainer of higgs_mae,
    say, never): loading only those saves seconds per ``predict`` call.
    """

    def __init__(self, run_dir: Path, names, safe_mode: bool):
        self._paths = {n: run_dir / f"{n}.keras" for n in names if (run_dir / f"{n}.keras").exists()}
        self._safe_mode = safe_mode
        self._loaded: dict = {}

    def __getitem__(self, name):
        if name not in self._loaded:
            from ..saving import load_model

            # scoring only: no optimizer, losses or metrics restored (about half the load time)
            self._loaded[name] = load_model(self._paths[name], safe_mode=self._safe_mode, compile=False)
        return self._loaded[name]

    def __iter__(self):
        return iter(self._paths)

    def __len__(self):
        return len(self._paths)

    def loaded(self) -> list:
        """The names of the models loaded so far."""
        return list(self._loaded)


def open_run(run_dir, batch_size: int = 1024, chunk_size: int = 65536, embedding: bool = False,
             unsafe_load: bool = False) -> PredictRun:
    """Load the run in ``run_dir`` for scoring (its models in Keras' safe mode unless ``unsafe_load``).

    ``model.keras`` is loaded (and checked) at once, the task's other artifacts when first used.
    """
    from ..config import Config
    from ..registry import get_task

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise KerahepError(f"{run_dir}: expected a run directory with config.json, found none")
    if batch_size < 1 or chunk_size < 1:
        raise KerahepError(f"batch size and chunk size must be positive, got {batch_size} and {chunk_size}")
    cfg = Config.from_file(run_dir / "config.json")
    task = get_task(cfg.task)
    models = LazyModels(run_dir, task.artifacts, safe_mode=not unsafe_load)
    if "model" not in models:
        raise KerahepError(f"{run_dir}: expected model.keras, found none (did the run finish?)")
    models["model"]  # noqa: B018 - load and check the main model before any input is read
    result = task.result_type.load(run_dir, {})
    result.models = models
    return PredictRun(run_dir=run_dir, config=cfg, task=task, models=models, result=result,
                      batch_size=int(batch_size), chunk_size=int(chunk_size), embedding=bool(embedding))


# ---------------------------------------------------------------------------- provenance
def config_sha256(config) -> str:
    """sha256 of the configuration as canonical JSON (sorted keys): equal configurations, equal hashes."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _input_record(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size,
            "mtime": _dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc).isoformat()}


def provenance(run: PredictRun, path: Path, fmt: str, model_hashes: dict | None = None) -> dict:
    """What an output records of where it came from (see the module docstring)."""
    import kerahep

    hashes = model_hashes or {name: sha256(run.run_dir / f"{name}.keras") for name in run.models}  # names only
    return {
        "kerahep_version": kerahep.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "task": run.task.name,
        "run_id": run.run_id,
        "run_dir": str(run.run_dir.resolve()),
        "models": {name: {"file": f"{name}.keras", "sha256": h} for name, h in hashes.items()},
        "config_sha256": config_sha256(run.config),
        "format": fmt,
        "input": _input_record(path),
    }


# ------------------------------------------------------------------------------ outputs
def output_name(path) -> str:
    """The output stem of input ``path``: its name without the data suffix (``nano_dy.root`` -> ``nano_dy``)."""
    name = Path(path).name
    for suffix in INPUT_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def output_path(path, out_dir, fmt: str) -> Path:
    """Where the output of input ``path`` goes: ``<out_dir>/<name>.<ext of fmt>``."""
    return Path(out_dir) / (output_name(path) + EXTENSIONS[fmt])


def check_format(task, fmt: str | None) -> str:
    """``fmt`` if the task writes it (None: the task's default)."""
    formats = tuple(getattr(task, "predict_formats", ()) or ())
    if not formats:
        raise KerahepError(f"task {task.name!r} cannot score new files yet (it has no predict_file)")
    if fmt is None:
        return formats[0]
    if fmt not in formats:
        raise KerahepError(f"task {task.name!r} writes its predictions as {', '.join(formats)}, not {fmt!r}")
    return fmt


def plan_outputs(files, out_dir, fmt: str) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs; refuses missing inputs, two inputs with one output name, and an
    output that would overwrite its own input."""
    pairs, seen = [], {}
    for f in files:
        f = Path(f)
        if not f.is_file():
            raise DataError(f, "an input file to score", "no such file" if not f.exists() else "a folder")
        target = output_path(f, out_dir, fmt)
        key = str(target.resolve())
        if key in seen:
            raise KerahepError(f"{f} and {seen[key]} would both be scored into {target}; score them into "
                               "different --out folders, or rename one")
        if target.resolve() == f.resolve():
            raise KerahepError(f"{f}: the output would overwrite the input; give another --out folder")
        seen[key] = f
        pairs.append((f, target))
    return pairs


def predict_file(run: PredictRun, path, target, fmt: str, model_hashes: dict | None = None) -> dict:
    """Score one input file into ``target`` (all or nothing); returns ``{input, output, rows, format}``."""
    path, target = Path(path), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.stem}.part-{os.getpid()}-{secrets.token_hex(3)}{target.suffix}"
    record = provenance(run, path, fmt, model_hashes)
    writer = None
    try:
        writer = WRITERS[fmt](tmp, record)
        chunks = 0
        for chunk in run.task.predict_file(run, path):
            writer.write(chunk)
            chunks += 1
        if not chunks:
            raise KerahepError(f"{path}: task {run.task.name!r} yielded no rows and no columns")
        writer.close()
        os.replace(tmp, target)
    except BaseException:
        if writer is not None:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        if tmp.exists():
            tmp.unlink()
        raise
    return {"input": str(path), "output": str(target), "rows": writer.rows, "format": fmt}


def predict_files(run_dir, files, out=None, fmt: str | None = None, *, dask: bool = False,
                  scheduler: str | None = None, batch_size: int = 1024, chunk_size: int = 65536,
                  embedding: bool = False, unsafe_load: bool = False) -> list[dict]:
    """Score ``files`` with the run in ``run_dir``: one output per input under ``out``.

    Args:
        run_dir: the run directory (``results/<task>/<run_id>``).
        files: input files in the task's own format.
        out: output folder (default ``<run_dir>/predictions``).
        fmt: output format, one of the task's ``predict_formats`` (default its first).
        dask: score the files in parallel on Dask, one task per file.
        scheduler: address of an existing Dask scheduler (default: a local cluster).
        batch_size, chunk_size, embedding, unsafe_load: see :class:`PredictRun`.

    Returns:
        one dict per input, in order: ``input``, ``output``, ``rows``, ``format``.

    Raises:
        DataError: an input is missing or not what the task reads (named in the message);
            the outputs already complete stay, the failing one is not written.
    """
    if not files:
        raise KerahepError("no input files to score")
    run = open_run(run_dir, batch_size=batch_size, chunk_size=chunk_size, embedding=embedding,
                   unsafe_load=unsafe_load)
    fmt = check_format(run.task, fmt)
    out = Path(out) if out else run.run_dir / "predictions"
    pairs = plan_outputs(files, out, fmt)
    hashes = {name: sha256(run.run_dir / f"{name}.keras") for name in run.models}
    if dask:
        from .distributed import predict_on_dask

        return predict_on_dask(run, pairs, fmt, hashes, scheduler=scheduler, unsafe_load=unsafe_load)
    results = []
    for path, target in pairs:
        results.append(predict_file(run, path, target, fmt, hashes))
        log.info("%s -> %s (%d rows)", path, target, results[-1]["rows"])
    return results
