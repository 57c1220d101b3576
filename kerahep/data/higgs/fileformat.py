"""How a HIGGS file is stored (:func:`sniff`: separator, gzip, the first line's 29 columns),
its line count and the resolution of row ranges against it.
"""

from __future__ import annotations

import contextlib
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError, is_user_os_error, os_error, user_os_errors
from ...schema import N_COLUMNS
from ..h5 import CODEC_ERRORS


@dataclass(frozen=True)
class FileFormat:
    """How a HIGGS file is stored: ``sep`` (``","``, ``"\\t"`` or whitespace) and gzip."""

    path: Path
    sep: str
    gzip: bool

    @property
    def pandas_sep(self) -> str:
        return r"\s+" if self.sep == " " else self.sep

    def split(self, line: str) -> list:
        return line.split() if self.sep == " " else line.rstrip("\r\n").split(self.sep)


def gzip_open(path, mode: str = "rb", **kwargs):
    """``gzip.open``, inflated by zlib-ng (about twice as fast) when it is installed: the same
    files and the same errors (its own zlib error type among :data:`kerahep.data.h5.CODEC_ERRORS`)."""
    try:
        from zlib_ng import gzip_ng
    except ImportError:  # pragma: no cover - zlib-ng is a dependency; the standard library otherwise
        return gzip.open(path, mode, **kwargs)
    return gzip_ng.open(path, mode, **kwargs)


def open_text(path: Path, is_gzip: bool):
    """``path`` opened as UTF-8 text (undecodable bytes replaced), through gzip when ``is_gzip``."""
    return gzip_open(path, "rt", encoding="utf-8", errors="replace", newline="") if is_gzip \
        else open(path, encoding="utf-8", errors="replace", newline="")


def sniff(path) -> FileFormat:
    """Check that ``path`` exists and looks like a HIGGS table; return its format.

    Raises:
        DataError: missing or empty file, unreadable gzip, or a first line without 29 columns.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "a HIGGS table (HIGGS.csv or HIGGS.csv.gz: label then 28 features per line; "
                        "the real one from https://archive.ics.uci.edu/dataset/280/higgs)", "no such file")
    if path.is_dir():
        raise DataError(path, "a HIGGS table file", "a directory")
    with user_os_errors("a readable HIGGS table (a file kerahep may read)", path), open(path, "rb") as f:
        magic = f.read(2)
    is_gzip = magic == b"\x1f\x8b"
    try:
        with open_text(path, is_gzip) as f:
            first = f.readline()
    except (OSError, EOFError) as exc:
        raise DataError(path, "a readable (gzip) HIGGS table", f"{type(exc).__name__}: {exc}") from None
    if not first.strip():
        raise DataError(f"{path}, line 1", "label then 28 features", "an empty line" if first else "an empty file")
    sep = "\t" if "\t" in first else "," if "," in first else " "
    fmt = FileFormat(path, sep, is_gzip)
    fields = fmt.split(first)
    if len(fields) != N_COLUMNS:
        raise DataError(f"{path}, line 1", f"{N_COLUMNS} columns (label then 28 features)",
                        f"{len(fields)} columns separated by {sep!r}")
    return fmt


def count_rows(path) -> int:
    """Number of lines of a (gzip) text file, counted in binary blocks."""
    fmt = sniff(path)
    opener = gzip.open if fmt.gzip else open
    n, last = 0, b"\n"
    with stream_errors(fmt, lambda: n), opener(fmt.path, "rb") as f:
        while True:
            block = f.read(1 << 23)
            if not block:
                break
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


@contextlib.contextmanager
def stream_errors(fmt: FileFormat, lines_read):
    """A gzip stream that ends early (a truncated download or copy) or is damaged, and a
    file that cannot be read, as :class:`DataError` naming the file and the last good line
    (``lines_read()``, the lines read before the error)."""
    try:
        yield
    except EOFError:
        raise DataError(fmt.path, "a complete gzip file (HIGGS.csv.gz)",
                        f"a compressed stream that ends early, after line {lines_read()} (a truncated download "
                        "or copy?)") from None
    except (OSError, *CODEC_ERRORS) as exc:  # a damaged deflate stream raises zlib's error, not OSError
        if isinstance(exc, OSError) and is_user_os_error(exc):
            raise os_error(exc, fmt.path, "a readable HIGGS table") from None
        what = "gzip stream" if fmt.gzip else "file"
        raise DataError(fmt.path, f"a readable {what}",
                        f"a damaged one after line {lines_read()} ({type(exc).__name__}: {exc})") from None


def resolve_rows(path, rows, total: int | None = None) -> tuple[int, int | None]:
    """Turn a row range ``(start, stop)`` (Python slice rules, None open) into absolute lines.

    Negative values count from the end of the file (``(-100_000, None)``: the last 100k
    lines) and need the file's line count: ``total`` when given, else one counting pass
    (:func:`count_rows`). Whenever the count is known, ``stop`` is capped at it (``None``
    becomes it), as a slice would be; otherwise ``stop=None`` means the end.

    Raises:
        ConfigError: not a pair of integers/None, or a range empty as given.
        DataError: the file is too short for the range (fewer lines than ``-start``, or,
            with a known count, no line at or after ``start``).
    """
    if rows is None:
        return (0, None) if total is None else (0, int(total))
    if not isinstance(rows, (tuple, list)) or len(rows) != 2:
        raise ConfigError(f"a HIGGS row range must be (start, stop), got {rows!r}")
    start, stop = rows
    for v in (start, stop):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
            raise ConfigError(f"a HIGGS row range must hold integers or None, got {rows!r}")
    start = 0 if start is None else int(start)
    stop = None if stop is None else int(stop)
    if (start < 0 or (stop is not None and stop < 0)) and total is None:
        total = count_rows(path)
    if start < 0 or (stop is not None and stop < 0):
        start = start + total if start < 0 else start
        stop = stop + total if stop is not None and stop < 0 else stop
        if start < 0:
            raise DataError(path, f"at least {-rows[0]} lines for the row range {tuple(rows)}", f"{total} lines")
    if stop is not None and stop <= start:
        raise ConfigError(f"HIGGS row range {tuple(rows)} is empty (start {start} >= stop {stop})")
    if total is not None:
        if start >= total:
            raise DataError(path, f"more than {start} lines for the row range {tuple(rows)}", f"{total} lines")
        stop = total if stop is None else min(stop, int(total))
    return start, stop
