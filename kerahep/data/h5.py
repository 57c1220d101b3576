"""HDF5 helpers of the readers: errors as the package's own (a damaged file never ends in an h5py
traceback, :func:`hdf5_errors`) and direct chunk reads inflated with the fastest zlib at hand
(:func:`direct_chunk_reader`, :func:`inflate_function`)."""

from __future__ import annotations

import contextlib
import zlib

import numpy as np

from ..errors import DataError, KerahepError


def _codec_errors() -> tuple:
    """Error types of the optional fast inflaters (zlib-ng, isal) when installed."""
    out = [zlib.error]
    for mod in ("zlib_ng.zlib_ng", "isal.isal_zlib"):
        try:
            module = __import__(mod, fromlist=["error"])
            out.append(module.error)
        except (ImportError, AttributeError):
            pass
    return tuple(out)


#: the errors a damaged deflate stream raises, whichever inflater reads it (zlib, zlib-ng, isal)
CODEC_ERRORS = _codec_errors()


@contextlib.contextmanager
def hdf5_errors(path, expected: str = "a readable HDF5 file"):
    """Turn the errors h5py raises on damaged files into :class:`DataError` naming ``path``.

    h5py reports corrupt metadata and chunks as ``OSError``, ``RuntimeError``,
    ``KeyError`` or ``ValueError`` (and zlib as ``zlib.error``) from deep inside the library.
    """
    try:
        yield
    except KerahepError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) + CODEC_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(path, expected, f"a damaged file ({type(exc).__name__}: {first[:200]})") from None


def inflate_function():
    """The fastest zlib-compatible ``decompress`` installed (zlib-ng, ISA-L, then the standard library).

    zlib-ng and ISA-L release the GIL while they inflate, so chunks inflate in parallel threads.
    """
    try:
        from zlib_ng import zlib_ng

        return zlib_ng.decompress
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        return isal_zlib.decompress
    except ImportError:
        return zlib.decompress


def _library_lock():
    """h5py's global lock (every h5py call holds it), else a lock of our own.

    ``DatasetID.read_direct_chunk`` called from two threads at once fails ("no VOL object
    wrap context") or crashes the process (h5py 3.14, HDF5 1.14): the reads of compressed
    bytes are serialised under this lock; inflating them runs outside it.
    """
    try:
        from h5py._objects import phil

        return phil
    except ImportError:  # pragma: no cover - another h5py layout
        import threading

        return threading.Lock()


HDF5_LOCK = _library_lock()


def direct_chunk_reader(ds):
    """A reader of chunk-aligned row slices that inflates the stored chunks itself, or None.

    Only for the layout it can decode exactly: little-endian float32, each chunk holding
    whole rows (``chunks == (k,) + shape[1:]``) and deflate (gzip) as the only filter.
    The returned ``read(start, stop)`` gives ``ds[start:stop]`` for ``start`` on a chunk
    boundary (read-only when it is one chunk), and ``read.pieces(start, stop)`` the same rows
    stored chunk by stored chunk, as ``(first row, rows)``; a chunk it cannot read directly (never
    written, for example) is read through h5py. Safe from several threads: the compressed
    bytes are copied out under :data:`HDF5_LOCK`; the inflating runs without it (and
    without the GIL).
    """
    import h5py

    if ds.chunks is None or tuple(ds.chunks[1:]) != tuple(ds.shape[1:]) or ds.dtype != np.dtype("<f4"):
        return None
    try:
        plist = ds.id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    except Exception:  # pragma: no cover - unusual property lists: use h5py
        return None
    if filters != [h5py.h5z.FILTER_DEFLATE]:
        return None
    inflate = inflate_function()
    rows_per_chunk = int(ds.chunks[0])
    image = tuple(ds.shape[1:])
    zeros = (0,) * len(image)

    def chunk(first: int, rows: int) -> np.ndarray:
        try:
            with HDF5_LOCK:
                mask, raw = ds.id.read_direct_chunk((first,) + zeros)
            data = raw if mask & 1 else inflate(raw)  # bit 0: deflate was skipped for this chunk
            return np.frombuffer(data, np.float32).reshape((rows_per_chunk,) + image)[:rows]
        except (OSError, ValueError, KeyError, RuntimeError):
            return ds[first:first + rows]

    def read(start: int, stop: int) -> np.ndarray:
        if stop - start <= rows_per_chunk:
            return chunk(start, stop - start)
        out = np.empty((stop - start,) + image, np.float32)
        for first in range(start, stop, rows_per_chunk):
            rows = min(rows_per_chunk, stop - first)
            out[first - start:first - start + rows] = chunk(first, rows)
        return out

    def pieces(start: int, stop: int):
        """``(first row, rows)`` of each stored chunk of ``start:stop`` in turn, inflated one at a time
        (read-only views of the inflated bytes): a multi-chunk read without the joined copy."""
        for first in range(start, stop, rows_per_chunk):
            yield first, chunk(first, min(rows_per_chunk, stop - first))

    read.pieces = pieces
    return read
