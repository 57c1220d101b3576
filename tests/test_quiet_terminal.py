"""The terminal of a normal command: TensorFlow's C++ start-up lines (the absl notice, the
oneDNN INFO line, the INT64 AVX-512 error line) and its tf.function retracing warnings are
kept off stderr; ``--verbose`` shows them; everything else still reaches stderr."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kerahep import cli

REPO = Path(__file__).resolve().parents[1]

ABSL = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = (b"I0000 00:00:1796194392.513295   27273 port.cc:153] oneDNN custom operations are on. You may see "
          b"slightly different numerical results due to floating-point round-off errors from different "
          b"computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n")
INT64 = (b"E0000 00:00:1796194549.780303   30126 util.cc:131] oneDNN supports DT_INT64 only on platforms "
         b"with AVX-512. Falling back to the default Eigen-based implementation if present.\n")
GENUINE = b"E0000 00:00:1796194549.780303   30126 session.cc:42] a genuine C++ error\n"
MARKERS = ("absl::InitializeLog", "oneDNN custom operations", "AVX-512", "triggered tf.function retracing")


def _noisy_command(verbose: bool):
    def main(argv):
        p = argparse.ArgumentParser()
        cli.add_verbose_argument(p)
        p.parse_args(argv)
        for line in (ABSL, ONEDNN, b"a real message\n", INT64, GENUINE):
            os.write(2, line)
        os.write(2, b"\r 50%|progress")  # a progress bar's partial line goes out as it is
        os.write(2, b" done\n")
        return 0

    return main, ["--verbose"] if verbose else []


def test_run_keeps_tensorflow_startup_lines_off_stderr_and_the_rest_on_it(capfd):
    main, argv = _noisy_command(verbose=False)
    assert cli.run(main, argv) == 0
    os.write(2, b"after\n")  # file descriptor 2 is the real stderr again
    err = capfd.readouterr().err
    assert err == "a real message\n" + GENUINE.decode() + "\r 50%|progress done\nafter\n"


def test_verbose_shows_tensorflow_startup_lines(capfd):
    main, argv = _noisy_command(verbose=True)
    assert cli.run(main, argv) == 0
    err = capfd.readouterr().err
    for line in (ABSL, ONEDNN, INT64, GENUINE, b"a real message\n"):
        assert line.decode() in err


def test_stderr_is_restored_when_the_command_raises(capfd):
    def main(argv):
        os.write(2, ONEDNN + b"before the crash\n")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cli.run(main, [])
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before the crash\nafter\n"


def test_a_child_process_that_keeps_stderr_does_not_hold_the_command(capfd):
    children = []

    def main(argv):  # e.g. a helper process that outlives the command and inherited its stderr
        children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        os.write(2, b"the command's last line\n")
        return 0

    t0 = time.monotonic()
    try:
        assert cli.run(main, []) == 0
        assert time.monotonic() - t0 < 5
    finally:
        children[0].kill()
        children[0].wait()
    assert capfd.readouterr().err == "the command's last line\n"


@pytest.fixture
def restored_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("tensorflow").removeFilter(cli._DROP_RETRACING)


class _Keep(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _retrace(tf_logger) -> list:
    """Call one tf.function on six input shapes: TensorFlow's own retracing warning."""
    import tensorflow as tf

    keep = _Keep()
    tf_logger.addHandler(keep)
    try:  # new code each call (TensorFlow warns at most twice per function's code)
        f = tf.function(eval(f"lambda x: x * {id(keep)}.0"))
        for n in range(1, 7):
            f(tf.zeros((n, n)))
        tf_logger.warning("another tensorflow warning")
    finally:
        tf_logger.removeHandler(keep)
    return keep.messages


@pytest.mark.parametrize("verbose", [False, True])
def test_tf_function_retracing_warnings_dropped_unless_verbose(restored_logging, verbose):
    p = argparse.ArgumentParser()
    cli.add_verbose_argument(p)
    assert p.parse_args(["--verbose"] if verbose else []).verbose is verbose
    cli.setup_logging()
    messages = _retrace(logging.getLogger("tensorflow"))
    assert "another tensorflow warning" in messages
    assert any("triggered tf.function retracing" in m for m in messages) is verbose


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it (tests/conftest.py sets 3)
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_evaluate_prints_no_tensorflow_startup_lines(smoke_run, tmp_path):
    run = tmp_path / "run"  # the shared smoke run stays read-only: evaluate a copy
    shutil.copytree(smoke_run("dy_electron").run_dir, run)
    out = _cli("scripts.evaluate", "--run", str(run), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "roc_auc" in out.stdout
    assert not [m for m in MARKERS if m in out.stderr], out.stderr


def test_verbose_evaluate_shows_what_tensorflow_prints_on_import(smoke_run, tmp_path):
    """--verbose: the lines TensorFlow prints on import on this machine come through (here
    before the one error line of a mistake found after TensorFlow's import)."""
    run = tmp_path / "run"
    shutil.copytree(smoke_run("dy_electron").run_dir, run)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")  # the level kerahep sets (its import does)
    # what a plain import prints here, found side by side with the command (two cores, half the time)
    raw = subprocess.Popen([sys.executable, "-c", "import tensorflow"], env=env, stderr=subprocess.PIPE, text=True)
    out = _cli("scripts.evaluate", "--verbose", "--run", str(run), "--data", "missing.csv", cwd=tmp_path)
    printed = {line.split("] ", 1)[-1] for line in raw.communicate(timeout=300)[1].splitlines()
               if cli.is_startup_noise(line)}
    assert out.returncode == 2 and "missing.csv" in out.stderr and "Traceback" not in out.stderr
    shown = [line for line in out.stderr.splitlines() if cli.is_startup_noise(line)]
    assert all(any(p in line for line in shown) for p in printed), (printed, out.stderr)
