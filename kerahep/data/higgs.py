"""Reader of the UCI HIGGS table (``HIGGS.csv``, ``HIGGS.csv.gz``, tab- or space-separated
variants) into NumPy arrays and ``tf.data``, in chunks.

The file has no header; each line is the label (1 signal, 0 background) and 28 features:
21 low-level (lepton, missing energy, four jets) and 7 high-level invariant masses
(:data:`COLUMNS`). The original table is 8 GB uncompressed (11 million lines), so the
reader never loads it whole: it cuts the file into blocks of about ``chunksize`` lines
(:data:`CHUNK_LINES`, a few MB), which :data:`PARSE_THREADS` threads parse at once with
``pyarrow.csv`` (``pandas.read_csv`` for the whitespace-separated variant), restricted
to a row range (the seed protocol: first 1.1 million lines train and validation, last
100k test). pyarrow parses without holding the GIL, so the threads use every core (1.6x
a single pandas parser on 2 cores; pandas holds the GIL for part of its work), and both
are several times faster than ``tf.data.TextLineDataset`` + ``tf.io.decode_csv`` here
(see :mod:`kerahep.benchmarks.higgs_mae`).

Every chunk is checked; a bad line raises :class:`~kerahep.errors.DataError` naming the
file and the LINE (1-based), what was expected and what was found: wrong column count,
a non-numeric field, NaN or infinity, a label other than 0/1.

Feature sets (:func:`feature_names`):

* ``low``: the 21 low-level features with each azimuth phi replaced by (cos phi, sin phi),
  27 columns (the seed protocol's input);
* ``all``: ``low`` plus the 7 high-level masses, 34 columns;
* ``raw``: the 28 columns as stored (for gradient-boosted-tree baselines).

Example::

    from kerahep.data.higgs import higgs_dataset, read_higgs
    ds = higgs_dataset("HIGGS.csv.gz", rows=(0, 1_000_000), batch_size=1024, shuffle_buffer=100_000)
    x_test, y_test = read_higgs("HIGGS.csv.gz", rows=(-100_000, None))
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, is_user_os_error, os_error, user_os_errors
from ..schema import (  # noqa: F401 - the layout is part of the reader's public face
    BTAG_LEVELS, COLUMNS, FEATURE_SETS, HIGH_LEVEL, LOW_LEVEL, LOW_LEVEL_TRIG, N_COLUMNS, OBJECTS, PHI_MAX,
    RAW_FEATURES, feature_names, object_of,
)

FLOAT32_MAX = float(np.finfo(np.float32).max)
#: threads parsing blocks of lines at once (pyarrow parses without holding the GIL)
PARSE_THREADS = max(1, min(4, os.cpu_count() or 1))
#: default lines per chunk: a few MB per block keeps the blocks in flight small (memory added
#: by a pass: 46 MB, against 98 MB with 65536-line chunks) and both threads busy
CHUNK_LINES = 4096


def phi_to_radians(phi):
    """Stored (standardised) azimuth -> radians."""
    return np.asarray(phi) * (math.pi / PHI_MAX)


def transform(raw: np.ndarray, features: str = "low") -> np.ndarray:
    """Map stored features ``(n, 28)`` to the feature set ``features`` (float32)."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2 or raw.shape[1] != len(RAW_FEATURES):
        raise ValueError(f"expected (n, {len(RAW_FEATURES)}) stored features, got {raw.shape}")
    if features == "raw":
        return raw
    cols = []
    for i, name in enumerate(LOW_LEVEL):
        if name.endswith("_phi"):
            rad = phi_to_radians(raw[:, i])
            cols += [np.cos(rad), np.sin(rad)]
        else:
            cols.append(raw[:, i])
    if features == "all":
        cols += [raw[:, 21 + j] for j in range(len(HIGH_LEVEL))]
    elif features != "low":
        feature_names(features)  # raises ConfigError
    return np.stack(cols, axis=1).astype(np.float32)


# ------------------------------------------------------------------------ format
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


def _open_text(path: Path, is_gzip: bool):
    return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="") if is_gzip \
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
        with _open_text(path, is_gzip) as f:
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
    with _stream_errors(fmt, lambda: n), opener(fmt.path, "rb") as f:
        while True:
            block = f.read(1 << 23)
            if not block:
                break
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


@contextlib.contextmanager
def _stream_errors(fmt: FileFormat, lines_read):
    """A gzip stream that ends early (a truncated download or copy) or is damaged, and a
    file that cannot be read, as :class:`DataError` naming the file and the last good line
    (``lines_read()``, the lines read before the error)."""
    try:
        yield
    except EOFError:
        raise DataError(fmt.path, "a complete gzip file (HIGGS.csv.gz)",
                        f"a compressed stream that ends early, after line {lines_read()} (a truncated download "
                        "or copy?)") from None
    except OSError as exc:
        if is_user_os_error(exc):
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


# ------------------------------------------------------------------------ reading
#: what a line holds, with and without the label column (files to score may lack it)
LABELLED_LINE = f"{N_COLUMNS} columns (label then 28 features)"
UNLABELLED_LINE = f"{N_COLUMNS - 1} columns (the 28 features, without the label)"


def diagnose(fmt: FileFormat, first_line: int, stop_line: int | None, labelled: bool = True):
    """Scan lines ``first_line`` (0-based) .. ``stop_line`` and raise DataError at the first bad one.

    ``labelled=False`` checks the 28 features of a file to score, without the label."""
    import itertools

    done = [first_line]
    with _stream_errors(fmt, lambda: done[0]), _open_text(fmt.path, fmt.gzip) as f:
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
    return _checked(arr, labelled)


def _checked(arr: np.ndarray, labelled: bool = True) -> np.ndarray | None:
    """``arr`` (float32, label first when ``labelled``), or None when it holds NaN/inf or a label other than 0/1."""
    if not np.isfinite(arr).all():
        return None
    if labelled:
        lab = arr[:, 0]
        if not ((lab == 0) | (lab == 1)).all():
            return None
    return arr


def _nth_line_end(block, k: int) -> int:
    """Offset just past the ``k``-th (1-based) ``\\n`` of ``block``."""
    return int(np.flatnonzero(np.frombuffer(block, np.uint8) == 10)[k - 1]) + 1


def _line_blocks(fmt: FileFormat, start: int, nrows: int | None, chunksize: int):
    """Yield ``(block, lines)``: blocks of whole lines, about ``chunksize`` lines each, from line
    ``start`` (0-based), at most ``nrows`` lines in all.

    Blocks are cut by size (``chunksize`` times the first line's length) at their last line
    end and read straight into their own buffer: the reading thread does little besides the
    read, so the parsers keep the cores busy. Lines are counted (``lines``) only where a
    row range needs it; elsewhere ``lines`` is None and the parsed rows say how many.
    Lines end at ``\\n``; a last line without one counts.
    """
    opener = gzip.open if fmt.gzip else open
    with opener(fmt.path, "rb") as f:
        size = max(int(chunksize) * max(len(f.readline()), 1), 1)
        f.seek(0)
        rest, skip, left = b"", start, nrows
        while left is None or left > 0:
            buf = bytearray(len(rest) + size)
            buf[:len(rest)] = rest
            got = f.readinto(memoryview(buf)[len(rest):])
            eof = not got
            total = len(rest) + got
            if eof and not total:
                return
            cut = total if eof else buf.rfind(b"\n", 0, total) + 1
            if cut == 0:  # no line end yet: a line longer than the block
                rest = bytes(buf[:total])
                continue
            block, rest = memoryview(buf)[:cut], bytes(buf[cut:total])
            n = None
            if skip or left is not None:
                n = int(np.count_nonzero(np.frombuffer(block, np.uint8) == 10)) + (buf[cut - 1] != 10)
            if skip:
                if n <= skip:
                    skip -= n
                    if eof:
                        return
                    continue
                first = _nth_line_end(block, skip)
                block, n, skip = block[first:], n - skip, 0
            if left is not None and n > left:
                block, n = block[:_nth_line_end(block, left)], left
            if len(block):
                yield block, n
            if left is not None:
                left -= n
            if eof:
                return


def _parse_block(fmt: FileFormat, block, lines: int | None):
    """Parse one block of ``lines`` lines (None: not counted) into the checked float32 array
    of :func:`checked_array`; None when anything is wrong (the caller then finds the line)."""
    import io

    import pandas as pd

    if fmt.sep != " ":  # single-character separator: pyarrow, which parses without the GIL
        return _parse_arrow(fmt, block, lines)
    # pandas silently drops extra trailing fields of a block's first line (index_col=False):
    # check that line's field count here
    first = bytes(block[:1 << 16]).split(b"\n", 1)[0]
    if len(fmt.split(first.decode("utf-8", "replace"))) != N_COLUMNS:
        return None
    try:
        df = pd.read_csv(io.BytesIO(block), sep=fmt.pandas_sep, header=None, names=list(range(N_COLUMNS)),
                         index_col=False, skip_blank_lines=False, engine="c")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    return checked_array(df) if lines is None or len(df) == lines else None


def _parse_arrow(fmt: FileFormat, block, lines: int | None) -> np.ndarray | None:
    """:func:`_parse_block` with ``pyarrow.csv`` (single-character separators): every line must
    hold 29 numbers (empty lines count as lines, so they are errors, as with pandas)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [str(i) for i in range(N_COLUMNS)]
    try:
        table = pcsv.read_csv(
            pa.py_buffer(block),
            read_options=pcsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=fmt.sep, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.float64() for n in names}, strings_can_be_null=False,
                                                quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    if (lines is not None and table.num_rows != lines) or any(c.null_count for c in table.columns):
        return None
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, caught by _checked
        arr = np.column_stack([c.to_numpy() for c in table.columns]).astype(np.float32)
    return _checked(arr)


def iter_chunks(path, rows=None, chunksize: int = CHUNK_LINES, max_rows: int | None = None):
    """Yield ``(labels (n,), stored features (n, 28), first_line)`` chunks of a row range.

    The file is cut into blocks of about ``chunksize`` lines, which :data:`PARSE_THREADS`
    threads parse at once (:func:`_parse_block`); chunks come out in file order, with at
    most ``PARSE_THREADS + 1`` blocks in memory.

    Args:
        path: the HIGGS file (csv, csv.gz, tab- or space-separated).
        rows: ``(start, stop)`` lines, Python slice rules (see :func:`resolve_rows`); None: all.
        chunksize: about this many lines per chunk (blocks are cut by size at a line end).
        max_rows: stop after this many lines of the range.

    Raises:
        DataError: naming the file and line of the first malformed line.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    fmt = sniff(path)
    start, stop = resolve_rows(fmt.path, rows)
    nrows = None if stop is None else stop - start
    if max_rows is not None:
        nrows = max_rows if nrows is None else min(nrows, max_rows)
    if chunksize < 1:
        raise ConfigError(f"chunksize must be >= 1, got {chunksize}")
    line = start
    pool = ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="higgs-parse")
    pending = deque()
    try:
        blocks = _line_blocks(fmt, start, nrows, int(chunksize))
        while True:
            while len(pending) < PARSE_THREADS + 1:
                try:
                    block, n = next(blocks)
                except StopIteration:
                    break
                except (OSError, EOFError):  # damaged gzip stream
                    pending.append((None, 0))
                    break
                pending.append((pool.submit(_parse_block, fmt, block, n), n))
            if not pending:
                break
            future, n = pending.popleft()
            arr = future.result() if future is not None else None
            if arr is None:
                diagnose(fmt, line, None if future is None or n is None else line + n)
            yield arr[:, 0].copy(), arr[:, 1:], line + 1
            line += len(arr)
    finally:
        for future, _ in pending:
            if future is not None:
                future.cancel()
        pool.shutdown(wait=True)
    if line == start and start > 0:
        raise DataError(fmt.path, f"more than {start} lines for the row range {tuple(rows)}", f"{start} lines or fewer")
    if nrows is not None and line - start < nrows and stop is not None:
        raise DataError(fmt.path, f"lines {start + 1}-{start + nrows} for the row range {tuple(rows)}",
                        f"a file that ends at line {line}")


def read_higgs(path, rows=None, features: str = "low", max_rows: int | None = None, chunksize: int = CHUNK_LINES):
    """Read a row range into NumPy arrays ``(x, y)`` (x float32 in the feature set, y float32).

    Only the requested lines are kept in memory; the file is parsed in chunks.
    """
    feature_names(features)
    xs, ys = [], []
    for y, raw, _ in iter_chunks(path, rows, chunksize=chunksize, max_rows=max_rows):
        xs.append(transform(raw, features))
        ys.append(y)
    n_feat = len(feature_names(features))
    if not xs:
        return np.zeros((0, n_feat), np.float32), np.zeros((0,), np.float32)
    return np.concatenate(xs), np.concatenate(ys)


def scan(path, rows=None, max_rows: int | None = None, chunksize: int = CHUNK_LINES) -> dict:
    """Validate every line of a row range without keeping it; return counts.

    Returns:
        ``{"rows": n, "signal": n1, "background": n0, "first_line": l0}`` (``first_line`` 1-based).
    """
    n = n1 = 0
    first = None
    for y, _, line in iter_chunks(path, rows, chunksize=chunksize, max_rows=max_rows):
        first = first or line
        n += len(y)
        n1 += int(y.sum())
    return {"rows": n, "signal": n1, "background": n - n1, "first_line": first}


def higgs_dataset(path, rows=None, features: str = "low", batch_size: int = 256, shuffle_buffer: int = 0,
                  seed: int = 0, chunksize: int = CHUNK_LINES, max_rows: int | None = None, cache: bool = False,
                  prefetch: bool = True):
    """Stream a row range of a HIGGS file as a batched ``tf.data.Dataset`` of ``(x, y)``.

    The file is parsed chunk by chunk in a generator (never loaded whole); chunks are
    re-batched to ``batch_size`` (or shuffled event by event through ``shuffle_buffer``).
    Call :func:`scan` first to turn a bad line into a :class:`DataError` before training
    (inside ``tf.data`` it surfaces wrapped in a TensorFlow error, message kept).

    Args:
        path: HIGGS file.
        rows: ``(start, stop)`` line range (negative: from the end).
        features: ``low``, ``all`` or ``raw``.
        batch_size: events per batch.
        shuffle_buffer: 0 keeps file order; else events are shuffled through this buffer.
        seed: shuffle seed.
        chunksize: lines parsed per chunk.
        max_rows: cap on lines read from the range.
        cache: keep the decoded events in memory after the first pass.
    """
    import tensorflow as tf

    sniff(path)  # missing file, bad first line: DataError now, not inside tf.data
    n_feat = len(feature_names(features))
    path = str(path)
    resolved = resolve_rows(path, rows)

    def gen():
        for y, raw, _ in iter_chunks(path, resolved, chunksize=chunksize, max_rows=max_rows):
            yield transform(raw, features), y

    ds = tf.data.Dataset.from_generator(gen, output_signature=(
        tf.TensorSpec((None, n_feat), tf.float32), tf.TensorSpec((None,), tf.float32)))
    if cache:
        ds = ds.cache()
    if shuffle_buffer and shuffle_buffer > 1:
        ds = ds.unbatch().shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    else:
        ds = ds.rebatch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


def write_higgs(path, labels, raw, sep: str = ",", fmt: str = "%.18e", compresslevel: int = 6) -> Path:
    """Write a HIGGS table (label then 28 stored features per line, no header) atomically.

    ``.gz`` paths are gzip-compressed (with a fixed time stamp, so equal inputs give equal
    bytes). The default number format is the UCI file's (``%.18e``, comma-separated).
    """
    from ..artifacts import atomic_path

    labels = np.asarray(labels, dtype=np.float64).reshape(-1, 1)
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape != (len(labels), len(RAW_FEATURES)):
        raise ValueError(f"expected ({len(labels)}, {len(RAW_FEATURES)}) features, got {raw.shape}")
    table = np.hstack([labels, raw])
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            with open(tmp, "wb") as raw_f, gzip.GzipFile(fileobj=raw_f, mode="wb", mtime=0,
                                                          compresslevel=compresslevel, filename="") as f:
                np.savetxt(f, table, fmt=fmt, delimiter=sep)
        else:
            with open(tmp, "wb") as f:
                np.savetxt(f, table, fmt=fmt, delimiter=sep)
    return path


def file_size_mb(path) -> float:
    return os.path.getsize(path) / 1e6
