"""Reader of HCAL DigiOccupancy runs: memory-mapped ``.npy`` files to ``tf.data``.

Each file holds one run, ``(lumisections, iEta, iPhi)`` hit counts (the ML4DQM files are
``Run355456_Dataset.npy`` and ``Run357479_Dataset.npy``, ``(10000, 64, 72)`` float64,
368 MB each). Every file is one class (its position in the list is its label), and any
number of runs from two up is accepted (multi-class).

Files are opened with ``np.load(mmap_mode="r")``: nothing is loaded up front. Opening
scans each file once in chunks (bounded memory) to refuse NaN, infinite or negative
counts and to collect the mean occupancy map and the per-lumisection totals. Chunks of
lumisections are read on several threads and handed to ``tf.data`` as whole batches
(:mod:`kerahep.data.batches`): in training, the chunks of all runs in a new seeded order
every epoch and the maps of a window of chunks mixed; in evaluation, file order, so
scores line up with lumisection numbers (:func:`split_order`).

Splits are by contiguous blocks of lumisections within each run
(:func:`kerahep.data.splits.block_split`), never at random, so neighbouring
lumisections (same luminosity, same detector conditions) do not leak from training into
test.

Example:
    >>> runs = open_runs(["Run355456_Dataset.npy", "Run357479_Dataset.npy"])  # doctest: +SKIP
    >>> train, val, test = split_segments(runs.sizes, (0.7, 0.15, 0.15), n_blocks=10)  # doctest: +SKIP
    >>> ds = make_dataset(runs, train, batch_size=64, training=True)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, user_os_errors
from .hcal_segments import chunks, count, ranges_of, split_order, split_segments  # noqa: F401 - the split API of hcal

EXPECTED = "a (lumisections, iEta, iPhi) array of hit counts such as (10000, 64, 72)"

#: maps read per ``os.preadv`` call of a streamed epoch (:meth:`RunFile.pieces`): each piece is
#: cast into its batch rows while it is still in the CPU cache
PIECE_ROWS = 16


def run_name(path) -> str:
    """``Run355456`` from ``.../Run355456_Dataset.npy``; the file stem when there is no run number."""
    stem = Path(path).stem
    m = re.search(r"Run\d+", stem, flags=re.IGNORECASE)
    return m.group(0) if m else stem


@dataclass
class RunFile:
    """One memory-mapped run and what the opening scan learnt about it."""

    path: Path
    name: str
    array: np.ndarray
    mean_map: np.ndarray = None
    totals: np.ndarray = None
    max: float = float("nan")
    zero_fraction: float = float("nan")

    def __len__(self):
        return int(self.array.shape[0])

    def read(self, start: int, stop: int, check: bool = False) -> np.ndarray:
        """Lumisections ``start:stop`` as float32, read with ``os.preadv`` into a buffer of their own
        (with ``check``, their values are checked first, as :func:`scan` does: :func:`check_counts`).

        No page of the map is touched, so a streamed epoch's resident memory stays flat however
        long the runs are (the data stay in the page cache) and threads reading at once do not
        contend for the map. Elsewhere the rows are copied out of the map and its pages released.
        """
        arr = self.array
        if self._preadable():
            raw = np.empty((stop - start,) + arr.shape[1:], arr.dtype)
            with user_os_errors(f"a readable .npy file with {EXPECTED}", self.path), open(self.path, "rb") as f:
                self._pread(f, raw, start)
        else:
            raw = np.array(arr[start:stop], dtype=None if check else np.float32)
            _release(arr, start, stop)
        if check:
            check_counts(self.path, raw, start, arr.dtype.kind)
        return raw.astype(np.float32, copy=False)

    def pieces(self, start: int, stop: int, rows: int = 16):
        """Lumisections ``start:stop`` as consecutive pieces of at most ``rows`` maps, in the file's
        dtype, each read with ``os.preadv`` into one small buffer that the next piece reuses (use
        each before asking for the next).

        A streamed epoch casts every piece straight into its places in a batch while it is in
        the CPU cache (:class:`kerahep.data.batches.BatchStream`): one pass over the maps instead
        of reading a chunk whole, converting it to float32 and copying that again. Where
        ``os.preadv`` cannot be used, one piece: :meth:`read`.
        """
        if not self._preadable():
            yield self.read(start, stop)
            return
        buf = np.empty((max(1, min(int(rows), stop - start)),) + self.array.shape[1:], self.array.dtype)
        with user_os_errors(f"a readable .npy file with {EXPECTED}", self.path), open(self.path, "rb") as f:
            for a in range(start, stop, len(buf)):
                piece = buf[:min(len(buf), stop - a)]
                self._pread(f, piece, a)
                yield piece

    def _preadable(self) -> bool:
        arr = self.array
        return (hasattr(os, "preadv") and isinstance(arr, np.memmap) and getattr(arr, "offset", None) is not None
                and arr.flags.c_contiguous)

    def _pread(self, f, out: np.ndarray, start: int) -> None:
        """Fill ``out`` with the maps from lumisection ``start`` of the open file ``f``."""
        at = self.array.offset + start * self.array[0].nbytes
        got = os.preadv(f.fileno(), [out], at)
        if got != out.nbytes:
            raise DataError(self.path, f"lumisections {start}-{start + len(out) - 1} ({out.nbytes} bytes from "
                                       f"byte {at})", f"{got} bytes (the file was cut short after it was opened)")


@dataclass
class HcalRuns:
    """The runs of one data set, one class each: by default the run's position in ``runs``.

    ``classes`` overrides that (scoring files with a trained model labels each run with
    the class the model learnt for it, whatever order the files come in).
    """

    runs: list = field(default_factory=list)
    classes: list | None = None

    def class_of(self, run: int) -> int:
        """The class (label) of the run at position ``run``."""
        return int(self.classes[run]) if self.classes is not None else int(run)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.runs]

    @property
    def paths(self) -> list[str]:
        return [str(r.path) for r in self.runs]

    @property
    def sizes(self) -> list[int]:
        return [len(r) for r in self.runs]

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(v) for v in self.runs[0].array.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.runs)

    def read(self, run: int, start: int, stop: int) -> np.ndarray:
        """Lumisections ``start:stop`` of run ``run`` as float32 (one contiguous read)."""
        return self.runs[run].read(start, stop)

    def summary(self) -> dict:
        return {r.name: {"path": str(r.path), "lumisections": len(r), "mean": float(r.mean_map.mean())
                         if r.mean_map is not None else None, "max": r.max, "zero_fraction": r.zero_fraction}
                for r in self.runs}


def _release(arr, start: int, stop: int) -> None:
    """``madvise(MADV_DONTNEED)`` on the pages holding rows ``start:stop`` of a memory-mapped array."""
    import mmap

    mm = getattr(arr, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED") or stop <= start:
        return
    try:
        base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
        first = arr[start:stop].ctypes.data - base
        last = first + (stop - start) * arr[0].nbytes
        page = mmap.PAGESIZE
        lo = (first // page) * page
        hi = min(-(-last // page) * page, len(mm))
        if hi > lo:
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
    except (ValueError, OSError, BufferError, TypeError):  # pragma: no cover - advice only
        pass


def open_run(path, max_events: int | None = None, validate: bool = True, chunk: int = 512) -> RunFile:
    """Memory-map one run file, check its layout and (``validate``) scan its values.

    Raises:
        DataError: missing file, not a ``.npy`` array, not 3-D, not numeric, empty, NaN or
            infinite values, negative counts (naming lumisection, iEta and iPhi).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, f"a .npy file with {EXPECTED}", "no such file")
    if path.is_dir():
        raise DataError(path, f"a .npy file with {EXPECTED}", "a directory")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(path, f"a NumPy .npy file with {EXPECTED}",
                        f"a file NumPy cannot memory-map ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        raise DataError(path, f"a .npy file with {EXPECTED}", f"a {type(arr).__name__} (an .npz archive?)")
    if arr.ndim != 3:
        raise DataError(path, EXPECTED, f"shape {arr.shape} ({arr.ndim}-D)")
    if arr.dtype.kind not in "iuf":
        raise DataError(path, "integer or floating-point hit counts", f"dtype {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise DataError(path, EXPECTED, f"an empty array of shape {arr.shape}")
    if max_events:
        arr = arr[: int(max_events)]
    run = RunFile(path=path, name=run_name(path), array=arr)
    if validate:
        scan(run, chunk)
    return run


def check_counts(path, c: np.ndarray, start: int, kind: str) -> None:
    """Refuse non-finite (float files), negative or beyond-float32 counts in the lumisections
    ``c`` read from ``start`` of ``path`` (``kind``: the file's dtype kind), naming the first."""
    bad = []
    if kind == "f":
        bad.append((~np.isfinite(c), "finite hit counts"))
    if kind in "if":
        bad.append((c < 0, "non-negative hit counts"))
    bad.append((c > np.finfo(np.float32).max, "hit counts within float32 range (at most 3.4e38)"))  # read as float32
    for where, expected in bad:
        if where.any():
            ls, ieta, iphi = np.argwhere(where)[0]
            v = c[ls, ieta, iphi]
            raise DataError(path, expected, f"{v:g} at lumisection {start + ls}, iEta index {ieta}, iPhi index {iphi}")


def scan(run: RunFile, chunk: int = 512) -> RunFile:
    """Stream through ``run`` once: refuse non-finite or negative counts; fill the statistics."""
    arr, path = run.array, run.path
    n = len(run)
    total = np.zeros(arr.shape[1:], np.float64)
    totals = np.zeros(n, np.float64)
    peak, zeros = -np.inf, 0
    for s in range(0, n, chunk):
        c = np.array(arr[s:s + chunk], dtype=np.float64)
        _release(arr, s, min(s + chunk, n))
        check_counts(path, c, s, arr.dtype.kind)
        total += c.sum(axis=0)
        totals[s:s + len(c)] = c.sum(axis=(1, 2))
        peak = max(peak, float(c.max()))
        zeros += int((c == 0).sum())
    run.mean_map = total / n
    run.totals = totals
    run.max = peak
    run.zero_fraction = zeros / float(arr.size)
    return run


def open_runs(paths, max_events: int | None = None, validate: bool = True, chunk: int = 512,
              min_runs: int = 2) -> HcalRuns:
    """Open several run files (one class each, in the order given).

    Args:
        paths: ``.npy`` files, one run each.
        max_events: keep the first ``max_events`` lumisections of each run.
        validate: scan the values (NaN, infinities, negative counts) and collect statistics.
        chunk: lumisections per read during the scan.
        min_runs: fewest runs accepted (2 for training; 1 to score a single run).

    Raises:
        DataError: a bad file, or runs whose maps differ in shape.
        ConfigError: too few runs, or the same file twice.
    """
    paths = [Path(p) for p in (paths or ())]
    if len(paths) < min_runs:
        raise ConfigError(f"hcal_dqm needs at least {min_runs} run file(s) (one class each), got {len(paths)}: "
                          f"{[str(p) for p in paths]}")
    seen = {}
    for p in paths:
        key = p.resolve() if p.exists() else p
        if key in seen:
            raise ConfigError(f"run file {p} is given twice (each run is one class)")
        seen[key] = p
    runs = []
    for p in paths:
        r = open_run(p, max_events=max_events, validate=validate, chunk=chunk)
        if runs and r.array.shape[1:] != runs[0].array.shape[1:]:
            raise DataError(p, f"maps of shape {runs[0].array.shape[1:]} (iEta, iPhi) like {runs[0].path.name}",
                            f"maps of shape {r.array.shape[1:]}")
        runs.append(r)
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # keep names unique for plots and metrics
        for i, r in enumerate(runs):
            r.name = f"{r.name}[{i}]"
    return HcalRuns(runs)


# ------------------------------------------------------------------------------ splits
def iterate(runs: HcalRuns, segments, chunk_size: int = 512):
    """Yield ``(x, run, lumisections)`` chunks in order (NumPy side: statistics, baselines)."""
    for r, s, e in chunks(segments, chunk_size):
        yield runs.read(int(r), int(s), int(e)), int(r), np.arange(s, e)


# ---------------------------------------------------------------------------- tf.data
def make_dataset(runs: HcalRuns, segments, batch_size: int, training: bool = False, seed: int = 0,
                 chunk_size: int = 256, cache: bool = False, shuffle_buffer: int = 10000,
                 label_mode: str | None = None, num_classes: int | None = None, decode_threads: int | None = None):
    """A batched ``tf.data.Dataset`` of ``(maps float32 (B, iEta, iPhi), labels)`` over ``segments``.

    Whole batches from :class:`kerahep.data.batches.BatchStream`: chunks of ``chunk_size``
    lumisections read on ``decode_threads`` threads, mixed in NumPy; ``tf.data`` only wraps.

    Args:
        runs: the opened runs.
        segments: ``(run, start, stop)`` ranges (one split of :func:`split_segments`).
        batch_size: batch size.
        training: a new seeded chunk order every epoch (the runs interleaved in proportion)
            and the maps of a window of ``shuffle_buffer`` maps mixed; otherwise file order.
        cache: keep the decoded maps in memory after the first pass (when they fit).
        label_mode: ``binary`` (float 0/1, two runs) or ``categorical`` (one-hot); default
            by the number of classes.
        num_classes: classes of the labels (default: the number of runs); the label of a
            run is :meth:`HcalRuns.class_of`.
        decode_threads: threads copying chunks (None: one per CPU core).

    Returns:
        The dataset, or None when ``segments`` is empty.
    """
    import tensorflow as tf

    from .batches import BatchStream, Chunk

    n = count(segments)
    if n == 0:
        return None
    k = int(num_classes or runs.n_classes)
    label_mode = label_mode or ("binary" if k == 2 else "categorical")
    if label_mode not in ("binary", "categorical"):
        raise ConfigError(f"label_mode must be binary or categorical, got {label_mode!r}")
    label = np.arange(k, dtype=np.float32) if label_mode == "binary" else np.eye(k, dtype=np.float32)

    def load(c):  # pieces of the maps in the file's dtype, cast into the batches where they land
        rows = PIECE_ROWS
        y = np.repeat(label[runs.class_of(c.source)][None], min(c.size, rows), axis=0)
        return ((x, y[:len(x)]) for x in runs.runs[c.source].pieces(c.start, c.stop, rows=rows))

    plan = [Chunk(int(r), int(s), int(e)) for r, s, e in chunks(segments, chunk_size)]
    (h, w), y_shape = runs.shape, label.shape[1:]
    stream = BatchStream(plan, load, batch_size=batch_size, shuffle=training, seed=seed,
                         window_rows=max(1, min(int(shuffle_buffer), n)), threads=decode_threads, cache=cache,
                         fields=[((h, w), np.float32), (y_shape, np.float32)])
    return stream.dataset((tf.TensorSpec((None, h, w), tf.float32), tf.TensorSpec((None,) + y_shape, tf.float32)))


def sample_maps(runs: HcalRuns, segments, n: int) -> np.ndarray:
    """Up to ``n`` maps spread evenly over ``segments`` (float32), read row by row from the memory maps."""
    r_idx, ls = split_order(segments)
    if len(ls) == 0:
        return np.zeros((0, *runs.shape), np.float32)
    pick = np.unique(np.linspace(0, len(ls) - 1, min(int(n), len(ls))).round().astype(int))
    out = []
    for r in np.unique(r_idx[pick]):
        rows = ls[pick][r_idx[pick] == r]
        out.append(np.asarray(runs.runs[int(r)].array[rows], dtype=np.float32))
    return np.concatenate(out)


def fits_in_memory(n_maps: int, shape, fraction: float = 0.25) -> bool:
    """Whether ``n_maps`` float32 maps take less than ``fraction`` of the available memory."""
    import psutil

    need = n_maps * int(np.prod(shape)) * 4
    return need < fraction * psutil.virtual_memory().available


# ---------------------------------------------------------------------- band features
def find_bands(mean_map: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ranges of iEta rows with any occupancy: the active bands, ``[(first, last + 1), ...]``."""
    rows = np.flatnonzero(np.asarray(mean_map).sum(axis=1) > 0)
    return ranges_of(rows)


def band_features(x: np.ndarray, bands, active: np.ndarray) -> np.ndarray:
    """Mean occupancy over the active cells of each band, ``(n, len(bands))``."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for a, b in bands:
        m = active[a:b]
        cols.append(x[:, a:b][:, m].mean(axis=1) if m.any() else np.zeros(len(x)))
    return np.stack(cols, axis=1)
