"""Shared fixtures: the real-data folder (skip without it, fail with
KERAHEP_REQUIRE_REALDATA=1), the optional Keras backends (skip without them, fail with
KERAHEP_REQUIRE_BACKENDS=1), quiet Keras, a temporary results/data folder, and smoke runs trained once per test
session and shared (``smoke_run``)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
# JAX runs (in subprocesses and in-process) compile hundreds of small functions and run each
# a few times: XLA's CPU optimisation passes cost more than they save there. A test-speed
# setting only (about a third of the JAX compile time); results agree to float32 round-off.
_FAST_XLA = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_XLA}".strip()

# ... and they compile the same functions again in every process (training, then evaluation
# of the same run; the kill, then the resume): JAX's persistent compilation cache, one folder
# for the test session shared by its pytest-xdist workers, removed at the end, keeps each
# compiled function for the next process (every function, however small or quick).
# The process that starts the session makes the folder; its workers inherit the variable.
_OWN_JAX_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_JAX_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="kerahep-tests-jax-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # scripts/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(REPO))
REALDATA = Path(os.environ.get("KERAHEP_REALDATA", REPO.parent / "shared" / "realdata"))


def realdata_path(*parts) -> Path:
    """Path of a file under ../shared/realdata; skip (or fail when required) if absent."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        msg = f"real data file {path} is absent (../shared/realdata is beside the checkout in CI)"
        if os.environ.get("KERAHEP_REQUIRE_REALDATA") == "1":
            pytest.fail(msg + " and KERAHEP_REQUIRE_REALDATA=1")
        pytest.skip(msg)
    return path


@pytest.fixture
def realdata():
    return realdata_path


#: the extra that installs an optional module (the module's own name where they agree)
EXTRAS = {"hls4ml": "export", "onnx": "export", "onnxruntime": "export", "tf2onnx": "export",
          "distributed": "dask", "dask_awkward": "dask"}


def require_backend(*modules: str, allow_module_level: bool = False) -> None:
    """Skip (or fail when ``KERAHEP_REQUIRE_BACKENDS=1``, as in CI) unless the optional
    modules (``jax``, ``torch``, ``distributed``, ``dask_awkward``, the export converters)
    are installed: the one rule for every optional dependency."""
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            msg = f"{module} is not installed (pip install -e '.[{EXTRAS.get(module, module)}]')"
            if os.environ.get("KERAHEP_REQUIRE_BACKENDS") == "1":
                pytest.fail(msg + " and KERAHEP_REQUIRE_BACKENDS=1", pytrace=False)
            pytest.skip(msg, allow_module_level=allow_module_level)


@pytest.fixture
def backends():
    """``backends("jax", "torch")`` skips the test unless both are installed (see :func:`require_backend`)."""
    return require_backend


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary current directory with results/ and data/ inside."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def workroot(tmp_path_factory):
    """One folder per test module (the task-run modules: each twin is written once per module)."""
    return tmp_path_factory.mktemp("task_runs")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, worker_id):
    """``smoke_run(task, *overrides)``: the run directory of ``task``'s smoke preset with
    ``overrides``, trained once per test session and shared by every test that asks for
    the same task and overrides, in every pytest-xdist worker: the first worker that needs
    it trains it under a file lock in the session's shared temporary folder, the others
    wait for that lock and read the finished run.

    A smoke run takes half a minute to two minutes; the export, predict and report tests
    of a task read the same run instead of training their own. Tests must treat it as
    read-only: write exports, predictions and evaluations to their own ``tmp_path``.

    Returns:
        a function ``(task, *overrides) -> SmokeRun`` with ``run_dir`` (absolute),
        ``root`` (its folder, ``data/`` holds the twin it was trained on) and ``config``.
    """
    import hashlib
    import json

    from filelock import FileLock

    from kerahep.config import Config
    from kerahep.registry import get_task
    from kerahep.training import train

    # one folder for the whole session: the workers' basetemp's parent under xdist
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    cache: dict = {}

    def get(task: str, *overrides: str) -> SmokeRun:
        key = (task, overrides)
        if key not in cache:
            digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]
            root = shared / f"smoke-{task}-{digest}"
            with FileLock(str(root) + ".lock"):
                done = root / "RUN"
                if not done.exists():
                    root.mkdir(parents=True, exist_ok=True)
                    cfg = get_task(task).preset("smoke").override(
                        ["run.verbose=0", f"run.output_dir='{root / 'results'}'", f"data.data_dir='{root / 'data'}'",
                         *overrides])
                    result = train(cfg)
                    done.write_text(str(Path(result.run_dir).resolve()))
            run_dir = Path(done.read_text())
            cache[key] = SmokeRun(run_dir=run_dir, root=root, config=Config.from_file(run_dir / "config.json"))
        return cache[key]

    return get


class SmokeRun:
    """A shared smoke run (see the ``smoke_run`` fixture)."""

    def __init__(self, run_dir: Path, root: Path, config):
        self.run_dir, self.root, self.config = run_dir, root, config

    def __fspath__(self) -> str:
        return str(self.run_dir)


#: the test files that take minutes (from the ``--durations`` of CI logs), longest first. The
#: suite runs on one pytest-xdist worker per core with whole files per worker (``--dist
#: loadfile``); starting these first keeps one of them from running alone at the end while
#: the other workers sit idle (longest-first scheduling). The other files follow, most tests
#: first (pytest-xdist's own order, turned off in setup.cfg so that this one holds).
LONG_FILES = ("test_task_runs_jax.py", "test_task_runs_torch.py", "test_export.py", "test_backends.py",
              "test_readme_api.py", "test_jet_ssl_task.py", "test_hcal_task.py", "test_electron_photon_task.py",
              "test_cli.py", "test_higgs_task.py")


def pytest_collection_modifyitems(config, items):
    """Order the collected tests by file: :data:`LONG_FILES` first, then the files with most tests
    (each file's tests keep their order)."""
    files: dict = {}
    for item in items:
        files.setdefault(item.path.name, []).append(item)
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    order = sorted(files, key=lambda name: (rank.get(name, len(rank)), -len(files[name]) if name not in rank else 0))
    items[:] = [item for name in order for item in files[name]]


def pytest_unconfigure(config):
    """In the process that made the JAX cache folder (not a pytest-xdist worker): remove it."""
    if _OWN_JAX_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(_OWN_JAX_CACHE, ignore_errors=True)


#: hostile-input case counts sent back by pytest-xdist workers (merged in the controller)
_WORKER_CASES: dict = {}


def pytest_sessionfinish(session):
    """In a pytest-xdist worker: send this worker's fuzzing counts to the controller."""
    fuzz = sys.modules.get("fuzzing")
    if fuzz is not None and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["fuzz_cases"] = dict(fuzz.CASES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """In the pytest-xdist controller: add up the counts each worker sent."""
    for reader, n in (getattr(node, "workeroutput", {}) or {}).get("fuzz_cases", {}).items():
        _WORKER_CASES[reader] = _WORKER_CASES.get(reader, 0) + n


def pytest_terminal_summary(terminalreporter):
    """Report how many hostile-input cases each reader survived (all workers together)."""
    fuzz = sys.modules.get("fuzzing")
    cases = dict(_WORKER_CASES)
    for reader, n in (fuzz.CASES.items() if fuzz is not None else ()):
        cases[reader] = cases.get(reader, 0) + n
    if cases:
        total = sum(cases.values())
        per = ", ".join(f"{k} {v}" for k, v in sorted(cases.items()))
        terminalreporter.write_line(f"fuzzing: {total} hostile-input cases run ({per})")
