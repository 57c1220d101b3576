"""Atomic artifact writing: every artifact is written to a temporary name in the same
folder and renamed into place, so a crash never leaves a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    The temporary file keeps the extension of ``path`` (Keras and matplotlib look at it).
    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield Path(tmp)
        if os.path.isdir(tmp):
            raise IsADirectoryError(tmp)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path, obj, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (NumPy scalars and arrays allowed).

    ``indent=None`` writes it on one line (for files that hold long arrays).
    """
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_model(model, path) -> Path:
    """Save a Keras model to ``path`` (``.keras``) atomically."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return Path(path)


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)


_NAME_OK = __import__("re").compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_name(name: str, what: str = "name") -> str:
    """Refuse names that could leave the output folder (``..``, slashes, empty)."""
    from .errors import ConfigError

    if not isinstance(name, str) or not _NAME_OK.match(name) or ".." in name:
        raise ConfigError(
            f"{what} must be letters, digits, '_', '-' or '.' (no path separators or '..'), got {name!r}"
        )
    return name


def write_table(rows, path, columns=None, index_label: str | None = None) -> Path:
    """Write a table as CSV with pandas, atomically: the one table writer of kerahep.

    Args:
        rows: a ``pandas.DataFrame``, a list of dicts (one per row), or a dict of dicts
            ``{row name: {column: value}}`` (the row names become the first column,
            ``index_label``, default ``name``).
        path: the ``.csv`` file.
        columns: the columns to write, in order (default: all, in order of appearance).
        index_label: name of the row-name column for a dict of dicts.

    Returns:
        The path written.
    """
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        df = rows
    elif isinstance(rows, dict):
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index.name = index_label or "name"
        df = df.reset_index()
    else:
        df = pd.DataFrame(list(rows))
    if columns is not None:
        df = df.reindex(columns=list(columns))
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    return Path(path)


def read_table(path):
    """Read a table written by :func:`write_table` (a ``pandas.DataFrame``)."""
    import pandas as pd

    return pd.read_csv(path)


def sha256(path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (model files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
