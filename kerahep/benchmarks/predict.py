"""predict benchmarks: ``kerahep predict`` on files against the model alone on arrays in memory.

For every task that scores new files (a ``predict.py`` and ``predict_formats``), a smoke run
is trained once (its smoke preset, into the workdir), and its synthetic twin's input file
is grown to the sizes below by repeating its events (:func:`grow`: ROOT ``Events`` trees
re-written with uproot ``mktree``/``extend``, jagged branches as records with their
``n<name>`` counters; HDF5 datasets tiled with the source's dtype and compression, chunks
of at least 1 MiB; CSV lines repeated, gzip kept; ``.npy`` tiled along axis 0). Rows, per
task, both measured side by side in one run:

* ``scoring throughput, predict on files vs model.predict in memory``: events (rows of the
  input file) per second of the per-file step of :func:`kerahep.prediction.predict_files`
  (:func:`kerahep.prediction.predict_file`, with the run already open, as for every file
  of a command: reading the file chunk by chunk, the task's checks and preprocessing --
  for dy_electron the NanoAOD preparation: preselection and flattening -- scoring and
  writing with the provenance, model hashes included) against ``model.predict(x,
  batch_size=same)`` on the same events held in memory as arrays. The arrays ``x`` are
  recorded once: :func:`record_inputs` runs the task's ``predict_file`` with every model
  of the run wrapped so that each call (through ``PredictRun.score`` or, like hcal_dqm's
  autoencoder, directly) records its input; per model they are concatenated, and the
  baseline is one ``model.predict`` per recorded model, all timed together (dy_electron:
  only the preselected events reach the model, as in predict). One warm-up of each side,
  then the best of ``repeat`` passes, the sides alternating. Target >= 0.9. The fixed cost
  of a command, opening the run once (loading the models in safe mode with the load
  limits, hashing them), is measured alongside: ``extra["ratio_one_command"]`` is the
  ratio of a whole ``predict_files`` call on this one file, and ``extra["profile_s"]``
  splits it into ``open_run``, ``score`` (inside the models' calls), ``task_other`` (the
  rest of the task's ``predict_file``) and ``write`` (:func:`profile_predict`); the notes
  give both.
* ``peak memory of predict, input grown tenfold``: peak resident memory of a process that
  runs :func:`~kerahep.prediction.predict_files` on the file of ``N`` events against one on
  ``10 N`` events, the same ``chunk_size`` (several chunks already in the small file), each
  in a fresh process whose peak its launcher reads (``run_child(..., launcher=True)``); the
  two run at the same time (nothing but their peaks is read from them).
  Target <= 1.2. The memory added above the process's resident memory after its imports
  is in ``extra`` (``added_mb``): the part that could grow with the file.

Each measurement runs in its own process (:func:`~kerahep.benchmarks.run_child`), so that
the tasks do not share TensorFlow's state or thread pools. Run with
``python -m scripts.benchmark --task predict [--quick]``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from . import Row, ratio_row, run_child
from .grow import grow, grow_hdf5, grow_lines, grow_npy, grow_root  # noqa: F401 - re-exported

#: the tasks, in the order they are measured
TASKS = ("dy_electron", "electron_photon", "higgs_mae", "jet_ssl", "hcal_dqm")
BATCH = 1024

#: per task: (throughput file events, memory file events N (and 10 N), memory chunk_size), quick and full
SIZES = {
    "dy_electron": {"quick": (20_000, 4_000, 1_000), "full": (100_000, 40_000, 8_192)},
    "electron_photon": {"quick": (2_000, 1_024, 256), "full": (6_000, 2_048, 512)},
    "higgs_mae": {"quick": (10_000, 4_000, 1_000), "full": (40_000, 10_000, 2_048)},
    "jet_ssl": {"quick": (64, 24, 8), "full": (256, 48, 16)},
    "hcal_dqm": {"quick": (2_000, 500, 125), "full": (5_000, 2_000, 500)},
}


# ----------------------------------------------------------------------------- the tasks
def available_tasks() -> list[str]:
    """The tasks that score new files: a ``predict.py`` in their package and ``predict_formats``."""
    from ..registry import get_task

    tasks_dir = Path(__file__).resolve().parents[1] / "tasks"
    return [t for t in TASKS if (tasks_dir / t / "predict.py").exists()
            and tuple(getattr(get_task(t), "predict_formats", ()) or ())]


def smoke_run(task: str, workdir: Path) -> tuple[Path, object]:
    """The run directory and configuration of ``task``'s smoke preset trained under ``workdir``
    (trained once: a later call with the same workdir reuses it)."""
    from ..config import Config
    from ..registry import get_task

    marker = workdir / "run.json"
    if marker.exists():
        run_dir = Path(json.loads(marker.read_text())["run_dir"])
        if (run_dir / "model.keras").exists() and (run_dir / "config.json").exists():
            return run_dir, Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    from ..training import train

    cfg = get_task(task).preset("smoke").override(
        ["run.verbose=0", f"run.output_dir='{workdir / 'results'}'", f"data.data_dir='{workdir / 'data'}'"])
    result = train(cfg)
    marker.write_text(json.dumps({"run_dir": str(Path(result.run_dir).resolve())}))
    return Path(result.run_dir).resolve(), result.config


def source_file(task: str, config) -> Path:
    """The twin's input file that predict reads: the one that is grown to the benchmark sizes."""
    from ..registry import get_task

    if task == "dy_electron":  # training reads the prepared table; predict reads the NanoAOD files
        return Path(config.data.data_dir) / "synthetic" / task / "nanoaod" / "DYJetsToLL_M-50.root"
    files = [Path(f) for f in get_task(task).make_synthetic(config)]
    if task == "jet_ssl":
        return files[1]  # the labelled file: its targets are copied too
    return files[0]


# --------------------------------------------------------------------------- recording x
class RecordingModel:
    """A model that records the input of every call (``model(x)`` and ``model.predict(x)``)
    and otherwise is the model it wraps."""

    def __init__(self, model):
        self._model = model
        self.inputs = []

    def _record(self, x):
        if isinstance(x, dict):
            self.inputs.append({k: np.array(v) for k, v in x.items()})
        elif isinstance(x, (list, tuple)):
            self.inputs.append(type(x)(np.array(v) for v in x))
        else:
            self.inputs.append(np.array(x))

    def __call__(self, x, *args, **kwargs):
        self._record(x)
        return self._model(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._record(x)
        return self._model.predict(x, *args, **kwargs)

    def compiled_forward(self):
        """The wrapped model's compiled forward pass (:func:`kerahep.scoring.compiled_forward`),
        recording each input before the call (outside the compiled function)."""
        from ..scoring import compiled_forward

        forward = compiled_forward(self._model)

        def call(x):
            self._record(x)
            return forward(x)

        return call

    def __getattr__(self, name):
        return getattr(self._model, name)


def concat_inputs(parts: list):
    """The recorded inputs of one model as one array (or dict / tuple of arrays)."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(np.concatenate([p[i] for p in parts]) for i in range(len(first)))
    return np.concatenate(parts)


def _rows(x) -> int:
    if isinstance(x, dict):
        return len(next(iter(x.values())))
    if isinstance(x, (list, tuple)):
        return len(x[0])
    return len(x)


def record_inputs(run, path) -> dict:
    """``{model name: every input it was given}`` when the task's ``predict_file`` scores ``path``
    with ``run`` (a :class:`~kerahep.prediction.PredictRun`, left as it is: a copy of it holds the
    wrapped models)."""
    import dataclasses

    wrapped = {name: RecordingModel(m) for name, m in run.models.items()}
    rec = dataclasses.replace(run, models=dict(wrapped))
    for _ in run.task.predict_file(rec, path):
        pass
    return {name: concat_inputs(w.inputs) for name, w in wrapped.items() if w.inputs}


# ------------------------------------------------------------------------ measurements
def profile_predict(run, path, out_dir: Path, fmt: str) -> dict:
    """One predict pass split into its parts (seconds): ``generator`` (the task's
    ``predict_file``), of which ``score`` (inside the models' calls) and ``task_other`` (the
    rest: reading, checks, preprocessing, turning model outputs into columns), and ``write``
    (the writer, with the provenance)."""
    import dataclasses

    from ..prediction import provenance
    from ..prediction.writers import WRITERS

    timers = {"score": 0.0}

    class Timed(RecordingModel):
        def _record(self, x):
            pass

        def __call__(self, x, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return self._model(x, *args, **kwargs)
            finally:
                timers["score"] += time.perf_counter() - t0

        def predict(self, x, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return self._model.predict(x, *args, **kwargs)
            finally:
                timers["score"] += time.perf_counter() - t0

        def compiled_forward(self):
            from ..scoring import compiled_forward

            forward = compiled_forward(self._model)

            def call(x):
                t0 = time.perf_counter()
                try:
                    return forward(x)
                finally:
                    timers["score"] += time.perf_counter() - t0

            return call

    timed = dataclasses.replace(run, models={k: Timed(m) for k, m in run.models.items()})
    target = out_dir / f"profile{Path(path).suffix}"
    t0 = time.perf_counter()
    writer = WRITERS[fmt](target, provenance(run, Path(path), fmt))
    t_write = time.perf_counter() - t0
    t_gen = 0.0
    it = iter(run.task.predict_file(timed, path))
    while True:
        t0 = time.perf_counter()
        try:
            chunk = next(it)
        except StopIteration:
            t_gen += time.perf_counter() - t0
            break
        t1 = time.perf_counter()
        t_gen += t1 - t0
        writer.write(chunk)
        t_write += time.perf_counter() - t1
    t0 = time.perf_counter()
    writer.close()
    t_write += time.perf_counter() - t0
    target.unlink(missing_ok=True)
    return {"generator": t_gen, "score": timers["score"], "task_other": t_gen - timers["score"],
            "write": t_write}


def throughput_in_child(run_dir, path, fmt, batch_size, chunk_size, repeat, out_dir) -> dict:
    """Seconds of ``predict_files`` on ``path``, of ``model.predict`` on the same events in
    memory (see the module docstring) and, to tell the fixed cost of opening the run apart,
    of the core's per-file step with the run already open
    (:func:`kerahep.prediction.predict_file`); runs in its own process."""
    from ..prediction import open_run, output_path, predict_file, predict_files

    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = open_run(run_dir, batch_size=batch_size, chunk_size=chunk_size)
    xs = record_inputs(run, path)
    models = {name: run.models[name] for name in xs}
    target = output_path(path, out_dir / "open_run", fmt)

    def candidate():
        t0 = time.perf_counter()
        res = predict_files(run_dir, [path], out=out_dir, fmt=fmt, batch_size=batch_size, chunk_size=chunk_size)
        return res[0]["rows"], time.perf_counter() - t0

    def baseline():
        t0 = time.perf_counter()
        for name, model in models.items():
            model.predict(xs[name], batch_size=batch_size, verbose=0)
        return time.perf_counter() - t0

    def run_open():
        t0 = time.perf_counter()
        predict_file(run, path, target, fmt)
        return time.perf_counter() - t0

    rows, _ = candidate()  # warm-up of every side
    baseline()
    run_open()
    best = {"candidate": float("inf"), "baseline": float("inf"), "run_open": float("inf")}
    for _ in range(int(repeat)):
        best["candidate"] = min(best["candidate"], candidate()[1])
        best["baseline"] = min(best["baseline"], baseline())
        best["run_open"] = min(best["run_open"], run_open())
    t0 = time.perf_counter()
    open_run(run_dir, batch_size=batch_size, chunk_size=chunk_size)
    t_open = time.perf_counter() - t0
    prof = profile_predict(run, path, out_dir, fmt)
    prof["open_run"] = t_open
    return {"rows": int(rows), "candidate_s": best["candidate"], "baseline_s": best["baseline"],
            "run_open_s": best["run_open"], "model_rows": {name: _rows(x) for name, x in xs.items()},
            "profile_s": prof}


def memory_in_child(run_dir, path, fmt, chunk_size, out_dir) -> dict:
    """``predict_files`` on ``path`` (runs in a child under a launcher, which adds the peak,
    ``peak_rss``); the resident memory (bytes) after the imports, ``base``."""
    import importlib

    import psutil

    from ..artifacts import read_json
    from ..prediction import predict_files
    from ..prediction.writers import WRITERS  # noqa: F401

    task = read_json(Path(run_dir) / "config.json")["task"]
    importlib.import_module(f"kerahep.tasks.{task}.predict")
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    base = psutil.Process().memory_info().rss
    res = predict_files(run_dir, [path], out=out_dir, fmt=fmt, batch_size=BATCH, chunk_size=chunk_size)
    return {"rows": int(res[0]["rows"]), "base": base}


# ------------------------------------------------------------------------------- rows
def task_rows(task: str, quick: bool, workdir: Path, sizes: tuple | None = None, isolate: bool = True) -> list[Row]:
    """The two rows of ``task`` (see the module docstring); ``sizes`` replaces its :data:`SIZES`;
    ``isolate=False`` measures the throughput in this process (the memory rows always have
    their own processes)."""
    from ..registry import get_task

    workdir.mkdir(parents=True, exist_ok=True)
    run_dir, config = smoke_run(task, workdir)
    fmt = get_task(task).predict_formats[0]
    src = source_file(task, config)
    n_tput, n_mem, chunk = sizes or SIZES[task]["quick" if quick else "full"]
    repeat = 2 if quick else 3
    files = workdir / "files"
    rows = []

    # 1. throughput
    tput_file = grow(src, files / f"tput_{n_tput}" / src.name, n_tput)
    args = (run_dir, tput_file, fmt, BATCH, 65536, repeat, workdir / "out_tput")
    r = run_child(throughput_in_child, *args) if isolate else throughput_in_child(*args)
    n = r["rows"]
    prof = r["profile_s"]
    total = sum(prof[k] for k in ("open_run", "generator", "write"))
    share = ", ".join(f"{k} {prof[k] / total:.0%}" for k in ("open_run", "task_other", "score", "write"))
    model_rows = ", ".join(f"{k} {v}" for k, v in r["model_rows"].items())
    cold_ratio = r["baseline_s"] / r["candidate_s"]
    rows.append(ratio_row(
        task, "scoring throughput, predict on files vs model.predict in memory", n / r["baseline_s"],
        n / r["run_open_s"], "events/s", target=0.9,
        notes=(f"{n} events, {fmt}, batch {BATCH}; the per-file step of predict_files (the run open, as for "
               f"every file of a command): read + checks + preprocess + score + write with provenance; "
               f"model.predict on the recorded inputs ({model_rows} rows); a whole command on this one file, "
               f"opening the run too ({prof['open_run']:.2f} s, the models loaded and hashed): ratio "
               f"{cold_ratio:.2f}; its parts: {share}"),
        candidate_s=r["run_open_s"], baseline_s=r["baseline_s"], command_s=r["candidate_s"],
        ratio_one_command=cold_ratio, profile_s=prof, model_rows=r["model_rows"]))

    # 2. memory, N against 10 N events: one process each, both at once (only their peaks are read)
    from concurrent.futures import ThreadPoolExecutor

    paths = {k: grow(src, files / f"mem_{k * n_mem}" / src.name, k * n_mem) for k in (1, 10)}
    with ThreadPoolExecutor(2) as pool:
        futures = {k: pool.submit(run_child, memory_in_child, run_dir, paths[k], fmt, chunk, workdir / f"out_mem_{k}",
                                  launcher=True) for k in (1, 10)}
        results = {k: f.result() for k, f in futures.items()}
    peaks, added = {}, {}
    for k, m in results.items():
        if m["rows"] != k * n_mem:
            raise RuntimeError(f"{task}: predict wrote {m['rows']} rows of a file of {k * n_mem} events")
        peaks[k] = float(m["peak_rss"]) / 2 ** 20
        added[k] = max(float(m["peak_rss"]) - float(m["base"]), 0.0) / 2 ** 20
        shutil.rmtree(workdir / f"out_mem_{k}", ignore_errors=True)
    rows.append(ratio_row(
        task, "peak memory of predict, input grown tenfold", peaks[1], peaks[10], "MB", target=1.2,
        higher_is_better=False,
        notes=(f"{n_mem} vs {10 * n_mem} events, chunk_size {chunk}, {fmt}; own process each; "
               f"added above the imports {added[1]:.0f} vs {added[10]:.0f} MB"),
        added_mb={"N": added[1], "10N": added[10]}, events={"N": n_mem, "10N": 10 * n_mem}, chunk_size=chunk))
    return rows


def run(quick: bool = False, workdir=None, tasks=None, sizes: dict | None = None, isolate: bool = True) -> list[Row]:
    """Measure the rows of the module docstring for ``tasks`` (default: every task that
    scores new files); ``quick`` uses smaller files, ``sizes`` (task -> ``(throughput events,
    N, chunk_size)``) other ones; ``isolate=False`` times the throughput in this process
    (a test's shortcut; the benchmark command isolates it)."""
    work = Path(workdir or tempfile.mkdtemp(prefix="kerahep-predict-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in tasks or available_tasks():
        rows.extend(task_rows(task, quick, work / task, (sizes or {}).get(task), isolate))
        shutil.rmtree(work / task / "files", ignore_errors=True)
        shutil.rmtree(work / task / "out_tput", ignore_errors=True)
    if workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return rows
