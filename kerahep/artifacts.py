"""Atomic artifact writing: every artifact is written to a temporary name in the same
folder and renamed into place, so a crash never leaves a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
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


#: the key beside ``KEY`` that says what the null written for a non-finite number was
#: (:func:`strict_json`): ``"rejection": null, "rejection_nonfinite": "inf"``
NONFINITE_SUFFIX = "_nonfinite"
#: what a non-finite number was, as :func:`strict_json` records it, and the number it stands for
NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _kind(value) -> str | None:
    """``"inf"``, ``"-inf"`` or ``"nan"`` for a non-finite float, else None."""
    if not isinstance(value, float) or math.isfinite(value):
        return None
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def _strict(value) -> tuple:
    """``(strict value, what was replaced)``: a kind for a replaced number, ``{"i/j": kind}``
    for the numbers replaced in a list (outside its objects, which record their own), or None."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and np.isfinite(value).all():
        return value.tolist(), None  # the common large case, without a Python loop per number
    value = _json_default(value) if isinstance(value, (np.generic, np.ndarray, Path)) else value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key], what = _strict(item)
            if what is not None:
                mark = f"{key}{NONFINITE_SUFFIX}"
                if mark in value:
                    raise ValueError(f"cannot write {key!r} as strict JSON: its non-finite numbers would be "
                                     f"recorded under {mark!r}, a key the object already has")
                out[mark] = what
        return out, None
    if isinstance(value, (list, tuple)):
        out, marks = [], {}
        for i, item in enumerate(value):
            clean, what = _strict(item)
            out.append(clean)
            if isinstance(what, str):
                marks[str(i)] = what
            elif what:
                marks.update({f"{i}/{where}": kind for where, kind in what.items()})
        return out, marks or None
    kind = _kind(value)
    return (None, kind) if kind else (value, None)


def strict_json(obj):
    """``obj`` as strict JSON values (RFC 8259: no ``Infinity`` or ``NaN``), for jq, JavaScript
    and pandas readers: the convention of every JSON file kerahep writes.

    A non-finite number (a working point's background rejection when no background event
    passes, an AUC without both classes) is written as ``null``, and the object holding it
    says what it was beside it, under its key plus :data:`NONFINITE_SUFFIX`: ``"inf"``,
    ``"-inf"`` or ``"nan"`` for a value, ``{"index": kind}`` (``"i/j"`` in nested lists) for
    the numbers of a list. A list at the top of a file has no object to say it in: its
    non-finite numbers are a bare ``null``. NumPy scalars and arrays become numbers and lists,
    paths strings. :func:`read_json` restores the numbers.

    Example:
        >>> strict_json({"rejection": float("inf"), "ci": [0.5, float("nan")]})
        {'rejection': None, 'rejection_nonfinite': 'inf', 'ci': [0.5, None], 'ci_nonfinite': {'1': 'nan'}}
    """
    return _strict(obj)[0]


def _restore_list(items: list, marks: dict) -> bool:
    """Put the numbers of ``marks`` (``{"i/j": kind}``) back in ``items``; False (nothing
    changed) when a mark is not one :func:`strict_json` writes for these items."""
    places = []
    for where, kind in marks.items():
        holder, index = items, None
        for part in str(where).split("/"):
            if index is not None:
                holder = holder[index] if isinstance(holder[index], list) else None
            index = int(part) if part.isdigit() else None
            if holder is None or index is None or index >= len(holder):
                return False
        if kind not in NONFINITE or holder[index] is not None:
            return False
        places.append((holder, index, NONFINITE[kind]))
    for holder, index, number in places:
        holder[index] = number
    return True


def restore_nonfinite(value):
    """The values :func:`strict_json` was given: the non-finite numbers it wrote as ``null``
    put back, their :data:`NONFINITE_SUFFIX` keys removed (other keys are left alone)."""
    if isinstance(value, list):
        return [restore_nonfinite(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: restore_nonfinite(v) for k, v in value.items()}
    for mark in [k for k in out if isinstance(k, str) and k.endswith(NONFINITE_SUFFIX)]:
        key, what = mark[:-len(NONFINITE_SUFFIX)], out[mark]
        if key not in out:
            continue
        if isinstance(what, str) and what in NONFINITE and out[key] is None:
            out[key] = NONFINITE[what]
        elif not (isinstance(what, dict) and isinstance(out[key], list) and _restore_list(out[key], what)):
            continue
        del out[mark]
    return out


def json_text(obj, indent: int | None = 2) -> str:
    """``obj`` as strict JSON text (:func:`strict_json`), ending with a line end."""
    return json.dumps(strict_json(obj), indent=indent, sort_keys=False, allow_nan=False,
                      default=_json_default) + "\n"


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path, obj, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON to ``path`` atomically: the one JSON writer of kerahep.

    NumPy scalars and arrays are allowed; non-finite numbers are written as ``null`` with
    what they were beside them (:func:`strict_json`), so the file holds no ``Infinity`` or
    ``NaN`` and any JSON reader takes it. ``indent=None`` writes it on one line (for files
    that hold long arrays).
    """
    return write_text(path, json_text(obj, indent))


def read_json(path):
    """A JSON file kerahep wrote, its non-finite numbers restored (:func:`restore_nonfinite`);
    files of earlier versions, with ``Infinity`` or ``NaN`` in them, are read as well."""
    with open(path, encoding="utf-8") as f:
        return restore_nonfinite(json.load(f))


def save_model(model, path) -> Path:
    """Save a Keras model to ``path`` (``.keras``) atomically."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
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
