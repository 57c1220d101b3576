"""Streaming reader of a HIGGS row range: blocks of whole lines parsed on
:data:`PARSE_THREADS` threads (``pyarrow.csv``; pandas for whitespace), checked, in file
order (:func:`iter_chunks`).
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import ConfigError, DataError
from ...schema import N_COLUMNS
from .checks import checked, checked_array, diagnose
from ..h5 import CODEC_ERRORS
from .fileformat import FileFormat, gzip_open, resolve_rows, sniff

#: threads parsing blocks of lines at once (pyarrow parses without holding the GIL): one per
#: CPU core (``data.decode_threads`` overrides it for a run)
PARSE_THREADS = max(1, os.cpu_count() or 1)
#: default lines per chunk: a few MB per block keeps the blocks in flight small (memory added
#: by a pass: 46 MB, against 98 MB with 65536-line chunks) and both threads busy
CHUNK_LINES = 4096


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
    opener = gzip_open if fmt.gzip else open
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


def _parse_block(fmt: FileFormat, block, lines: int | None, labelled: bool = True):
    """Parse one block of ``lines`` lines (None: not counted) into the checked float32 array
    of :func:`checked_array`; None when anything is wrong (the caller then finds the line).
    ``labelled=False``: lines of the 28 features without the label (a file to score)."""
    import io

    import pandas as pd

    if fmt.sep != " ":  # single-character separator: pyarrow, which parses without the GIL
        return _parse_arrow(fmt, block, lines, labelled)
    ncols = N_COLUMNS if labelled else N_COLUMNS - 1
    # pandas silently drops extra trailing fields of a block's first line (index_col=False):
    # check that line's field count here
    first = bytes(block[:1 << 16]).split(b"\n", 1)[0]
    if len(fmt.split(first.decode("utf-8", "replace"))) != ncols:
        return None
    try:
        df = pd.read_csv(io.BytesIO(block), sep=fmt.pandas_sep, header=None, names=list(range(ncols)),
                         index_col=False, skip_blank_lines=False, engine="c")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    return checked_array(df, labelled) if lines is None or len(df) == lines else None


def _parse_arrow(fmt: FileFormat, block, lines: int | None, labelled: bool = True) -> np.ndarray | None:
    """:func:`_parse_block` with ``pyarrow.csv`` (single-character separators): every line must
    hold 29 numbers (28 unlabelled; empty lines count as lines, so they are errors, as with pandas)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [str(i) for i in range(N_COLUMNS if labelled else N_COLUMNS - 1)]
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
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, caught by checked
        arr = np.column_stack([c.to_numpy() for c in table.columns]).astype(np.float32)
    return checked(arr, labelled)


def parse_and_post(fmt: FileFormat, block, lines: int | None, post, labelled: bool = True):
    """``(parsed array, post(its features))`` of one block (``post`` None: ``(array, None)``)."""
    arr = _parse_block(fmt, block, lines, labelled)
    return arr, (None if arr is None or post is None else post(arr[:, 1:] if labelled else arr))


def iter_chunks(path, rows=None, chunksize: int = CHUNK_LINES, max_rows: int | None = None,
                threads: int | None = None, post=None, fmt: FileFormat | None = None, labelled: bool = True):
    """Yield ``(labels (n,), stored features (n, 28), first_line)`` chunks of a row range.

    The file is cut into blocks of about ``chunksize`` lines, which ``threads`` threads
    parse at once (:func:`_parse_block`); chunks come out in file order, with at most
    ``threads + 1`` blocks in memory.

    Args:
        path: the HIGGS file (csv, csv.gz, tab- or space-separated).
        rows: ``(start, stop)`` lines, Python slice rules (see :func:`resolve_rows`); None: all.
        chunksize: about this many lines per chunk (blocks are cut by size at a line end).
        max_rows: stop after this many lines of the range.
        threads: parsing threads (None: :data:`PARSE_THREADS`).
        post: applied on the parsing thread to each chunk's stored features (the feature
            transform, for example); its result takes their place in what is yielded.
        fmt: the file's layout, when the caller has sniffed it already (None: :func:`sniff`).
        labelled: False for a table of the 28 features without the label column (a file to
            score, sniffed by the caller): ``labels`` is then None.

    Raises:
        DataError: naming the file and line of the first malformed line.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    fmt = sniff(path) if fmt is None else fmt
    start, stop = resolve_rows(fmt.path, rows)
    nrows = None if stop is None else stop - start
    if max_rows is not None:
        nrows = max_rows if nrows is None else min(nrows, max_rows)
    if chunksize < 1:
        raise ConfigError(f"chunksize must be >= 1, got {chunksize}")
    line = start
    threads = PARSE_THREADS if threads is None else max(1, int(threads))
    pool = ThreadPoolExecutor(threads, thread_name_prefix="higgs-parse")
    pending = deque()
    try:
        blocks = _line_blocks(fmt, start, nrows, int(chunksize))
        while True:
            while len(pending) < threads + 1:
                try:
                    block, n = next(blocks)
                except StopIteration:
                    break
                except (OSError, EOFError, *CODEC_ERRORS):  # damaged gzip stream (zlib's error for bad deflate data)
                    pending.append((None, 0))
                    break
                pending.append((pool.submit(parse_and_post, fmt, block, n, post, labelled), n))
            if not pending:
                break
            future, n = pending.popleft()
            arr, done = future.result() if future is not None else (None, None)
            if arr is None:
                diagnose(fmt, line, None if future is None or n is None else line + n, labelled)
            if labelled:
                yield arr[:, 0].copy(), arr[:, 1:] if done is None else done, line + 1
            else:
                yield None, arr if done is None else done, line + 1
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
