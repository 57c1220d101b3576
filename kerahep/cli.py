"""Helpers shared by the command lines in ``scripts/``: backend selection before Keras
is imported, logging, the error wrapper and the rich summary tables."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import threading

BACKENDS = ("tensorflow", "jax", "torch")


def select_backend(name: str | None) -> None:
    """Set ``KERAS_BACKEND`` (must run before Keras is imported)."""
    if name:
        if name not in BACKENDS:
            raise SystemExit(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
        if "keras" in sys.modules:  # the backend is fixed once Keras is imported (env or keras.json)
            active = sys.modules["keras"].backend.backend()
            if active != name:
                raise SystemExit(f"--backend {name}: Keras is already imported with the {active} backend; "
                                 "choose the backend before Keras is imported")
        os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def add_run_arguments(p, verb: str) -> None:
    """The arguments every command that opens a trained run shares: ``--run`` or
    ``--task`` (one of them), ``--output-dir``, ``--unsafe-load`` and ``--max-model-size``.
    ``verb`` completes the ``--task`` help: "evaluate" gives "evaluate the task's LATEST run"."""
    from .saving import parse_size

    g = p.add_mutually_exclusive_group()
    g.add_argument("--run", metavar="DIR", help="run directory (results/<task>/<run_id>)")
    g.add_argument("--task", help=f"{verb} the task's LATEST run")
    p.add_argument("--output-dir", default="results",
                   help="results folder to search (default: results/ in the current folder)")
    p.add_argument("--unsafe-load", action="store_true",
                   help="allow models that carry arbitrary code (Lambda layers); only for files you trust")
    p.add_argument("--max-model-size", type=parse_size, metavar="SIZE",
                   help="largest model file loaded: bytes of weights, e.g. 2GB or 2GiB, or 'none' (the configuration "
                        "may be 1/16 and the assets 1/4 of it, at least 64 MiB and 256 MiB; default 1GiB or "
                        "$KERAHEP_MAX_MODEL_SIZE); raise it only for files you trust")


#: set by ``--verbose`` (:func:`add_verbose_argument`) for the current command
_verbose = False

#: lines TensorFlow's C++ start-up writes to stderr on import whatever TF_CPP_MIN_LOG_LEVEL says
#: (absl logs them before ``absl::InitializeLog``): the absl notice, INFO lines
#: (``I0000 00:00:... port.cc:153] oneDNN custom operations are on...``), the CPU feature notes
#: and the INT64 AVX-512 line some CPUs get
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|^I\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\]"
    r"|^[WE]\d{4} .*(AVX-?512|oneDNN|cpu_feature_guard|TF_ENABLE_ONEDNN_OPTS)"
    r"|^To enable the following instructions:.*rebuild TensorFlow"
    r"|INT64 AVX-?512")
#: TensorFlow's retracing warnings ("5 out of the last 5 calls to <function ...> triggered tf.function retracing")
_RETRACING = re.compile(r"triggered tf\.function retracing")


def add_verbose_argument(p) -> None:
    """Add ``--verbose``: show TensorFlow's start-up lines and retracing warnings, which a
    command otherwise keeps off the terminal (:func:`setup_logging`)."""
    global _verbose
    _verbose = False  # a new parser: a new command (in-process callers run several)
    p.add_argument("--verbose", action=_VerboseAction, nargs=0, default=False,
                   help="show TensorFlow's start-up messages and tf.function retracing warnings")


class _VerboseAction(argparse.Action):
    """``--verbose``: True in the namespace, and for :func:`setup_logging` and :func:`run`."""

    def __call__(self, parser, namespace, values, option_string=None):
        global _verbose
        _verbose = True
        setattr(namespace, self.dest, True)


def is_startup_noise(line: str) -> bool:
    """Whether ``line`` of stderr is one of TensorFlow's C++ start-up messages."""
    return bool(_STARTUP_NOISE.search(line))


#: how the lines :func:`is_startup_noise` drops begin: a partial line that may become one is held
_NOISE_STARTS = (b"WARNING: All log", b"I0", b"W0", b"E0", b"To enable")


class _StderrFilter:
    """Points file descriptor 2 at a pipe; a thread writes what arrives to the real stderr,
    TensorFlow's C++ start-up lines left out unless ``--verbose`` was given. For the command
    lines only (:func:`run`), never on import of the library: TensorFlow writes those lines
    from C++ whatever TF_CPP_MIN_LOG_LEVEL says, on import and at its first oneDNN kernels."""

    #: written by :meth:`close` after fd 2 is restored: everything before it came from the command
    _END = b"\0kerahep-stderr-filter-end\0"

    def __init__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._read, self._write_end = os.pipe()
        os.dup2(self._write_end, 2)
        self._thread = threading.Thread(target=self._pump, name="kerahep-stderr", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        held = b""
        while True:
            chunk = os.read(self._read, 65536)
            data = held + chunk
            if not chunk or self._END in data:
                self._write(self._forward(data.split(self._END, 1)[0]))
                break
            held = self._forward(data)
        os.close(self._read)  # a child process still writing to the pipe gets EPIPE from here on

    def _forward(self, data: bytes) -> bytes:
        """Write the whole lines of ``data`` that are not noise; return the partial line
        held back (one that may still become a noise line or the end mark), b"" otherwise."""
        *lines, rest = data.split(b"\n")
        out = b"".join(line + b"\n" for line in lines
                       if _verbose or not is_startup_noise(line.decode(errors="replace")))
        if rest and not any(rest.startswith(p) or p.startswith(rest) for p in (*_NOISE_STARTS, self._END)):
            out, rest = out + rest, b""  # a progress bar's \r update goes out at once
        self._write(out)
        return rest

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self._saved, data):]
        except OSError:  # the real stderr is gone (closed by the caller): keep draining the pipe
            pass

    def close(self) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.write(self._write_end, self._END)  # after all the command wrote (one pipe, in order)
        os.close(self._write_end)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            os.close(self._saved)


class _DropRetracing(logging.Filter):
    """Drops TensorFlow's ``tf.function`` retracing warnings."""

    def filter(self, record) -> bool:
        return not _RETRACING.search(record.getMessage())


_DROP_RETRACING = _DropRetracing()


def setup_logging(verbose: bool = True) -> None:
    """Log kerahep's messages (INFO, or WARNING when not ``verbose``) through rich; unless
    ``--verbose`` was given, TensorFlow's tf.function retracing warnings are dropped."""
    try:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, show_time=False)
    except ImportError:  # pragma: no cover
        handler = logging.StreamHandler()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[handler], force=True)
    logging.getLogger("kerahep").setLevel(logging.INFO if verbose else logging.WARNING)
    tf_logger = logging.getLogger("tensorflow")
    if _verbose:
        tf_logger.removeFilter(_DROP_RETRACING)
    else:
        tf_logger.addFilter(_DROP_RETRACING)  # once: a logger holds a filter object once


def run(main, argv=None) -> int:
    """Call ``main(argv)``; print a user mistake as one line and exit 2.

    User mistakes are :class:`~kerahep.errors.KerahepError` and the OSErrors about a
    user's path that no reader turned into one (a permission denied, a directory where a
    file belongs, a full disk: :func:`kerahep.errors.is_user_os_error`), printed as
    :func:`kerahep.errors.os_error` names them. TensorFlow's C++ start-up lines are kept
    off stderr meanwhile, unless ``--verbose`` is given (:class:`_StderrFilter`).
    """
    global _verbose
    _verbose = False  # until this command's --verbose says otherwise
    try:
        stderr_filter = _StderrFilter()
    except OSError:  # no file descriptor 2 to filter
        stderr_filter = None
    try:
        return _run(main, argv)
    finally:
        if stderr_filter is not None:
            stderr_filter.close()


def _run(main, argv) -> int:
    from .errors import KerahepError, is_user_os_error, os_error

    try:
        return main(argv) or 0
    except KerahepError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not is_user_os_error(exc):
            raise
        print(f"error: {one_line(os_error(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def one_line(exc) -> str:
    """The message of ``exc`` on one line (line breaks of a multi-line message become ``; ``)."""
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, float) for x in v):
        return f"[{v[0]:.4f}, {v[1]:.4f}]"
    return str(v)


def print_metrics(title: str, metrics: dict, keys=None) -> None:
    """Print the scalar test metrics (and intervals) as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        if keys and k not in keys:
            continue
        if isinstance(v, (int, float, str)) or (isinstance(v, list) and len(v) == 2
                                                and all(isinstance(x, (int, float)) for x in v)):
            table.add_row(k, _fmt(v))
    Console(stderr=False).print(table)
