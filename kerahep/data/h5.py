"""HDF5 errors as the package's own: a damaged file never ends in an h5py traceback."""

from __future__ import annotations

import contextlib
import zlib

from ..errors import DataError, KerahepError


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
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, zlib.error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(path, expected, f"a damaged file ({type(exc).__name__}: {first[:200]})") from None
