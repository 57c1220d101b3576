"""User mistakes, made on purpose: small inputs of each reader, files made unreadable (for real,
or simulated where the tests run as root, whom ``chmod 000`` does not stop), damaged run
directories, and the command line run in-process with its exit status and stderr.

Shared by ``test_user_mistakes.py`` (one test per mistake) and ``test_cli_fuzz.py``
(random combinations of them).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import toytask  # noqa: E402

#: the secret a LATEST link points to: it must never be printed
SECRET = "TOP-SECRET-do-not-print-4711"


# ------------------------------------------------------------------ the command line
def cli(*argv) -> tuple[int, str, str]:
    """``kerahep ARGV`` in-process: ``(exit status, stdout, stderr)``.

    An exception that escapes :func:`kerahep.commands.main` is what a user would see as a
    traceback: it is written to the returned stderr as one (and the status is 1).
    """
    import traceback

    from kerahep.commands import main

    toytask.register()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 2
        except Exception:  # noqa: BLE001 - reported as the traceback a user would see
            traceback.print_exc()
            rc = 1
    return rc, out.getvalue(), err.getvalue()


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error: ")]


def assert_one_line_error(rc: int, stderr: str, *names) -> str:
    """Exit 2, no traceback, exactly one ``error:`` line, naming each of ``names``; returns it."""
    assert "Traceback" not in stderr, stderr[-3000:]
    assert rc == 2, (rc, stderr[-3000:])
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr[-3000:]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


# ------------------------------------------------------------------ unreadable files
def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def unreadable(*paths):
    """Make ``paths`` unreadable while inside.

    ``chmod 000`` does that for an ordinary user. Root reads such files anyway, so there
    the opening functions kerahep's readers use (``open``/``io.open``, ``os.access``,
    ``h5py.File``, ``h5py.is_hdf5``) raise the PermissionError the system would raise.
    """
    import h5py

    real = {os.path.realpath(p) for p in paths}
    modes = {p: stat.S_IMODE(os.stat(p).st_mode) for p in paths}
    for p in paths:
        os.chmod(p, 0)
    denied = lambda f: isinstance(f, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(f)) in real

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

    saved = (builtins.open, io.open, os.access, h5py.File, h5py.is_hdf5)
    if is_root():
        o_open, o_access, o_file, o_is = builtins.open, os.access, h5py.File, h5py.is_hdf5

        def fake_open(file, *a, **k):
            return refuse(file) if denied(file) else o_open(file, *a, **k)

        def fake_access(path, mode, *a, **k):
            return False if denied(path) and mode & os.R_OK else o_access(path, mode, *a, **k)

        def fake_file(name, *a, **k):
            return refuse(name) if denied(name) else o_file(name, *a, **k)

        def fake_is(name):
            return refuse(name) if denied(name) else o_is(name)

        builtins.open = io.open = fake_open
        os.access, h5py.File, h5py.is_hdf5 = fake_access, fake_file, fake_is
    try:
        yield
    finally:
        builtins.open, io.open, os.access, h5py.File, h5py.is_hdf5 = saved
        for p, mode in modes.items():
            os.chmod(p, mode)


@contextlib.contextmanager
def unwritable(folder):
    """Make ``folder`` one kerahep may not write into (``chmod 555``; as root, ``os.access``
    says so, which is what kerahep checks before it writes)."""
    folder = Path(folder)
    mode = stat.S_IMODE(folder.stat().st_mode)
    os.chmod(folder, 0o555)
    saved = os.access
    if is_root():
        real = os.path.realpath(folder)

        def fake_access(path, m, *a, **k):
            return False if os.path.realpath(path) == real and m & os.W_OK else saved(path, m, *a, **k)

        os.access = fake_access
    try:
        yield
    finally:
        os.access = saved
        os.chmod(folder, mode)


# ------------------------------------------------------------------ small valid inputs
def make_prepared_csv(path: Path) -> Path:
    import pandas as pd

    rng = np.random.default_rng(0)
    pd.DataFrame({"Electron_pt_0": rng.random(30) * 50, "target": rng.integers(0, 2, 30),
                  "sample": "DYJetsToLL_M-50"}).to_csv(path, index=False)
    return path


def make_calo_pair(folder: Path) -> list:
    from kerahep.data.synthetic.electron_photon import generate

    generate(folder, n_per_class=24, seed=0)
    return sorted(folder.glob("*.hdf5"))


def make_higgs(path: Path, rows: int = 300) -> Path:
    from kerahep.data.higgs import write_higgs

    rng = np.random.default_rng(0)
    return write_higgs(path, rng.integers(0, 2, rows).astype(float), np.abs(rng.normal(1.0, 0.5, (rows, 28))))


def make_truncated_gz(path: Path, rows: int = 3000) -> Path:
    full = make_higgs(path.with_name("full_" + path.name), rows)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    full.unlink()
    return path


# ------------------------------------------------------------------ damaged run directories
#: config.json damage: what the file becomes (bytes), or "dir" for a directory in its place
CONFIG_DAMAGE = {
    "empty": b"",
    "malformed": b'{"task": "toy", "data": {',
    "section_not_object": b'{"task": "toy", "data": [1, 2], "training": {}}',
    "section_a_number": b'{"task": "toy", "training": 3}',
    "not_an_object": b"[1, 2, 3]",
    "task_not_a_name": b'{"task": ["toy"]}',
    "not_utf8": b'\xff\xfe{"task": "toy"}',
    "dir": None,
}

#: LATEST damage (the link points to a file holding SECRET)
LATEST_DAMAGE = ("dir", "not_utf8", "link", "dangling_link", "not_a_name", "huge")

#: metrics.json damage of one sibling electron_photon run
METRICS_DAMAGE = {
    "empty": b"",
    "truncated": b'{"task": "electron_photon", "status": "compl',
    "not_an_object": b"[]",
    "not_utf8": b"\xff\xfe\x00",
    "test_not_object": json.dumps({"task": "electron_photon", "status": "complete", "test": "0.9",
                                   "data": {"source": "synthetic", "paths": ["x"]}}).encode(),
    "ci_not_a_pair": json.dumps({"task": "electron_photon", "status": "complete",
                                 "test": {"roc_auc": 0.8, "roc_auc_ci": 7, "n": 3},
                                 "data": {"source": "synthetic", "paths": ["x"]}}).encode(),
    "n_not_a_number": json.dumps({"task": "electron_photon", "status": "complete",
                                  "test": {"roc_auc": 0.8, "n": "many"},
                                  "data": {"source": "synthetic", "paths": ["x"]}}).encode(),
    "paths_not_a_list": json.dumps({"task": "electron_photon", "status": "complete", "test": {"roc_auc": 0.8},
                                    "data": {"source": "synthetic", "paths": 5}}).encode(),
}


def damage_config(run_dir: Path, kind: str) -> Path:
    path = Path(run_dir) / "config.json"
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    if CONFIG_DAMAGE[kind] is None:
        path.mkdir()
    else:
        path.write_bytes(CONFIG_DAMAGE[kind])
    return path


def damage_latest(task_root: Path, kind: str) -> Path:
    latest = Path(task_root) / "LATEST"
    if latest.is_dir() and not latest.is_symlink():
        shutil.rmtree(latest)
    else:
        latest.unlink(missing_ok=True)
    secret = Path(task_root).parent.parent / "secret.txt"
    if kind == "dir":
        latest.mkdir()
    elif kind == "not_utf8":
        latest.write_bytes(b"\xff\xfe\xfa")
    elif kind == "link":
        secret.write_text(SECRET + "\n")
        latest.symlink_to(secret.resolve())
    elif kind == "dangling_link":
        latest.symlink_to(Path(task_root) / "nowhere")
    elif kind == "not_a_name":
        latest.write_text(f"../../{SECRET}\n")
    elif kind == "huge":
        latest.write_text(SECRET * 100)
    return latest


def cut_history(run_dir: Path, keep_bytes: int = 9) -> Path:
    """Append the first ``keep_bytes`` of a repeated last row: a row cut by a kill mid-write."""
    path = Path(run_dir) / "history.csv"
    text = path.read_text()
    last = text.rstrip("\n").splitlines()[-1]
    path.write_text(text + last[:keep_bytes])
    return path


def electron_photon_runs(root: Path) -> Path:
    """Two complete electron_photon run folders (a and b, of two variants) under ``root``, as
    :func:`kerahep.tasks.electron_photon.compare_runs` reads them; returns the task folder."""
    task_root = Path(root) / "electron_photon"
    for name, variant, auc in (("a", "two_channel", 0.7), ("b", "dual_stream", 0.8)):
        d = task_root / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"task": "electron_photon", "model": {"variant": variant},
                                                   "training": {"epochs": 2}}))
        (d / "metrics.json").write_text(json.dumps({
            "task": "electron_photon", "status": "complete", "model": f"resnet15/{variant}",
            "data": {"source": "synthetic", "paths": ["x"]},
            "test": {"roc_auc": auc, "roc_auc_ci": [auc - 0.1, auc + 0.1], "accuracy": 0.6, "n": 18}}))
    return task_root


_TOY_RUNS: dict = {}


def toy_runs(tmp_path_factory) -> Path:
    """A ``results`` folder with a complete toy run ``done`` (named by LATEST) and an unfinished
    copy ``killed`` (metrics say failed; resumed, it trains one epoch), trained once per test
    process (in pytest's ``tmp_path_factory``) and shared by the modules that copy it (never
    to be changed in place)."""
    if "root" not in _TOY_RUNS:
        root = tmp_path_factory.mktemp("toy-runs") / "results"
        done = toy_run(root, "done")
        killed = Path(shutil.copytree(done, done.parent / "killed"))
        (killed / "metrics.json").write_text(json.dumps({"task": "toy", "status": "failed", "reason": "killed"}))
        cfg = json.loads((killed / "config.json").read_text())
        cfg["training"]["epochs"] = 1
        (killed / "config.json").write_text(json.dumps(cfg))
        _TOY_RUNS["root"] = root
    return _TOY_RUNS["root"]


def toy_run(output_dir: Path, run_id: str, *overrides) -> Path:
    """Train a tiny toy run (two epochs on 200 events) and return its directory."""
    from kerahep.training import train

    task = toytask.register()
    cfg = task.preset().override([f"run.output_dir={str(output_dir)!r}", f"run.run_id={run_id!r}", "data.n=200",
                                  "run.verbose=0", *overrides])
    return Path(train(cfg).run_dir)


def listing(root: Path) -> set:
    """Every path under ``root`` (links not followed), relative."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


# ------------------------------------------------------------ run folders (confinement tests)
def copy_smoke_run(smoke_run, tmp_path: Path, data_dir=None) -> Path:
    """A copy of the shared dy_electron smoke run under ``tmp_path/results``, with ``data.data_dir`` set."""
    src = smoke_run("dy_electron").run_dir
    run = Path(shutil.copytree(src, tmp_path / "results" / "dy_electron" / src.name, symlinks=True))
    if data_dir is not None:
        cfg = json.loads((run / "config.json").read_text())
        cfg["data"]["data_dir"] = str(data_dir)
        (run / "config.json").write_text(json.dumps(cfg))
    return run


def set_fingerprint(run: Path, value) -> None:
    """Replace (None: delete) the data fingerprint in ``run``'s metrics.json."""
    m = json.loads((run / "metrics.json").read_text())
    if value is None:
        del m["data"]["fingerprint"]
    else:
        m["data"]["fingerprint"] = value
    (run / "metrics.json").write_text(json.dumps(m))


def mtime_listing(root: Path) -> dict:
    """Every path under ``root`` with its modification time (ns): what changed, not only what is there."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}
