"""Checks of HIGGS lines and parsed chunks: :func:`check_line` (one line), :func:`diagnose`
(the first bad line of a range) and :func:`checked_array` (a parsed chunk).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import DataError
from ...schema import COLUMNS, N_COLUMNS, RAW_FEATURES
from .fileformat import FileFormat, open_text, stream_errors

FLOAT32_MAX = float(np.finfo(np.float32).max)


#: what a line holds, with and without the label column (files to score may lack it)
LABELLED_LINE = f"{N_COLUMNS} columns (label then 28 features)"
UNLABELLED_LINE = f"{N_COLUMNS - 1} columns (the 28 features, without the label)"


def diagnose(fmt: FileFormat, first_line: int, stop_line: int | None, labelled: bool = True):
    """Scan lines ``first_line`` (0-based) .. ``stop_line`` and raise DataError at the first bad one.

    ``labelled=False`` checks the 28 features of a file to score, without the label."""
    import itertools

    done = [first_line]
    with stream_errors(fmt, lambda: done[0]), open_text(fmt.path, fmt.gzip) as f:
        lines = itertools.islice(f, first_line, stop_line)
        for k, line in enumerate(lines):
            check_line(fmt, line, first_line + k + 1, labelled)
            done[0] = first_line + k + 1
    # nothing wrong found line by line: report the range
    raise DataError(f"{fmt.path}, lines {first_line + 1}-{stop_line or 'end'}",
                    "lines pandas can parse", "a malformed block (unbalanced quotes or binary data?)")


def check_line(fmt: FileFormat, line: str, lineno: int, labelled: bool = True) -> None:
    """Raise DataError naming the file and LINE (1-based) when ``line`` is not a HIGGS event."""
    where = f"{fmt.path}, line {lineno}"
    fields = fmt.split(line)
    names = COLUMNS if labelled else RAW_FEATURES
    if len(fields) != len(names):
        found = "an empty line" if not line.strip() else f"{len(fields)} columns"
        raise DataError(where, LABELLED_LINE if labelled else UNLABELLED_LINE, found)
    for j, text in enumerate(fields):
        try:
            v = float(text)
        except ValueError:
            raise DataError(where, f"a number in column {j + 1} ({names[j]})", repr(text)) from None
        if not math.isfinite(v):
            raise DataError(where, f"a finite number in column {j + 1} ({names[j]})", repr(text))
        if abs(v) > FLOAT32_MAX:
            raise DataError(where, f"a number within float32 range in column {j + 1} ({names[j]})", repr(text))
        if labelled and j == 0 and v not in (0.0, 1.0):
            raise DataError(where, "label 0 (background) or 1 (signal) in column 1", repr(text))


def checked_array(df, labelled: bool = True) -> np.ndarray | None:
    """The chunk (a DataFrame) as float32, label first when ``labelled``; None when it holds a
    non-number, NaN/inf or a bad label (the caller then finds the line with :func:`diagnose`)."""
    if not all(dt.kind in "fiu" for dt in df.dtypes):
        return None
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf, caught below
        arr = df.to_numpy(dtype=np.float32)
    return checked(arr, labelled)


def checked(arr: np.ndarray, labelled: bool = True) -> np.ndarray | None:
    """``arr`` (float32, label first when ``labelled``), or None when it holds NaN/inf or a label other than 0/1."""
    if not np.isfinite(arr).all():
        return None
    if labelled:
        lab = arr[:, 0]
        if not ((lab == 0) | (lab == 1)).all():
            return None
    return arr
