"""Helpers shared by the command lines in ``scripts/``: backend selection before Keras
is imported, logging, the error wrapper and the rich summary tables."""

from __future__ import annotations

import logging
import os
import sys

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


def setup_logging(verbose: bool = True) -> None:
    try:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, show_time=False)
    except ImportError:  # pragma: no cover
        handler = logging.StreamHandler()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[handler], force=True)
    logging.getLogger("kerahep").setLevel(logging.INFO if verbose else logging.WARNING)


def run(main, argv=None) -> int:
    """Call ``main(argv)``; print a user mistake as one line and exit 2.

    User mistakes are :class:`~kerahep.errors.KerahepError` and the OSErrors about a
    user's path that no reader turned into one (a permission denied, a directory where a
    file belongs, a full disk: :func:`kerahep.errors.is_user_os_error`), printed as
    :func:`kerahep.errors.os_error` names them.
    """
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
